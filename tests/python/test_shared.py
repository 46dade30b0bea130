"""forq.Queue, forq.Lock, forq.Semaphore, forq.Event, forq.Value and fenced dict writes against a
real forqd (PROTOCOL.md section 6.9), across processes as multiprocessing programs use them."""
from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import subprocess
import threading
import time

import pytest

import forq
from conftest import FORQD, QUICK, Forqd, Proxy, executor, free_port, wait_until

N_ITEMS = 500 if QUICK else 2000          # per consumer
N_LOCKED = 100 if QUICK else 500         # get-then-set rounds per process
N_VALUE = 200 if QUICK else 1000         # Value increments per process


def uniq(what: str) -> str:
    return "t-%s-%d-%d" % (what, os.getpid(), time.monotonic_ns() % 10**9)


def run_procs(target, args_list, ctx=None, timeout: float = 120.0) -> None:
    ctx = ctx or multiprocessing.get_context("fork")
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0] * len(procs)


# ---- queues ----

def producer(q: forq.Queue) -> None:
    for fruit in ("apple", "banana", "cherry", None):
        q.put(fruit)


def consumer(q: forq.Queue, out: forq.Queue) -> None:
    got = []
    while True:
        item = q.get(timeout=30)
        if item is None:
            break
        got.append(item)
    out.put(got)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_producer_consumer_order(forqd, method):
    q = forq.Queue(uniq("fruit"), endpoint=forqd.endpoint)
    out = forq.Queue(uniq("out"), endpoint=forqd.endpoint)
    ctx = multiprocessing.get_context(method)     # spawn: the handles travel pickled
    c = ctx.Process(target=consumer, args=(q, out))
    c.start()
    p = ctx.Process(target=producer, args=(q,))
    p.start()
    p.join(60)
    c.join(60)
    assert (p.exitcode, c.exitcode) == (0, 0)
    assert out.get(timeout=5) == ["apple", "banana", "cherry"]
    assert q.qsize() == 0
    q.close()                           # as multiprocessing code ends: nothing left to send
    q.join_thread()


def take_all(q: forq.Queue, out: forq.Queue) -> None:
    got = []
    while True:
        item = q.get(timeout=60)
        if item is None:
            break
        got.append(item)
    out.put(got)


def test_four_consumers_get_every_item_exactly_once(forqd):
    q = forq.Queue(uniq("work"), endpoint=forqd.endpoint)
    out = forq.Queue(uniq("taken"), endpoint=forqd.endpoint)
    total = 4 * N_ITEMS
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=take_all, args=(q, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for i in range(total):
        q.put(i)
    for _ in procs:
        q.put(None)
    taken = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    every = sorted(x for got in taken for x in got)
    assert every == list(range(total))                 # none lost, none twice
    for got in taken:
        assert got == sorted(got)                      # each consumer saw them in order
    assert q.qsize() == 0


def blocked_getter(q: forq.Queue, ready: forq.Queue) -> None:
    ready.put("waiting")
    q.get()                             # killed while it waits here
    os._exit(3)                         # never reached: it must not get an item


def test_consumer_killed_while_waiting_takes_nothing(forqd):
    q = forq.Queue(uniq("killed"), endpoint=forqd.endpoint)
    ready = forq.Queue(uniq("killed-ready"), endpoint=forqd.endpoint)
    p = multiprocessing.get_context("fork").Process(target=blocked_getter, args=(q, ready))
    p.start()
    assert ready.get(timeout=30) == "waiting"
    time.sleep(0.3)                     # its get is in forqd's line
    p.kill()
    p.join(10)
    assert p.exitcode == -signal.SIGKILL
    q.put("item")
    assert q.get(timeout=5) == "item"


def test_maxsize_back_pressure(forqd):
    q = forq.Queue(uniq("bounded"), 2, forqd.endpoint)
    q.put("a")
    q.put("b")
    assert q.full() and q.qsize() == 2
    with pytest.raises(queue.Full, match="maxsize 2"):
        q.put_nowait("c")
    t0 = time.monotonic()
    with pytest.raises(queue.Full, match="no room came within 0.3 s"):
        q.put("c", timeout=0.3)
    assert 0.25 <= time.monotonic() - t0 < 3.0
    assert q.peek() == ["a", "b"]                      # nothing was put
    # a blocked put goes in as soon as a get makes room
    done = []
    t = threading.Thread(target=lambda: done.append(q.put("c", timeout=10)))
    t.start()
    time.sleep(0.2)
    assert not done and q.qsize() == 2
    assert q.get() == "a"
    t.join(10)
    assert done == [None]
    assert [q.get_nowait(), q.get_nowait()] == ["b", "c"]
    assert q.empty()


def test_get_timeout_raises_empty_in_time(forqd):
    q = forq.Queue(uniq("empty"), endpoint=forqd.endpoint)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(False)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty, match="within 0.5 s"):
        q.get(timeout=0.5)
    took = time.monotonic() - t0
    assert 0.45 <= took < 2.0, took
    with pytest.raises(ValueError):
        q.get(timeout=-1)


def test_put_front_peek_clear_and_values(forqd):
    q = forq.Queue(uniq("misc"), endpoint=forqd.endpoint)
    q.put({"n": 1})
    q.put(b"\x00raw")
    q.put("first", front=True)
    assert q.peek() == ["first", {"n": 1}, b"\x00raw"]
    assert q.peek(1, 1) == [{"n": 1}]
    assert q.get() == "first"
    assert q.clear() == 2 and q.empty()
    with pytest.raises(TypeError, match="msgpack value"):
        q.put(object())
    with pytest.raises(ValueError, match="1-64 characters"):
        forq.Queue("no spaces", endpoint=forqd.endpoint)


def interrupt_main_after(delay: float) -> threading.Thread:
    """SIGINT to the main thread (the test's) after ``delay`` s: KeyboardInterrupt there."""
    main = threading.main_thread().ident
    t = threading.Timer(delay, signal.pthread_kill, (main, signal.SIGINT))
    t.start()
    return t


@pytest.fixture
def sigint_raises():
    """Python's own SIGINT handler (KeyboardInterrupt), whatever the suite was started with."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def shared_waiters(endpoint: str) -> int:
    ex = forq.Executor(endpoint)
    try:
        return ex.stats()["shared_waiters"]
    finally:
        ex.shutdown()


def test_interrupted_blocking_get_loses_no_item(forqd, sigint_raises):
    name = uniq("interrupted")
    q = forq.Queue(name, endpoint=forqd.endpoint)
    interrupt_main_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        q.get()                 # no timeout: forqd keeps this get waiting
    # withdrawn before the exception left get(): out of forqd's line, it takes nothing
    assert shared_waiters(forqd.endpoint) == 0
    other = forq.Executor(forqd.endpoint)
    try:
        q2 = forq.Queue(name, executor=other)
        q2.put("precious")
        assert q2.qsize() == 1
        assert q2.get(timeout=5) == "precious"
        assert q2.qsize() == 0
    finally:
        other.shutdown()


def test_interrupted_get_with_timeout_loses_no_item(forqd, sigint_raises):
    name = uniq("interrupted-t")
    q = forq.Queue(name, endpoint=forqd.endpoint)
    interrupt_main_after(0.2)
    with pytest.raises(KeyboardInterrupt):
        q.get(timeout=3)
    assert shared_waiters(forqd.endpoint) == 0
    q.put("kept")               # before forqd's 3 s are over: no withdrawn get takes it
    assert q.qsize() == 1
    assert q.get(timeout=5) == "kept"


def test_interrupted_put_and_event_wait_are_withdrawn(forqd, sigint_raises):
    """A put waiting for room and an event wait, interrupted: out of forqd's line at once; the
    put's item is never put, even when room comes."""
    name = uniq("put-withdrawn")
    q = forq.Queue(name, maxsize=1, endpoint=forqd.endpoint)
    q.put("first")
    interrupt_main_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        q.put("second")                 # waits for room
    assert shared_waiters(forqd.endpoint) == 0
    assert q.get(timeout=5) == "first"  # room: a put still waiting would go in now
    time.sleep(0.2)
    assert q.qsize() == 0
    ev = forq.Event(uniq("ev-withdrawn"), endpoint=forqd.endpoint)
    interrupt_main_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        ev.wait()
    assert shared_waiters(forqd.endpoint) == 0


def test_get_our_wait_ends_first_withdraws(forqd, monkeypatch):
    """When this process stops waiting before forqd's timeout (here: a grace made negative),
    the get is withdrawn: TimeoutError, and the next item is there for the next get."""
    name = uniq("ours-first")
    q = forq.Queue(name, endpoint=forqd.endpoint)
    monkeypatch.setattr(forq.shared, "WAIT_GRACE", -2.7)
    with pytest.raises(TimeoutError, match="withdrawn, nothing was taken"):
        q.get(timeout=3)            # forqd would wait 3 s; this process 0.3 s
    assert shared_waiters(forqd.endpoint) == 0
    monkeypatch.setattr(forq.shared, "WAIT_GRACE", 5.0)
    q.put("next")
    assert q.qsize() == 1
    assert q.get(timeout=5) == "next"


def test_interrupted_get_answered_first_is_rescued(forqd, sigint_raises, monkeypatch):
    """When forqd answered the get before the withdraw came (here: the withdraw says so), the
    item in that answer goes back to the front of the queue, as before withdrawing existed."""
    name = uniq("answered-first")
    q = forq.Queue(name, endpoint=forqd.endpoint)
    asked = []

    def too_late(self, conn, call, op):     # forqd's answer "not_waiting", as if it came first
        asked.append(op)
        return False
    monkeypatch.setattr(forq.shared.Handle, "_withdraw", too_late)
    interrupt_main_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        q.get()
    assert asked == ["queue.get"]
    other = forq.Executor(forqd.endpoint)
    try:
        q2 = forq.Queue(name, executor=other)
        q2.put("first")                 # the abandoned get takes it; it comes back
        assert wait_until(lambda: q2.qsize() == 1, 5)
        q2.put("second")
        assert [q2.get(timeout=5), q2.get(timeout=5)] == ["first", "second"]
    finally:
        other.shutdown()


def test_withdraw_on_the_wire(forqd):
    """queue.withdraw names the req of the connection's own waiting get: found, then (answered
    or unknown) not_waiting; another connection's is refused."""
    name = uniq("wire")
    a = forq.Executor(forqd.endpoint)
    b = forq.Executor(forqd.endpoint)
    try:
        call = a._conn.request({"v": 1, "cmd": "dict", "op": "queue.get", "name": name,
                                "block": True})
        deadline = time.monotonic() + 5
        while shared_waiters(forqd.endpoint) != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        wd = {"v": 1, "cmd": "dict", "op": "queue.withdraw", "name": name, "of": call.key}
        with pytest.raises(forq.errors.Error, match="another connection"):
            b._conn.call(dict(wd))
        h, _ = a._conn.call(dict(wd))
        assert h["found"] is True
        a._conn.forget(call.key)
        h, _ = a._conn.call(dict(wd))
        assert h.get("found") is not True and h["code"] == "not_waiting"
        assert shared_waiters(forqd.endpoint) == 0
    finally:
        a.shutdown()
        b.shutdown()


def test_get_cut_off_by_a_reconnection_loses_no_item(own_forqd):
    """A reconnection fails the requests that were on their way (forq.ConnectionError); forqd,
    which still has the get waiting and sees the same routing id again, answers it later: the
    item goes back to the queue. The connection is cut for real, by a TCP relay."""
    port = free_port()
    d = Forqd("--insecure-tcp", listen="tcp://127.0.0.1:%d" % port, workers=1)
    own_forqd.append(d)
    proxy = Proxy(port)
    name = uniq("cut-off")
    ex = forq.Executor("tcp://127.0.0.1:%d" % proxy.port)
    try:
        q = forq.Queue(name, executor=ex)
        errs = []

        def get() -> None:
            try:
                q.get(timeout=20)
            except Exception as e:      # noqa: BLE001 - what the test looks at
                errs.append(e)
        t = threading.Thread(target=get)
        t.start()
        assert wait_until(lambda: shared_waiters(d.endpoint) == 1, 5)
        first = ex._conn.instance
        proxy.cut()
        assert wait_until(lambda: ex.unreachable_for > 0, 5)
        proxy.open = True               # ZeroMQ reconnects by itself
        t.join(10)
        assert len(errs) == 1 and isinstance(errs[0], forq.ConnectionError), errs
        assert "given back" in str(errs[0])
        assert wait_until(lambda: ex._conn._restart == "same", 5)     # the pong: same forqd
        assert ex._conn.instance == first
        assert shared_waiters(d.endpoint) == 1      # the get still waits in forqd
        q.put("survivor")               # it goes to that get, whose answer is given back
        assert q.get(timeout=5) == "survivor"
        assert q.qsize() == 0
    finally:
        ex.shutdown(wait=False, cancel_futures=True)
        proxy.close()


@pytest.fixture(scope="module")
def curve_forqd(tmp_path_factory):
    """A tcp forqd with CURVE and a clients file: (forqd, its public key, a client's key file
    that may change every name)."""
    tmp = str(tmp_path_factory.mktemp("curve-shared"))
    key = os.path.join(tmp, "client.key")
    clients = os.path.join(tmp, "clients")
    with open(clients, "w") as f:
        f.write("%s carol write=*\n" % forq.write_keyfile(key))
    server_key = os.path.join(tmp, "server.key")
    pub = subprocess.run([FORQD, "--show-key", "--server-key", server_key],
                         capture_output=True, text=True, check=True).stdout.strip()
    d = Forqd("--clients", clients, "--server-key", server_key,
              listen="tcp://127.0.0.1:%d" % free_port(), tmp=tmp)
    yield d, pub, key
    assert d.stop() == 0, d.logtext()
    d.remove()


def put_method(q: forq.Queue, method: str) -> None:
    q.put(method)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_executor_keys_travel_with_the_handle(curve_forqd, monkeypatch, method):
    """A handle made with executor= on a CURVE forqd works in a child: inherited by fork or
    pickled for spawn, it connects there with the executor's keys."""
    d, pub, key = curve_forqd
    for var in ("FORQ_ENDPOINT", "FORQ_KEY", "FORQ_SERVER_KEY"):
        monkeypatch.delenv(var, raising=False)
    with executor(d.endpoint, key=key, server_key=pub) as ex:
        q = forq.Queue(uniq("curve"), executor=ex)
        assert pickle.loads(pickle.dumps(q))._state()["server_key"] == pub
        run_procs(put_method, [(q, method)], ctx=multiprocessing.get_context(method))
        assert q.get(timeout=5) == method


def requests_kept(ex: forq.Executor) -> list:
    """The request numbers the connection keeps a place for (shared.py's _Pending)."""
    return [k for k in list(ex._conn.pending) if type(k) is int]


def test_requests_cut_off_are_forgotten_when_forqd_restarts(own_forqd):
    """A get lost with the connection keeps its place for an answer the same forqd may still
    send; once a new forqd instance answers in its place, none can come: the place goes."""
    d = Forqd(workers=1)
    own_forqd.append(d)
    ex = forq.Executor(d.endpoint, lost_after=0.5)
    try:
        q = forq.Queue(uniq("orphan"), executor=ex)
        errs = []

        def get() -> None:
            try:
                q.get(timeout=30)
            except Exception as e:      # noqa: BLE001 - what the test looks at
                errs.append(e)
        t = threading.Thread(target=get)
        t.start()
        assert wait_until(lambda: len(requests_kept(ex)) == 1, 5)
        time.sleep(0.2)                 # the get waits in forqd
        assert d.stop(signal.SIGKILL) == -signal.SIGKILL
        t.join(10)
        assert len(errs) == 1 and isinstance(errs[0], forq.ConnectionError), errs
        assert len(requests_kept(ex)) == 1          # kept: an answer may still come
        first = ex._conn.instance
        d.start()                                   # a new instance on the same endpoint
        assert wait_until(lambda: ex._conn.instance not in (0, first), 10)
        assert wait_until(lambda: not requests_kept(ex), 5), requests_kept(ex)
        q.put("after")
        assert q.get(timeout=5) == "after"
    finally:
        ex.shutdown(wait=False, cancel_futures=True)


def test_get_sent_while_forqd_is_away_is_answered_by_the_next_one(own_forqd, tmp_path):
    """A get sent while forqd is away waits in ZeroMQ and goes to the forqd that comes (a new
    instance, here with the queue's item kept by --state-dir): its answer, which nobody waits
    for any more, is still rescued - the item goes back to the queue."""
    d = Forqd("--state-dir", str(tmp_path), workers=1)
    own_forqd.append(d)
    ex = forq.Executor(d.endpoint, lost_after=0.5)
    try:
        q = forq.Queue(uniq("kept"), executor=ex)
        q.put("precious")
        assert d.stop() == 0
        assert wait_until(lambda: ex.unreachable_for > 0, 5)
        with pytest.raises(forq.ConnectionError):
            q.get_nowait()              # sent to nobody yet; lost after 0.5 s
        assert len(requests_kept(ex)) == 1
        d.start()
        assert wait_until(lambda: not requests_kept(ex), 10)
        assert q.get(timeout=5) == "precious"
    finally:
        ex.shutdown(wait=False, cancel_futures=True)


def test_get_waiting_in_the_next_forqd_is_withdrawn(own_forqd):
    """A blocking get sent while forqd is away, given up (lost_after), waits in the forqd that
    comes next: it is withdrawn there, so the next item put is not taken by nobody."""
    d = Forqd(workers=1)
    own_forqd.append(d)
    ex = forq.Executor(d.endpoint, lost_after=0.5)
    try:
        q = forq.Queue(uniq("next"), executor=ex)
        assert d.stop() == 0
        assert wait_until(lambda: ex.unreachable_for > 0, 5)
        with pytest.raises(forq.ConnectionError):
            q.get(timeout=30)           # ZeroMQ keeps it for the next forqd
        assert len(requests_kept(ex)) == 1
        d.start()
        assert wait_until(lambda: not requests_kept(ex), 10)
        assert shared_waiters(d.endpoint) == 0
        q.put("precious")
        assert q.get(timeout=5) == "precious"
    finally:
        ex.shutdown(wait=False, cancel_futures=True)


# ---- locks ----

def locked_adder(lock: forq.Lock, endpoint: str, name: str, rounds: int) -> None:
    d = forq.Dict(name, endpoint)       # a forq.Dict is made in the process that uses it
    for _ in range(rounds):
        with lock:
            n = d.get("n", 0)                       # a read-modify-write, not atomic alone
            lock.fence(d)["n"] = n + 1


def test_lock_mutual_exclusion_four_processes(forqd):
    lock = forq.Lock(uniq("mutex"), forqd.endpoint, lease=30)
    d = forq.Dict(uniq("count"), forqd.endpoint)
    d["n"] = 0
    run_procs(locked_adder, [(lock, forqd.endpoint, d.name, N_LOCKED)] * 4)
    assert d["n"] == 4 * N_LOCKED
    d.clear()


def test_expired_lease_lets_the_next_in_with_a_larger_token(forqd):
    name = uniq("lease")
    d = forq.Dict(uniq("fenced"), forqd.endpoint)
    first = forq.Lock(name, forqd.endpoint, lease=0.3)
    assert first.acquire()
    old = first.token
    first.fence(d)["owner"] = "first"
    nxt = forq.Lock(name, forqd.endpoint, lease=30)
    t0 = time.monotonic()
    assert nxt.acquire(timeout=10)                  # the first holder never releases
    assert 0.2 <= time.monotonic() - t0 < 5
    assert nxt.token > old
    nxt.fence(d)["owner"] = "next"
    # the first holder wakes up late: its fenced write is refused, nothing changes
    with pytest.raises(forq.StaleToken, match="not held with token %d" % old) as e:
        first.fence(d)["owner"] = "first again"
    assert (e.value.lock, e.value.token) == (name, old)
    assert d["owner"] == "next"
    with pytest.raises(forq.StaleToken, match="had already ended"):
        first.release()
    assert first.token is None
    nxt.release()
    d.clear()


def short_holder(lock: forq.Lock, out: forq.Queue) -> None:
    lock.acquire()
    out.put(lock.token)
    time.sleep(60)                      # killed while it holds the lock


def test_killed_holder_frees_the_lock_when_its_lease_ends(forqd):
    name = uniq("killed-holder")
    out = forq.Queue(uniq("holder-token"), endpoint=forqd.endpoint)
    p = multiprocessing.get_context("fork").Process(
        target=short_holder, args=(forq.Lock(name, forqd.endpoint, lease=0.5), out))
    p.start()
    token = out.get(timeout=30)
    p.kill()
    p.join(10)
    nxt = forq.Lock(name, forqd.endpoint)
    assert nxt.acquire(timeout=10)
    assert nxt.token > token
    nxt.release()


def test_stale_token_fenced_writes_are_refused(forqd):
    name = uniq("stale")
    d = forq.Dict(uniq("guarded"), forqd.endpoint)
    lock = forq.Lock(name, forqd.endpoint)
    with lock:
        token = lock.token
        f = forq.fenced(d, name, token)
        f["k"] = 1
        assert f.incr("k") == 2
        v = d.get_versioned("k")
        f.cas("k", v.version, 3)
    assert lock.token is None
    for change in (lambda: f.__setitem__("k", 9), lambda: f.cas("k", 0, 9),
                   lambda: f.incr("k"), lambda: f.update(k=9), lambda: f.pop("k"),
                   lambda: f.__delitem__("k"), lambda: f.clear()):
        with pytest.raises(forq.StaleToken, match="nothing was changed"):
            change()
    assert d["k"] == 3
    with pytest.raises(RuntimeError, match="not held by this handle"):
        lock.fence(d)["k"] = 4
    d.clear()


def test_lock_api(forqd):
    name = uniq("api")
    a = forq.Lock(name, forqd.endpoint)
    b = forq.Lock(name, forqd.endpoint)
    assert a.acquire(blocking=False)
    with pytest.raises(RuntimeError, match="not reentrant"):
        a.acquire()
    assert not b.acquire(False)
    t0 = time.monotonic()
    assert not b.acquire(timeout=0.3)
    assert 0.25 <= time.monotonic() - t0 < 3
    a.renew(10)
    a.release()
    with pytest.raises(ValueError, match="released more times"):
        a.release()
    with b as held:
        assert held is b and b.token
    with pytest.raises(ValueError):
        forq.Lock(name, forqd.endpoint, lease=0)
    with pytest.raises(ValueError, match="non-blocking"):
        a.acquire(False, 1)


def test_interrupted_acquire_is_never_granted(forqd, sigint_raises):
    name = uniq("late-grant")
    holder = forq.Lock(name, forqd.endpoint, lease=30)
    assert holder.acquire()
    waiter = forq.Lock(name, forqd.endpoint, lease=30)
    interrupt_main_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        waiter.acquire()            # withdrawn: out of forqd's line, never granted
    assert waiter.token is None
    assert shared_waiters(forqd.endpoint) == 0
    holder.release()
    third = forq.Lock(name, forqd.endpoint)
    assert third.acquire(timeout=5)     # the late grant was released, not kept for 30 s
    third.release()


def forked_while_held(lock: forq.Lock, endpoint: str, dname: str, out: forq.Queue) -> None:
    seen: dict = {"token": lock.token}
    try:
        lock.fence(forq.Dict(dname, endpoint))["owner"] = "child"
        seen["fenced"] = "written"
    except RuntimeError:
        seen["fenced"] = "refused"
    t0 = time.monotonic()
    try:
        seen["acquired"] = lock.acquire(timeout=1)
    except RuntimeError as e:
        seen["acquired"] = str(e)
    seen["waited"] = time.monotonic() - t0
    out.put(seen)


def test_forked_child_does_not_inherit_the_grant(forqd):
    """A child forked while the parent holds the lock holds nothing: no token, a fenced write
    is refused (not fenced with the parent's grant), and its acquire waits like another's."""
    lock = forq.Lock(uniq("fork-held"), forqd.endpoint, lease=30)
    d = forq.Dict(uniq("fork-fenced"), forqd.endpoint)
    out = forq.Queue(uniq("fork-seen"), endpoint=forqd.endpoint)
    assert lock.acquire()
    lock.fence(d)["owner"] = "parent"
    run_procs(forked_while_held, [(lock, forqd.endpoint, d.name, out)])
    seen = out.get(timeout=5)
    assert seen["token"] is None, seen
    assert seen["fenced"] == "refused", seen
    assert seen["acquired"] is False and 0.9 <= seen["waited"] < 5, seen
    assert d["owner"] == "parent"
    assert lock.token is not None          # the parent's grant is the parent's still
    lock.release()
    d.clear()


def test_release_that_fails_keeps_the_grant_to_retry(forqd, monkeypatch):
    """A release whose request fails (the connection dropped, no answer in time) leaves the
    grant with the handle: the caller retries, and the lock is free at once, not at the end of
    its lease."""
    name = uniq("release-retry")
    lock = forq.Lock(name, forqd.endpoint, lease=30)
    other = forq.Lock(name, forqd.endpoint)
    assert lock.acquire()
    token = lock.token
    real = forq.shared.Handle._call

    def dropped(self, op, *args, **kwargs):
        if op == "lock.release":
            raise forq.ConnectionError("the connection to forqd dropped (simulated)")
        return real(self, op, *args, **kwargs)
    monkeypatch.setattr(forq.shared.Handle, "_call", dropped)
    with pytest.raises(forq.ConnectionError):
        lock.release()
    monkeypatch.undo()
    assert lock.token == token
    lock.release()
    assert lock.token is None
    assert other.acquire(timeout=5)
    other.release()


class _InterruptedAnswer(dict):
    """An answer whose first look raises KeyboardInterrupt: a Ctrl-C that comes just after
    _wait_call returned it."""

    def get(self, *args):
        raise KeyboardInterrupt


def test_acquire_interrupted_after_its_answer_loses_no_grant(forqd, monkeypatch):
    name = uniq("late-interrupt")
    lock = forq.Lock(name, forqd.endpoint, lease=30)
    other = forq.Lock(name, forqd.endpoint)
    real = forq.shared.Handle._wait_call

    def answered_then_interrupted(self, *args, **kwargs):
        h, payload = real(self, *args, **kwargs)
        return _InterruptedAnswer(h), payload
    monkeypatch.setattr(forq.shared.Handle, "_wait_call", answered_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        lock.acquire()
    monkeypatch.undo()
    if lock.token is not None:          # the handle kept the grant: its release frees the lock
        lock.release()
    assert other.acquire(timeout=2)     # not held by nobody until its lease ends
    other.release()


def test_semaphore(forqd):
    name = uniq("sem")
    s = forq.Semaphore(name, 2, forqd.endpoint)
    other = forq.Semaphore(name, 2, forqd.endpoint)
    assert s.acquire() and s.acquire()
    first, second = s._held[0][1], s.token
    assert second > first
    assert not other.acquire(False)
    s.release()                         # the latest grant first
    assert s.token == first
    assert other.acquire(timeout=5)
    other.release()
    s.release()
    with pytest.raises(ValueError):
        forq.Semaphore(name, 0, forqd.endpoint)


# ---- events ----

def event_waiter(e: forq.Event, out: forq.Queue) -> None:
    out.put("waiting")
    out.put(e.wait(30))


def test_event_across_processes(forqd):
    e = forq.Event(uniq("ready"), forqd.endpoint)
    out = forq.Queue(uniq("ev-out"), endpoint=forqd.endpoint)
    assert not e.is_set()
    t0 = time.monotonic()
    assert e.wait(0.3) is False
    assert 0.25 <= time.monotonic() - t0 < 3
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=event_waiter, args=(e, out)) for _ in range(2)]
    for p in procs:
        p.start()
    assert [out.get(timeout=30), out.get(timeout=30)] == ["waiting", "waiting"]
    time.sleep(0.2)
    assert out.qsize() == 0             # both still wait
    e.set()
    assert [out.get(timeout=30), out.get(timeout=30)] == [True, True]
    for p in procs:
        p.join(10)
    assert e.is_set() and e.wait(0) and e.wait()
    e.clear()
    assert not e.is_set()


# ---- values ----

def value_adder(v: forq.Value, rounds: int) -> None:
    for _ in range(rounds):
        with v.get_lock():
            v.value += 1


def test_value_counter_four_processes(forqd):
    counter = forq.Value(uniq("counter"), "i", 0, forqd.endpoint)
    run_procs(value_adder, [(counter, N_VALUE)] * 4)
    assert counter.value == 4 * N_VALUE
    forq.Dict(counter.name, forqd.endpoint).clear()


def test_value_types_attach_and_fence(forqd):
    name = uniq("val")
    v = forq.Value(name, "d", 1.5, forqd.endpoint)
    assert v.value == 1.5
    v.value = 2
    assert v.value == 2.0 and type(v.value) is float
    again = forq.Value(name, "d", endpoint=forqd.endpoint)     # attaches: no reset
    assert again.value == 2.0
    assert pickle.loads(pickle.dumps(v)).value == 2.0
    assert forq.Dict(name, forqd.endpoint)["value"] == 2.0
    b = forq.Value(uniq("byte"), "B", 255, forqd.endpoint)
    with pytest.raises(OverflowError):
        b.value = 256
    with pytest.raises(TypeError):
        b.value = "x"
    with pytest.raises(ValueError, match="typecode"):
        forq.Value(name, "z", 0, forqd.endpoint)
    fresh = forq.Value(uniq("zero"), "q", endpoint=forqd.endpoint)
    assert fresh.value == 0
    # under its lock a write is fenced: once the lease is over it is refused
    short = forq.Value(uniq("short"), "i", 0, forqd.endpoint,
                       lock=forq.Lock(uniq("short-lock"), forqd.endpoint, lease=0.2))
    lock = short.get_lock()
    lock.acquire()
    short.value = 1
    time.sleep(0.5)
    with pytest.raises(forq.StaleToken):
        short.value = 2
    assert short.value == 1
    with pytest.raises(forq.StaleToken):
        lock.release()
    for n in (name, fresh.name, short.name, b.name):
        forq.Dict(n, forqd.endpoint).clear()
