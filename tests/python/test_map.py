"""Executor.map, starmap and imap_unordered: order, chunks, per-item errors, timeouts, lazy
input, cancellation, and a client's memory bounded over a long map."""
import concurrent.futures as cf
import itertools
import os
import subprocess
import threading
import time

import pytest

import forq
from conftest import PYTHON, ROOT, wait_until


def test_map_order_and_chunks(ex):
    assert list(ex.map("square", range(10))) == [i * i for i in range(10)]
    for chunksize in (1, 7, 1000):
        assert list(ex.map("square", range(2500), chunksize=chunksize)) == \
            [i * i for i in range(2500)]
    assert list(ex.map("is_prime", [10_000_019, 10_000_033, 10_000_079, 10_000_081])) == \
        [True, False, True, False]
    assert list(ex.map("square", [])) == []


def test_map_several_iterables_and_starmap(ex):
    assert list(ex.map("multiply", [2, 4, 6], [3, 5, 7, 9])) == [6, 20, 42]
    assert list(ex.starmap("multiply", [(2, 3), (4, 5), (6, 7)])) == [6, 20, 42]
    assert list(ex.map("echo", ["a", "b"])) == [["a"], ["b"]]


def test_imap_unordered(ex):
    got = list(ex.imap_unordered("sleep", [0.3, 0.0, 0.1]))
    assert got == [None, None, None]
    out = list(ex.imap_unordered("square", range(3000), chunksize=100))
    assert sorted(out) == [i * i for i in range(3000)]
    order = [x for x in ex.imap_unordered("echo", [0.2, 0.01], chunksize=1)]
    assert sorted(order) == [[0.01], [0.2]]


def test_map_item_error_at_its_turn(ex):
    it = iter(ex.map("square", [1, 2, "three", 4], chunksize=2))
    assert next(it) == 1 and next(it) == 4
    with pytest.raises(forq.TaskError) as e:
        next(it)
    assert e.value.index == 2 and e.value.etype == "TypeError"
    with pytest.raises(StopIteration):
        next(it)


def test_map_chunk_crash_and_retries(ex, tmp_path):
    it = iter(ex.map("crash_on", [1, 2, 3, 4], [9, 9, 3, 9], chunksize=2))
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(forq.WorkerCrashed):
        next(it)
    flag = str(tmp_path / "once")
    assert list(ex.map("crash_once", [flag], retries=1)) == ["ok"]


def test_map_timeout_then_cancel(ex):
    t0 = time.monotonic()
    it = ex.map("sleep", [0.05, 0.1, 30], timeout=1.0)
    assert next(it) is None and next(it) is None
    with pytest.raises(cf.TimeoutError):
        next(it)
    assert 0.9 < time.monotonic() - t0 < 5
    it.close()
    # the 30 s job was cancelled: both workers free again at once
    assert wait_until(lambda: ex.stats()["running"] == 0, 5)


def test_map_is_lazy_and_bounded(ex):
    pulled = []

    def numbers():
        for i in itertools.count():
            pulled.append(i)
            yield i
    it = ex.map("square", numbers(), chunksize=10, buffersize=3)
    assert it.submitted == 30 and len(pulled) <= 31     # the first window only
    got = [next(it) for _ in range(25)]
    assert got == [i * i for i in range(25)]
    assert it.submitted <= 60                           # never more than a window ahead
    it.close()
    n = len(pulled)
    time.sleep(0.1)
    assert len(pulled) == n


def test_map_dropped_cancels(ex):
    it = ex.map("sleep", [30, 30], chunksize=1)
    assert wait_until(lambda: ex.stats()["running"] == 2, 5)
    del it
    assert wait_until(lambda: ex.stats()["running"] == 0, 5)


def test_map_options_and_errors(ex):
    with pytest.raises(forq.JobTimeout):
        list(ex.map("sleep", [5], run_timeout=0.1))
    with pytest.raises(ValueError):
        ex.map("square", [1], chunksize=0)
    with pytest.raises(ValueError):
        ex.map("square", [1], buffersize=0)
    with pytest.raises(TypeError):
        ex.map("square", [1], job_id="x")
    with pytest.raises(TypeError):
        ex.map("square", [object()])


MEMORY_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[1])
import forq
n = int(sys.argv[3])
def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
with forq.Executor(sys.argv[2]) as ex:
    assert sum(ex.map("square", range(5000), chunksize=1000)) > 0     # everything warmed up
    before = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")            # the peak RSS (VmHWM) starts again from here
    total = sum(ex.map("square", (i for i in range(n)), chunksize=1000))
    peak = status_kib("VmHWM")
assert total == sum(i * i for i in range(n)), total
print(before, peak)
"""


def test_map_million_items_in_bounded_memory(forqd):
    """The client's peak RSS over a lazy map of a generator grows by less than BOUND_KIB,
    whatever the count; a list of the inputs or results would take tens of MiB."""
    n = 1_000_000           # about a second
    bound_kib = 16 * 1024   # window (32) x chunk (1000) items in flight: well under 16 MiB
    out = subprocess.run([PYTHON, "-c", MEMORY_SCRIPT, os.path.join(ROOT, "python"),
                          forqd.endpoint, str(n)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, peak = map(int, out.stdout.split())
    assert peak - before < bound_kib, (before, peak)


@pytest.mark.parametrize("items", [
    [0, 1, -1, 127, 128, -33, 2**31 - 1, -2**31],           # the int32 fast path
    [2**31, -2**31 - 1, 2**40, 2**63 - 1, -2**63],          # int64
    [2**64 - 1, 5],                                         # uint64: the general path
    [0.5, -1e300, float("inf"), 3.0],                       # float64
    [True, False, 1, 0],                                    # bools stay bools
    ["a", 1, None, b"x", [1, 2], {"k": (1, 2)}],            # anything else
])
def test_map_packs_every_kind_of_item_exactly(ex, items):
    got = list(ex.map("echo", items, chunksize=len(items)))
    want = [[x] for x in items]
    want[-1] = [{"k": [1, 2]}] if isinstance(items[-1], dict) else want[-1]
    assert got == want
    assert [type(g[0]) for g in got] == [type(w[0]) for w in want]     # True is not 1


def test_shutdown_cancels_maps(forqd):
    ex = forq.Executor(forqd.endpoint)
    it = ex.map("sleep", [30, 30, 30], chunksize=1, buffersize=2)
    assert wait_until(lambda: ex.stats()["running"] >= 2, 5)
    ex.shutdown(wait=True, cancel_futures=True)
    with forq.Executor(forqd.endpoint) as other:
        assert wait_until(lambda: other.stats()["running"] == 0, 5)
    with pytest.raises((cf.CancelledError, RuntimeError)):
        list(it)


def test_shutdown_wakes_a_waiting_consumer(forqd):
    ex = forq.Executor(forqd.endpoint)
    it = ex.map("sleep", [30, 30], chunksize=1)
    got = []

    def consume():
        try:
            list(it)
        except BaseException as e:
            got.append(e)
    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.2)
    ex.shutdown(wait=True, cancel_futures=True)
    t.join(5)
    assert not t.is_alive() and isinstance(got[0], cf.CancelledError)
