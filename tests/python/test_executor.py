"""forq.Executor against a real forqd: submit, the options of a job, futures with the standard
library's wait() and as_completed(), callbacks, cancel, shutdown, fetch, threads, asyncio."""
import asyncio
import concurrent.futures as cf
import os
import subprocess
import threading
import time

import pytest

import forq
from conftest import PYTHON, ROOT, Forqd, executor, wait_running, wait_until


def test_submit_result(ex):
    f = ex.submit("count_primes", 1, 300000)
    assert isinstance(f, cf.Future) and isinstance(f, forq.Future)
    assert f.result(10) == 25997
    assert f.done() and not f.cancelled() and f.exception() is None
    assert f.attempts == 1 and f.pid > 0 and f.run_us > 0
    assert ex.submit("echo", 1, "a", None, [2.5, b"x"], {"k": True}).result(5) == \
        [1, "a", None, [2.5, b"x"], {"k": True}]


def test_task_named_by_a_function(ex):
    def is_prime(n):
        raise AssertionError("never called here: forqd runs its own is_prime")
    assert ex.submit(is_prime, 10_000_019).result(5) is True
    assert forq.task_name(is_prime) == "is_prime"
    with pytest.raises(ValueError):
        ex.submit(lambda: 0)


def test_task_error(ex):
    f = ex.submit("is_prime", "seven")
    with pytest.raises(forq.TaskError) as e:
        f.result(5)
    assert e.value.etype == "TypeError" and "is_prime" in e.value.message
    assert str(e.value).startswith("TypeError: ") and e.value.attempts == 1
    assert e.value.job_id == f.job_id


def test_rejected_unknown_task(ex):
    with pytest.raises(forq.Rejected) as e:
        ex.submit("no_such_task").result(5)
    assert e.value.code == "unknown_task"


def test_result_timeout_is_the_standard_one(ex):
    f = ex.submit("sleep", 0.3)
    with pytest.raises(cf.TimeoutError):
        f.result(0.05)
    with pytest.raises(TimeoutError):       # the same class since Python 3.11
        f.exception(0.01)
    assert f.result(5) is None              # the job went on


def test_wait_and_as_completed(ex):
    fs = {ex.submit("sleep", s): s for s in (0.4, 0.05, 0.2)}
    done, not_done = cf.wait(fs, return_when=cf.FIRST_COMPLETED, timeout=5)
    assert [fs[f] for f in done] == [0.05] and len(not_done) == 2
    assert [fs[f] for f in cf.as_completed(fs, timeout=5)] == [0.05, 0.2, 0.4]
    done, not_done = cf.wait(fs, timeout=5)
    assert len(done) == 3 and not not_done
    bad = [ex.submit("sleep", 0.5), ex.submit("is_prime", "x")]
    done, _ = cf.wait(bad, return_when=cf.FIRST_EXCEPTION, timeout=5)
    assert done == {bad[1]}


def test_done_callback_once_in_the_io_thread(ex):
    calls = []
    seen = threading.Event()

    def cb(fut):
        calls.append((fut, threading.current_thread().name))
        seen.set()
    f = ex.submit("sleep", 0.05)
    f.add_done_callback(cb)
    assert seen.wait(5)
    time.sleep(0.05)
    assert calls == [(f, "forq-io")]
    f.add_done_callback(cb)                 # already done: at once, in this thread
    assert calls[-1] == (f, threading.current_thread().name) and len(calls) == 2


def test_callback_may_submit_but_not_wait(ex):
    out = {}
    done = threading.Event()

    def cb(fut):
        g = ex.submit("echo", fut.result())        # done: no wait
        try:
            g.result()
        except RuntimeError as e:
            out["error"] = str(e)
        g.add_done_callback(lambda g: (out.setdefault("value", g.result()), done.set()))
    first = ex.submit("sleep", 0.1)         # not done yet: cb runs in the I/O thread
    first.add_done_callback(cb)
    assert done.wait(5)
    assert out["value"] == [None] and "I/O thread" in out["error"]


def test_cancel_queued_and_running(own_forqd):
    d = Forqd(workers=1)
    own_forqd.append(d)
    with executor(d.endpoint) as ex:
        running = ex.submit("sleep", 30)
        queued = ex.submit("sleep", 30)
        assert wait_running(ex, running.job_id)
        pid = ex.status(running.job_id)["pid"]
        assert queued.cancel() is True and queued.cancelled()
        assert running.cancel() is True                 # stdlib would say False here
        with pytest.raises(cf.CancelledError):
            running.result(1)
        assert wait_until(lambda: ex.status(running.job_id)["status"] == "cancelled", 5)
        assert ex.status(queued.job_id)["status"] == "cancelled"
        # the worker was killed and replaced: the next job runs at once, elsewhere
        assert ex.submit("getpid").result(5) != pid
        assert running.cancel() is True                 # twice: still cancelled
        done = ex.submit("echo", 1)
        done.result(5)
        assert done.cancel() is False


def test_cancel_by_another_client(ex, forqd):
    f = ex.submit("sleep", 30)
    assert wait_running(ex, f.job_id)
    with executor(forqd.endpoint) as other:
        assert other.cancel(f.job_id) == "killing"
        assert other.cancel("never-submitted") == "unknown"
    with pytest.raises(cf.CancelledError):
        f.result(5)
    assert ex.cancel(f.job_id) == "finished"


def test_worker_crash_fails_one_future_only(ex):
    others = [ex.submit("sleep", 0.2) for _ in range(3)]
    crash = ex.submit("segv")
    exited = ex.submit("exit", 3)
    with pytest.raises(forq.WorkerCrashed) as e:
        crash.result(5)
    assert e.value.signal == 11 and e.value.exit_code is None and e.value.attempts == 1
    with pytest.raises(forq.WorkerCrashed) as e:
        exited.result(5)
    assert e.value.exit_code == 3 and e.value.signal is None
    assert [f.result(5) for f in others] == [None, None, None]


def test_options(ex, tmp_path):
    with pytest.raises(forq.JobTimeout) as e:
        ex.submit("sleep", 10, run_timeout=0.2).result(5)
    assert not e.value.deadline and e.value.attempts == 1
    f = ex.submit("crash_once", str(tmp_path / "flag"), retries=1)
    assert f.result(5) == "ok" and f.attempts == 2
    with pytest.raises(forq.TaskError) as e:
        ex.submit("blob", 5000, max_result=1000).result(5)
    assert e.value.etype == "ResultTooLarge"
    d = forq.Dict("py-store", executor=ex)
    assert ex.submit("sum_squares", 10, store=(d, "ten")).result(5) == 285
    assert d["ten"] == 285
    f = ex.submit("echo", 1, job_id="py-my-own-id")
    assert f.job_id == "py-my-own-id" and f.result(5) == [1]
    with pytest.raises(TypeError, match="run_timeout"):
        ex.submit("echo", timeout=1)
    with pytest.raises(TypeError, match="positional"):
        ex.submit("echo", x=1)
    with pytest.raises(ValueError):
        ex.submit("echo", priority=10)
    with pytest.raises(ValueError):
        ex.submit("echo", store=("bad name!", "k"))
    with pytest.raises(TypeError):
        ex.submit("echo", object())


def test_tags(own_forqd):
    """tags= reaches forqd: a job runs only where every tag is (a forqd's own --tag)."""
    d = Forqd("--tag", "gpu", workers=1)
    own_forqd.append(d)
    with executor(d.endpoint) as ex:
        assert ex.submit("echo", 1, tags="gpu").result(5) == [1]
        assert ex.submit("echo", 2, tags=["gpu"]).result(5) == [2]
        waits = ex.submit("echo", 3, tags=["gpu", "big"])     # nobody has "big": it waits
        time.sleep(0.3)
        assert ex.status(waits.job_id)["status"] == "queued"
        assert waits.cancel()
        with pytest.raises(ValueError, match="tags"):
            ex.submit("echo", tags="no spaces")
        with pytest.raises(ValueError, match="tags"):
            ex.submit("echo", tags=[])


def test_deadline_and_priority(own_forqd):
    d = Forqd(workers=1)
    own_forqd.append(d)
    with executor(d.endpoint) as ex:
        busy = ex.submit("sleep", 0.5)
        assert wait_running(ex, busy.job_id)
        late = ex.submit("sleep", 0, deadline=0.1)
        low = [ex.submit("now", priority=1) for _ in range(3)]
        high = ex.submit("now", priority=9)
        with pytest.raises(forq.JobTimeout) as e:
            late.result(5)
        assert e.value.deadline and e.value.attempts == 0
        assert all(high.result(5) < f.result(5) for f in low)


def test_duplicate_id_and_too_large(ex, forqd):
    f = ex.submit("sleep", 5, job_id="py-dup")
    with pytest.raises(ValueError):
        ex.submit("echo", job_id="py-dup")          # this executor waits for it already
    with executor(forqd.endpoint) as other:
        with pytest.raises(forq.Rejected) as e:
            other.submit("echo", job_id="py-dup").result(5)
        assert e.value.code == "duplicate_id"
    f.cancel()
    assert ex.max_payload == 1 << 20                # learned from forqd's pong
    with pytest.raises(forq.Rejected) as e:
        ex.submit("echo", b"x" * (2 << 20))
    assert e.value.code == "too_large" and "--max-payload" in e.value.message


def test_progress(ex):
    reports = []
    f = ex.submit("count_primes", 0, 4194304)
    f.add_progress_callback(lambda fut, p: reports.append(p))
    assert f.result(30) == 295947
    assert f.progress == forq.Progress(4194304, 4194304, f.progress.message)
    assert "primes" in f.progress.message
    assert reports and reports[-1].done == 4194304 and all(p.total == 4194304 for p in reports)


def test_status_ping_stats(ex):
    f = ex.submit("sleep", 5)
    assert wait_running(ex, f.job_id)
    st = f.status()
    assert st["status"] == "running" and st["task"] == "sleep" and st["pid"] > 0
    f.cancel()
    assert ex.status("py-nope")["status"] == "unknown"
    assert ex.ping().startswith("forqd ")
    stats = ex.stats()
    assert "count_primes" in stats["tasks"] and stats["workers"] == 2


def test_threads_submit_and_wait(ex):
    n = 200 if os.environ.get("FORQ_TEST_QUICK") == "1" else 500
    futures: list = []
    lock = threading.Lock()

    def submitter(k):
        fs = [ex.submit("echo", k, i) for i in range(n)]
        with lock:
            futures.extend(fs)
    ts = [threading.Thread(target=submitter, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    results: list = []

    def waiter(fs):
        results.extend(f.result(30) for f in fs)
    ws = [threading.Thread(target=waiter, args=(futures[i::4],)) for i in range(4)]
    for t in ws:
        t.start()
    for t in ws:
        t.join()
    assert sorted(map(tuple, results)) == sorted((k, i) for k in range(8) for i in range(n))


def test_max_in_flight_blocks_submit(forqd):
    with executor(forqd.endpoint, max_in_flight=2) as ex:
        t0 = time.monotonic()
        fs = [ex.submit("sleep", 0.3) for _ in range(3)]
        assert time.monotonic() - t0 >= 0.25        # the third waited for room
        assert [f.result(5) for f in fs] == [None] * 3


def test_asyncio(ex):
    async def main():
        a = await asyncio.wrap_future(ex.submit("sum_squares", 1000))
        b = await ex.submit("is_prime", 10_000_019)
        return a, b
    assert asyncio.run(main()) == (332833500, True)


def test_shutdown(forqd):
    ex = forq.Executor(forqd.endpoint)
    fs = [ex.submit("sleep", 0.2) for _ in range(3)]
    ex.shutdown(wait=True)
    assert all(f.done() and f.result() is None for f in fs)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit("echo")
    ex.shutdown()                               # twice: fine
    with executor(forqd.endpoint) as ex2:
        slow = [ex2.submit("sleep", 30) for _ in range(3)]
        ex2.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in slow)


def test_fetch_detached_job(forqd):
    # a program submits and exits at once: its job is delivered (linger) and runs on
    code = ("import sys; sys.path.insert(0, %r); import forq; "
            "print(forq.Executor(%r).submit('sum_squares', 3000).job_id)"
            % (os.path.join(ROOT, "python"), forqd.endpoint))
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    f = forq.fetch(job_id, forqd.endpoint)
    assert f.result(10) == sum(i * i for i in range(3000))
    with pytest.raises(forq.UnknownJob):
        forq.fetch("py-never-was", forqd.endpoint).result(5)
    with executor(forqd.endpoint) as a, executor(forqd.endpoint) as b:
        f = a.submit("sleep", 0.3)
        assert wait_running(a, f.job_id)       # b's fetch must not overtake a's submit
        g = b.fetch(f.job_id)
        assert g.result(5) is None and f.result(5) is None


def test_connection_errors(tmp_path):
    with pytest.raises(forq.ConnectionError, match="socket file does not exist"):
        forq.Executor("ipc://%s/none.sock" % tmp_path)
    with pytest.raises(forq.ConnectionError, match="no forqd at"):
        forq.Executor("tcp://127.0.0.1:%d" % _closed_port(), connect_timeout=0.3)
    with pytest.raises(ValueError, match="ipc:// or tcp://"):
        forq.Executor("http://example.org/")
    assert issubclass(forq.ConnectionError, ConnectionError)


def _closed_port() -> int:
    from conftest import free_port
    return free_port()


def _submit_and_leave(endpoint, job_id):
    forq.Executor(endpoint).submit("sum_squares", 2000, job_id=job_id)     # and leave at once


def test_a_forked_child_that_leaves_delivers_its_jobs(forqd):
    """A multiprocessing child ends with os._exit (no atexit): its unsent jobs still go."""
    import multiprocessing as mp
    for i in range(5):
        job_id = "py-leave-%d-%d" % (os.getpid(), i)
        p = mp.get_context("fork").Process(target=_submit_and_leave,
                                           args=(forqd.endpoint, job_id))
        p.start()
        p.join(30)
        assert p.exitcode == 0
        assert forq.fetch(job_id, forqd.endpoint).result(10) == sum(x * x for x in range(2000))
