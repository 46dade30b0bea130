"""The test module of check_pytask.c: tasks that exercise forqd's Python runtime."""
import ctypes
import os
import time

import forq


@forq.task
def add(a, b=0, *, scale=1):
    return (a + b) * scale


@forq.task
def echo(*args, **kw):
    """Returns what it got: [args as a list, kwargs]."""
    return [list(args), kw]


@forq.task(name="ptasks.kinds")
def kinds(*args):
    """The Python type names of its arguments."""
    return [type(a).__name__ for a in args]


@forq.task
def give(what):
    """A result of a given kind: the conversions from Python to msgpack."""
    values = {
        "none": None, "true": True, "false": False, "int": -5, "u64": 2**64 - 1,
        "i64min": -2**63, "float": 1.5, "str": "héllo", "bytes": b"\x00\xff",
        "bytearray": bytearray(b"ab"), "memoryview": memoryview(b"cd"), "list": [1, [2]],
        "tuple": (1, (2, 3)), "dict": {"a": 1, 2: "b"}, "big": 2**64, "small": -2**63 - 1,
        "set": {1, 2}, "object": object(), "deep": _deep(40), "surrogate": "\udc80",
    }
    return values[what]


def _deep(n):
    v = []
    for _ in range(n):
        v = [v]
    return v


class Oops(Exception):
    pass


def _inner(x):
    raise Oops("bad x: %r" % (x,))


@forq.task
def fail(x):
    return _inner(x)


@forq.task
def segv():
    ctypes.string_at(0)


@forq.task
def spin():
    while True:
        pass


@forq.task
def nap(seconds):
    time.sleep(seconds)
    return seconds


@forq.task
def getpid():
    return os.getpid()


@forq.task
def image():
    """The program this worker runs: forqd-python, or forqd itself."""
    return os.readlink("/proc/self/exe")


@forq.task
def talk(text):
    print("said:", text)
    print("partial", end="")
    return forq.worker.job_id()


@forq.task
def report(n):
    for i in range(n):
        forq.worker.progress(i + 1, n, "step %d" % (i + 1))
        time.sleep(0.06)
    return n


@forq.task
def use_dict(name):
    d = forq.worker.dict(name)
    d["a"] = 1
    d.update({"b": [1, 2], "c": {"x": b"y"}})
    n = d.incr("n", 5)
    old = d.setdefault("a", 99)
    ver = d.get_versioned("a")[1]
    try:
        d.cas("a", ver + 1000, 0)
        conflict = False
    except Exception as e:  # forq.Conflict, or forq.worker.Conflict without the client
        conflict = type(e).__name__ == "Conflict"
    d.cas("a", ver, 2)
    popped = d.pop("missing", "dflt")
    return {"len": len(d), "n": n, "old": old, "conflict": conflict, "a": d["a"],
            "keys": sorted(d), "items": sorted(k for k, _ in d.items()), "popped": popped,
            "has_b": "b" in d, "c": d["c"]}


@forq.task
def was_cancelled():
    return forq.worker.cancelled()


@forq.task
def outside_api():
    """forq.worker from a thread the task started: refused."""
    import threading
    out = []

    def run():
        try:
            forq.worker.progress(1, 2)
            out.append("allowed")
        except RuntimeError as e:
            out.append(str(e))
    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out[0]


def not_a_task():
    return "reachable"


@forq.task
def square(x):
    return x * x


@forq.task
def version():
    return 1


@forq.task
def divide(a, b):
    return a / b


@forq.task
def recurse(n):
    """Raises at the bottom of n nested calls: a traceback longer than an error's 1024 bytes
    (two functions in turn, which Python does not fold into "[Previous line repeated]")."""
    if n == 0:
        raise ValueError("bottom")
    return _recurse_too(n - 1)


def _recurse_too(n):
    return recurse(n)


@forq.task
def keytypes(d):
    return sorted(type(k).__name__ for k in d)


@forq.task
def alloc(mb):
    return len(bytearray(mb << 20))


# ---- the shared types from a task (forq.worker.queue, lock, semaphore, event, value) ----

@forq.task
def queue_produce(name, items):
    """Puts the items into queue `name`; then, on a queue of maxsize 1 that is full, a put that
    does not wait: what it raised. Returns [the queue's length, that exception's type]."""
    import queue
    q = forq.worker.queue(name)
    for item in items:
        q.put(item)
    bounded = forq.worker.queue(name + "-1", maxsize=1)
    bounded.put("only")
    try:
        bounded.put_nowait("more")
        full = None
    except queue.Full:
        full = "Full"
    return [q.qsize(), full, bounded.qsize()]


@forq.task
def queue_consume(name, timeout):
    """One item of queue `name`, waiting up to `timeout` s; "empty" if none came."""
    import queue
    try:
        return forq.worker.queue(name).get(timeout=timeout)
    except queue.Empty:
        return "empty"


@forq.task
def lock_token(name):
    """Acquires lock `name`, writes its token (fenced) into dict `name`, releases it; returns
    [token, whether a second acquire without waiting was refused while it was held]."""
    lk = forq.worker.lock(name, lease=10)
    with lk:
        lk.fence(forq.worker.dict(name))["token"] = lk.token
        again = forq.worker.lock(name).acquire(False)
        return [lk.token, again is False]


@forq.task
def lock_try(name):
    """Whether lock `name` can be acquired without waiting (released again at once)."""
    lk = forq.worker.semaphore(name, 1, lease=5)
    if not lk.acquire(blocking=False):
        return False
    lk.release()
    return True


@forq.task
def stale_fence(name):
    """A grant whose lease ends before its fenced write: the write is refused (StaleToken)."""
    lk = forq.worker.lock(name, lease=0.2)
    lk.acquire()
    time.sleep(0.5)
    try:
        lk.fence(forq.worker.dict(name))["late"] = 1
        return "written"
    except Exception as e:  # forq.StaleToken
        return type(e).__name__


@forq.task
def event_wait(name, timeout):
    """Waits up to `timeout` s for event `name`: whether it was set."""
    return forq.worker.event(name).wait(timeout)


@forq.task
def event_flip(name):
    """Sets event `name`, reads it, clears it, reads it: [True, False]."""
    ev = forq.worker.event(name)
    ev.set()
    first = ev.is_set()
    ev.clear()
    return [first, ev.is_set()]


@forq.task
def value_add(name, n):
    """Adds 1 to the shared value `name` n times under its lock; its value after."""
    v = forq.worker.value(name, "i")
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    return v.value
