"""Every program of examples/python/, run against forqd (with the example plugin) as a user
would run it: each prints what its docstring and the README say."""
import hashlib
import os
import re
import subprocess

from conftest import PYTHON, ROOT

EXAMPLES = os.path.join(ROOT, "examples", "python")


def run(forqd, name, *args, timeout=60):
    env = dict(os.environ)
    if os.environ.get("FORQ_PY_INSTALLED") != "1":
        env["PYTHONPATH"] = os.path.join(ROOT, "python")
    out = subprocess.run([PYTHON, os.path.join(EXAMPLES, name), forqd.endpoint, *args],
                         capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_primes(forqd):
    out = run(forqd, "primes.py").splitlines()
    assert out[0] == ("primes in range(1, 300000): 25997  (8 count_primes jobs on 2 workers at "
                      "%s)" % forqd.endpoint)
    assert out[1] == "median of 5 runs:"
    assert re.fullmatch(r"  pool/single time ratio: [0-9.]+", out[-1])


def test_is_prime(forqd):
    assert run(forqd, "is_prime.py") == ("10000019 is prime: True\n10000033 is prime: False\n"
                                         "10000079 is prime: True\n10000081 is prime: False\n")


def test_map_square(forqd):
    assert run(forqd, "map_square.py") == "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n"


def test_starmap_multiply(forqd):
    assert run(forqd, "starmap_multiply.py") == "[6, 20, 42]\n"


def test_map_async_timeout(forqd):
    assert run(forqd, "map_async_timeout.py") == (
        "item 0 done\nitem 1 done\nTimeoutError: item 2 is not done after 1 s\n"
        "running now: 0\n")


def test_imap_generator(forqd):
    assert run(forqd, "imap_generator.py", "200000") == "primes below 200000: 17984\n"


def test_as_completed(forqd):
    lines = run(forqd, "as_completed.py").splitlines()
    assert sorted(lines) == sorted([
        "sum(i*i for i in range(1000000)) = %d" % sum(i * i for i in range(1000000)),
        "sum(i*i for i in range(2000000)) = %d" % sum(i * i for i in range(2000000)),
        "sum(i*i for i in range(3000000)) = %d" % sum(i * i for i in range(3000000)),
        "sum(i*i for i in range(4000000)): OverflowError"])


def test_timeout_cancel(forqd):
    assert run(forqd, "timeout_cancel.py") == (
        "sleep(10) with run_timeout 0.5 s: JobTimeout (ran longer than its timeout of 500 ms; "
        "its worker was killed)\ncancel while running: True\nits result: CancelledError\n"
        "in forqd: cancelled\n")


def test_counter(forqd):
    assert run(forqd, "counter.py") == "counter: 4000\n"


def test_value_counter(forqd):
    assert run(forqd, "value_counter.py") == "counter: 4000\n"


def test_queue_fruit(forqd):
    assert run(forqd, "queue_fruit.py") == ("consumed apple\nconsumed banana\n"
                                            "consumed cherry\n")


def test_manager_dict(forqd):
    assert run(forqd, "manager_dict.py") == "{0: 0, 1: 2, 2: 4, 3: 6, 4: 8}\n"


def test_hash_files(forqd, tmp_path):
    want = []
    for i in range(9):
        data = os.urandom(1000 * i)
        (tmp_path / ("f%d" % i)).write_bytes(data)
        want.append("%s f%d" % (hashlib.sha256(data).hexdigest(), i))
    os.mkdir(tmp_path / "a-directory")
    assert run(forqd, "hash_files.py", str(tmp_path)).splitlines() == want


def test_every_example_is_tested():
    untested = [n for n in sorted(os.listdir(EXAMPLES))
                if n.endswith(".py") and "test_" + n[:-3] not in globals()]
    assert not untested, "examples/python/ without a test here: %s" % untested
