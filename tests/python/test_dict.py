"""forq.Dict against forqd's dict service: the MutableMapping, paging, the atomic operations,
wait, errors, and four processes incrementing one counter."""
import multiprocessing as mp
import os
import threading
import time

import pytest

import forq
from conftest import Forqd, executor


@pytest.fixture
def d(ex, request):
    dd = forq.Dict("py-" + request.node.name[:50], executor=ex)
    dd.clear()
    yield dd
    dd.clear()


def test_mapping(d):
    assert len(d) == 0 and list(d) == [] and "a" not in d
    d["a"] = 1
    d["b"] = [1, "two", {"three": 3.0}, b"\x00"]
    assert d["a"] == 1 and d["b"] == [1, "two", {"three": 3.0}, b"\x00"]
    assert len(d) == 2 and "a" in d and 5 not in d
    assert list(d) == ["a", "b"] and list(d.keys()) == ["a", "b"]
    assert dict(d.items()) == {"a": 1, "b": [1, "two", {"three": 3.0}, b"\x00"]}
    assert list(d.values())[0] == 1 and d.copy() == dict(d.items())
    assert d.get("a") == 1 and d.get("zz") is None and d.get("zz", 5) == 5
    with pytest.raises(KeyError):
        d["zz"]
    del d["a"]
    with pytest.raises(KeyError):
        del d["a"]
    assert d == {"b": [1, "two", {"three": 3.0}, b"\x00"]}
    with pytest.raises(TypeError):
        d[1] = 2
    with pytest.raises(ValueError):
        d[""] = 1
    with pytest.raises(ValueError):
        d["a\0b"] = 1
    assert repr(d).startswith("forq.Dict(")


def test_update_setdefault_pop(d):
    d.update({"x": 1, "y": 2}, z=3)
    d.update([("w", 0)])
    assert dict(d.items()) == {"x": 1, "y": 2, "z": 3, "w": 0}
    assert d.setdefault("x", 9) == 1 and d.setdefault("n", 9) == 9 and d["n"] == 9
    assert d.pop("x") == 1 and d.pop("x", "gone") == "gone"
    with pytest.raises(KeyError):
        d.pop("x")
    assert d.popitem() == ("y", 2)
    d.clear()
    assert len(d) == 0
    with pytest.raises(KeyError):
        d.popitem()
    with pytest.raises(TypeError):
        d.update({1: 2})
    assert len(d) == 0          # nothing sent: all keys or none


def test_paging(d):
    n = 2500
    d.update({"k%05d" % i: i for i in range(n)})
    assert len(d) == n
    assert list(d) == ["k%05d" % i for i in range(n)]
    assert sum(v for _, v in d.items()) == sum(range(n))
    it = iter(d)
    for _ in range(1000):
        next(it)
    del d["k00999"]             # the page boundary's key
    with pytest.raises(RuntimeError, match="changed during iteration"):
        list(it)


def test_incr_versions_cas(d):
    assert d.incr("c") == 1 and d.incr("c", 10) == 11 and d.incr("c", -12) == -1
    d["s"] = "text"
    with pytest.raises(TypeError):
        d.incr("s")
    d["big"] = 2**63 - 1
    with pytest.raises(OverflowError):
        d.incr("big")
    v1 = d.get_versioned("c")
    assert v1.value == -1 and v1.version > 0
    with pytest.raises(KeyError):
        d.get_versioned("none")
    assert d.get_versioned("none", None) == (None, 0)
    v2 = d.cas("c", v1.version, 100)
    assert v2 > v1.version and d["c"] == 100
    with pytest.raises(forq.Conflict) as e:
        d.cas("c", v1.version, 5)
    assert e.value.version == v2 and e.value.found and d["c"] == 100
    assert d.cas("new", 0, "first") > 0
    with pytest.raises(forq.Conflict):
        d.cas("new", 0, "second")


def test_wait(d):
    with pytest.raises(TimeoutError):
        d.wait("w", timeout=0.05)
    d["w"] = "v1"
    v = d.get_versioned("w")
    assert d.wait("w", version=0) == v          # differs already: at once
    got = {}

    def waiter():
        got["r"] = d.wait("w", version=v.version, timeout=5)
    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    d["w"] = "v2"
    t.join(5)
    assert got["r"].value == "v2" and got["r"].version > v.version
    t = threading.Thread(target=lambda: got.update(r=d.wait("w", timeout=5)))
    t.start()
    time.sleep(0.1)
    del d["w"]
    t.join(5)
    assert got["r"] == (None, 0)


def test_dict_full_and_too_large(own_forqd):
    f = Forqd("--dict-max-keys", "3", "--dict-max-value", "1000")
    own_forqd.append(f)
    with executor(f.endpoint) as ex:
        d = forq.Dict("small", executor=ex)
        d.update(a=1, b=2, c=3)
        with pytest.raises(forq.DictFull):
            d["d"] = 4
        with pytest.raises(forq.DictFull):
            d.update(x=1, y=2)
        assert len(d) == 3
        with pytest.raises(ValueError):
            d["a"] = "x" * 5000


def test_default_connection(forqd, monkeypatch):
    monkeypatch.setenv("FORQ_ENDPOINT", forqd.endpoint)
    d = forq.Dict("py-default")
    d["k"] = 1
    e = forq.Dict("py-default", forqd.endpoint)
    assert e["k"] == 1 and d.executor is e.executor is forq.default_executor()
    del d["k"]
    with pytest.raises(TypeError):
        forq.Dict("x", forqd.endpoint, executor=d.executor)
    with pytest.raises(ValueError):
        forq.Dict("no spaces")


def _count(endpoint, name, n):
    d = forq.Dict(name, endpoint)
    for _ in range(n):
        d.incr("counter")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_four_processes_incr(forqd, ex, method):
    """4 processes x 1,000 incr = 4,000 exactly (a Manager dict's d[k] += 1 loses updates)."""
    name = "py-counter-" + method
    d = forq.Dict(name, executor=ex)
    d.clear()
    ctx = mp.get_context(method)
    ps = [ctx.Process(target=_count, args=(forqd.endpoint, name, 1000)) for _ in range(4)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert d["counter"] == 4000
    d.clear()


def test_inherited_executor_refuses_in_a_child(ex):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ex.submit("echo", 1)
            os.write(w, b"no error")
        except RuntimeError as e:
            os.write(w, str(e).encode()[:200])
        os._exit(0)
    os.waitpid(pid, 0)
    assert b"another process" in os.read(r, 300)
    assert ex.submit("echo", 2).result(5) == [2]        # the parent's is untouched


def test_shutdown_gives_up_a_waiting_dict_call(forqd):
    ex = forq.Executor(forqd.endpoint)
    d = forq.Dict("py-shutdown-wait", executor=ex)
    got = []

    def waiter():
        try:
            d.wait("never")
        except BaseException as e:
            got.append(e)
    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    ex.shutdown(wait=True)                  # no job pending: it does not wait for the wait
    t.join(5)
    assert not t.is_alive() and isinstance(got[0], forq.ConnectionError)


def test_mget_mset(d):
    """Many keys in one request: mget in the order asked, default for the absent; mset all or
    none, with consecutive versions."""
    last = d.mset({"a": 1, "b": [2, 3], "c": "x"})
    assert d.mget(["a", "zz", "c", "a"]) == [1, None, "x", 1]
    assert d.mget(["zz"], default=0) == [0]
    assert d.mget([]) == []
    vs = d.mget_versioned(["a", "b", "c", "zz"])
    assert [v.version for v in vs] == [last - 2, last - 1, last, 0]
    assert vs[1].value == [2, 3] and vs[3] == (None, 0)
    with pytest.raises(ValueError):
        d.mset({})
    with pytest.raises(ValueError):
        d.mget([""])
    with pytest.raises(TypeError):
        d.mset({1: 2})
    with pytest.raises(ValueError):
        d.mget(["k"] * 100001)


def test_mset_refused_whole(ex, request):
    """A value over --dict-max-value among small ones: nothing is written."""
    dd = forq.Dict("py-mset-refused", executor=ex)
    dd.clear()
    dd.mset({"a": 1})
    with pytest.raises(ValueError):
        dd.mset({"a": 2, "big": "x" * (17 << 20)})
    assert dd.mget(["a", "big"]) == [1, None]
    dd.clear()


def test_cache(ex, request):
    """Dict(cache=): a cached read costs no round trip; every change invalidates it, this
    process's own at once; a reader never sees a value older than forqd's answer just before
    it on the same connection (mget always asks forqd)."""
    w = forq.Dict("py-cache", executor=ex)
    w.clear()
    ex2 = forq.Executor(ex._conn.endpoint)
    try:
        r = forq.Dict("py-cache", executor=ex2, cache=1 << 20)
        w["k"] = 1
        assert r["k"] == 1 and r.get("k") == 1
        assert r.cache_stats()["hits"] >= 1
        for change, want in ((lambda: w.__setitem__("k", 2), 2), (lambda: w.incr("k", 5), 7),
                             (lambda: w.mset({"k": 9}), 9), (lambda: w.update(k=10), 10),
                             (lambda: w.pop("k"), None), (lambda: w.__setitem__("k", 3), 3),
                             (lambda: w.clear(), None)):
            change()
            assert r.mget(["k"]) == [want]      # its invalidation is read by now
            assert r.get("k") == want and r.get("k") == want
        r["k"] = 11                             # our own change: dropped before it is sent
        assert r["k"] == 11
        # concurrent writers, cached readers: never older than forqd's answer just before
        stop = threading.Event()
        stale = []

        def writer():
            for _ in range(2000):
                w.incr("n")
            stop.set()

        t = threading.Thread(target=writer)
        t.start()
        while not stop.is_set():
            truth = r.mget(["n"])[0] or 0
            got = r.get("n", 0)
            if got < truth:
                stale.append((got, truth))
        t.join()
        assert not stale
        assert r.mget(["n"]) == [2000] and r.get("n") == 2000
        r.close_cache()
        assert r.get("n") == 2000
    finally:
        ex2.shutdown()
        w.clear()
