"""forqd going away under pending futures: a restart (jobs with retries are submitted again,
the others end Lost), a forqd that does not come back (lost_after), a reconnection to the same
forqd (results that finished meanwhile are fetched), shutdown with pending jobs."""
import signal
import time

import pytest

import forq
from conftest import Forqd, Proxy, executor, free_port, wait_running, wait_until


def test_restart_resubmits_with_retries_else_lost(own_forqd):
    d = Forqd(workers=2)
    own_forqd.append(d)
    ex = forq.Executor(d.endpoint)
    try:
        keep = [ex.submit("sleep", 0.3, retries=1) for _ in range(3)]
        lose = [ex.submit("sleep", 0.3) for _ in range(3)]
        assert wait_running(ex, keep[0].job_id)
        first = ex._conn.instance
        assert d.stop(signal.SIGKILL) == -signal.SIGKILL       # its workers die with it
        d.start()                                               # a new instance, same endpoint
        assert [f.result(20) for f in keep] == [None] * 3
        for f in lose:
            with pytest.raises(forq.Lost, match="restarted"):
                f.result(20)
        assert ex._conn.instance != first
        assert ex.submit("echo", 1).result(5) == [1]            # and it goes on
    finally:
        ex.shutdown(wait=False, cancel_futures=True)


def test_unreachable_for_lost_after(own_forqd):
    d = Forqd(workers=1)
    own_forqd.append(d)
    ex = forq.Executor(d.endpoint, lost_after=0.5)
    try:
        f = ex.submit("sleep", 30)
        assert wait_running(ex, f.job_id)
        d.stop(signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(forq.Lost, match="unreachable"):
            f.result(10)
        assert 0.3 < time.monotonic() - t0 < 5
        assert ex.unreachable_for > 0
        g = ex.submit("echo", 1)                # submitted while forqd is away
        with pytest.raises(forq.Lost):
            g.result(10)
    finally:
        ex.shutdown(wait=False, cancel_futures=True)


def test_results_of_a_reconnection_are_fetched(own_forqd):
    """The connection drops while the job runs and finishes; after the reconnection (the same
    forqd) the client fetches it: the result forqd could not deliver still arrives."""
    port = free_port()
    d = Forqd("--insecure-tcp", listen="tcp://127.0.0.1:%d" % port, workers=1)
    own_forqd.append(d)
    proxy = Proxy(port)
    try:
        with executor("tcp://127.0.0.1:%d" % proxy.port) as ex:
            f = ex.submit("sleep", 0.3)
            assert wait_running(ex, f.job_id)
            first = ex._conn.instance
            proxy.cut()
            assert wait_until(lambda: ex.unreachable_for > 0, 5)
            time.sleep(0.5)                 # the job finishes while the client is away
            assert not f.done()
            proxy.open = True               # ZeroMQ reconnects by itself
            assert f.result(10) is None
            assert ex._conn.instance == first and ex._conn._restart == "same"
            assert ex.ping() and ex.submit("echo", 2).result(5) == [2]
    finally:
        proxy.close()


def test_shutdown_while_forqd_is_gone(own_forqd):
    d = Forqd(workers=1)
    own_forqd.append(d)
    ex = forq.Executor(d.endpoint)
    f = ex.submit("sleep", 30)
    assert wait_running(ex, f.job_id)
    d.stop(signal.SIGKILL)
    assert wait_until(lambda: ex.unreachable_for > 0, 5)
    t0 = time.monotonic()
    ex.shutdown(wait=False, cancel_futures=True)
    assert f.cancelled() and time.monotonic() - t0 < 1
