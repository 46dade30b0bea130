"""Inside a task that forqd runs: the job's id, progress, a cancel check, forqd's dicts, and its
queues, locks, semaphores, events and values.

A function declared with ``@forq.task`` runs in one of forqd's worker processes, one job at a
time. There it may use::

    import forq

    @forq.task
    def crunch(path: str) -> int:
        total = 0
        chunks = read_chunks(path)
        for i, chunk in enumerate(chunks):
            if forq.worker.cancelled():     # a cooperative check (see cancelled())
                break
            total += work(chunk)
            forq.worker.progress(i + 1, len(chunks), "chunk %d" % (i + 1))
        forq.worker.dict("results")[forq.worker.job_id()] = total
        return total

These functions act on the job the calling thread runs; called outside a task that forqd runs
(or from a thread the task started) they raise RuntimeError. The dict calls, and those of the
shared types - :func:`queue`, :func:`lock`, :func:`semaphore`, :func:`event`, :func:`value`,
the API of forq.Queue, forq.Lock, forq.Semaphore, forq.Event and forq.Value on the same objects
clients see - go over the worker's own link to forqd and act with the rights of the client
that submitted the job::

    @forq.task
    def produce(n: int) -> int:
        q = forq.worker.queue("jobs")
        for i in range(n):
            q.put(i)                        # a client's forq.Queue("jobs").get() takes them
        with forq.worker.lock("report") as lk:
            lk.fence(forq.worker.dict("report"))["last"] = n    # refused once the lease ended
        return n

A call that waits (a get, an acquire, a wait) waits in forqd and ties up this worker
meanwhile: give it a timeout. A job cancelled or timed out while it waits takes nothing with
it (forqd forgets a killed worker's waits).

``print()`` in a task writes to forqd's log, a line per line, at debug level with the job's id
(``forqd --log-level debug`` shows them); ``sys.stderr`` goes there at warning level.
"""

from __future__ import annotations

from collections.abc import ItemsView, KeysView, MutableMapping
from typing import Any, Iterator, Optional, Tuple

__all__ = ["job_id", "task_name", "progress", "cancelled", "dict", "queue", "lock", "semaphore",
           "event", "value", "WorkerDict", "WorkerQueue", "WorkerLock", "WorkerSemaphore",
           "WorkerEvent", "WorkerValue", "DictError", "Conflict", "DictFull", "Forbidden"]

_dict = dict  # the builtin, which dict() below shadows in this module


def _rt() -> Any:
    """The C side (forqd's Python runtime), or RuntimeError outside forqd."""
    try:
        import _forq_worker  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError("forq.worker works only inside a task that forqd runs "
                           "(forqd --python-import MODULE)") from None
    return _forq_worker


def job_id() -> str:
    """The running job's id, as its client chose it. In a map, the id of the chunk job that
    holds the item (the same for all items of a chunk)."""
    jid = _rt().job_id()
    if jid is None:
        raise RuntimeError("forq.worker.job_id() works only inside a task that forqd runs")
    return jid


def task_name() -> str:
    """The running task's name (``module.function`` unless declared otherwise)."""
    name = _rt().task_name()
    if name is None:
        raise RuntimeError("forq.worker.task_name() works only inside a task that forqd runs")
    return name


def progress(done: int, total: Optional[int] = None, text: Optional[str] = None) -> None:
    """Report progress: ``done`` of ``total`` units (None: unknown) and a short text.

    The submitter's future sees the latest report (``Future.progress``). Reports less than
    50 ms after the previous one are dropped, except the final one (done >= total), so call
    it as often as is convenient. Never fails the job."""
    if done < 0 or (total is not None and total < 0):
        raise ValueError("progress: done and total must not be negative")
    _rt().progress(int(done), int(total or 0), text)


def cancelled() -> bool:
    """Has forqd asked to cancel this job?

    For tasks that can stop early and tidily: check it between steps. forqd may also end a
    job at any moment by killing its worker (a run timeout, or a cancel: today forqd cancels a
    running job that way, at once, so a task cannot rely on seeing True first). Cheap: it
    reads what forqd sent without waiting."""
    return bool(_rt().cancelled())


class DictError(Exception):
    """A dict operation forqd refused (the text says why: "code: message")."""


class Conflict(DictError):
    """cas(): the key's version was not the one given."""


class DictFull(DictError):
    """forqd's dict limits (--dict-max-keys, --dict-max-bytes) refuse the write."""


class Forbidden(DictError):
    """The submitter's identity may not read or write this dict (forqd's clients file)."""


def _error(name: str, fallback: type) -> type:
    """forq's own exception class when the forq package has one (forq.Conflict ...), so that
    the same ``except`` works in a client and in a task; else the one above."""
    try:
        import forq
        cls = getattr(forq, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            return cls
    except ImportError:
        pass
    return fallback


def _make(name: str, fallback: type, text: str, *args: Any, **kwargs: Any) -> BaseException:
    """An exception of forq's class `name` built as the client package builds it (its own
    arguments: ``args`` before the text, ``kwargs`` after), or of `fallback` from the text."""
    cls = _error(name, fallback)
    if cls is fallback:
        return fallback(text)
    try:
        return cls(*args, text, **kwargs)
    except TypeError:  # a client package whose class takes other arguments
        return fallback(text)


def _raise(text: str) -> None:
    code = text.split(":", 1)[0] if ": " in text else ""
    if code == "dict_full":
        raise _make("DictFull", DictFull, text)
    if code == "forbidden":
        raise _make("Forbidden", Forbidden, text, "forbidden")
    if code == "not_integer":
        raise TypeError(text)
    if code == "overflow":
        raise OverflowError(text)
    if code in ("too_large", "bad_value", "bad_key", "missing_field", "bad_field"):
        raise ValueError(text)
    raise _make("Error", DictError, text)


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError("forq dict keys are str, not %s" % type(key).__name__)
    return key


_NO_VALUE = object()


class WorkerDict(MutableMapping):
    """A forqd dict seen from a task: the ``forq.Dict`` API over the worker's link.

    Keys are str (1-1024 bytes, no NUL); values are what msgpack carries (None, bool, int,
    float, str, bytes, list, tuple, dict). Every operation is one atomic request to forqd.
    Iteration and ``items()`` read pages of 1000 keys: keys added meanwhile may or may not be
    seen."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return "forq.worker.dict(%r)" % self.name

    # one request: (rc, value, version)
    def _call(self, op: str, key: Optional[str] = None, value: Any = _NO_VALUE, delta: int = 0,
              version: int = 0, timeout_ms: int = 0) -> Tuple[int, Any, int]:
        rt = _rt()
        has = value is not _NO_VALUE
        rc, v, ver = rt.dict(op, self.name, key, None if not has else value, has, delta,
                             version, timeout_ms)
        if rc == rt.ERROR:
            _raise(v)
        return rc, v, ver

    def __getitem__(self, key: str) -> Any:
        rc, v, _ = self._call("get", _key(key))
        if rc == _rt().NOT_FOUND:
            raise KeyError(key)
        return v

    def __setitem__(self, key: str, value: Any) -> None:
        self._call("set", _key(key), value)

    def __delitem__(self, key: str) -> None:
        rc, _, _ = self._call("del", _key(key))
        if rc == _rt().NOT_FOUND:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        _, _, ver = self._call("has", key)
        return ver != 0

    def __len__(self) -> int:
        return self._call("len")[2]

    def _pages(self, items: bool) -> Iterator[Any]:
        after = None
        while True:
            rc, entries, after = _rt().dict_page(self.name, items, after, 1000)
            if rc != _rt().OK:
                _raise(entries)
            yield from entries
            if after is None:
                return

    def __iter__(self) -> Iterator[str]:
        return self._pages(False)

    def keys(self) -> KeysView:
        return KeysView(self)

    def items(self) -> ItemsView:
        """A view whose iteration reads pages of [key, version, value] (not one request per
        key)."""
        return _Items(self)

    def clear(self) -> None:
        """Remove every key (one request)."""
        self._call("clear")

    def update(self, other: Any = (), /, **kw: Any) -> None:  # type: ignore[override]
        """Set many keys at once: atomically, all or none."""
        m = _dict(other, **kw)
        for k in m:
            _key(k)
        if m:
            self._call("update", None, m)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """The key's value, after storing ``default`` if it had none (atomic)."""
        return self._call("setdefault", _key(key), default)[1]

    def pop(self, key: str, default: Any = _NO_VALUE) -> Any:
        """Remove the key and return its value (atomic); ``default``, or KeyError, if absent."""
        rc, v, _ = self._call("pop", _key(key))
        if rc == _rt().NOT_FOUND:
            if default is _NO_VALUE:
                raise KeyError(key)
            return default
        return v

    def incr(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` to an integer value (absent counts as 0); the new value (atomic)."""
        return self._call("incr", _key(key), delta=int(delta))[1]

    def get_versioned(self, key: str) -> Tuple[Any, int]:
        """(value, version); (None, 0) when the key is absent. Versions grow on every change:
        give one to cas()."""
        rc, v, ver = self._call("get", _key(key))
        if rc == _rt().NOT_FOUND:
            return None, 0
        return v, ver

    def cas(self, key: str, version: int, value: Any) -> int:
        """Store ``value`` only if the key's version is ``version`` (0: only if absent);
        returns the new version, raises Conflict otherwise."""
        rc, _, ver = self._call("cas", _key(key), value, version=int(version))
        if rc == _rt().CONFLICT:
            raise _make("Conflict", Conflict,
                        "dict %r key %r is at version %d, not %d" % (self.name, key, ver, version),
                        version=ver, found=ver != 0)
        return ver

    def wait(self, key: str, version: Optional[int] = None,
             timeout: Optional[float] = None) -> Tuple[Any, int]:
        """Wait until the key's version differs from ``version`` (None: until its next
        change) and return (value, version), (None, 0) if it was deleted; TimeoutError after
        ``timeout`` seconds. The worker does nothing else meanwhile."""
        rt = _rt()
        ver = rt.NEXT_CHANGE if version is None else int(version)
        while True:
            # one request waits at most 20 s: forqd answers, and the worker's link stays live
            step = 20.0 if timeout is None else min(timeout, 20.0)
            rc, v, got = self._call("wait", _key(key), version=ver,
                                    timeout_ms=max(1, int(step * 1000)))
            if rc == rt.OK:
                return v, got
            if rc == rt.NOT_FOUND:
                return None, 0
            if timeout is not None:
                timeout -= step
                if timeout <= 0:
                    raise TimeoutError("dict %r key %r did not change" % (self.name, key))
            if version is None:
                ver = got  # from the version seen now: the next change still wakes us


class _Items(ItemsView):
    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        for key, _ver, value in self._mapping._pages(True):  # type: ignore[attr-defined]
            yield key, value


def dict(name: str) -> WorkerDict:  # noqa: A001 - the name forq's API gives it
    """forqd's dict ``name`` (the ``forq.Dict`` API), as the job's submitter may use it."""
    if not isinstance(name, str):
        raise TypeError("a dict name is a str, not %s" % type(name).__name__)
    return WorkerDict(name)


# ---- the shared types: queues, locks and semaphores, events, values (PROTOCOL.md 6.9) ----

LEASE_DEF = 60.0            # seconds: forqd's default lease
PERMITS_MAX = 10000


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError("a %s name is a str, not %s" % (kind, type(name).__name__))
    return name


def _ms(timeout: Optional[float]) -> int:
    """Seconds as the task helpers' timeout_ms: None waits for ever (-1), 0 not at all."""
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return 0 if timeout == 0 else max(1, int(timeout * 1000 + 0.999))


def _lease_ms(lease: float) -> int:
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 0 < lease <= 86400:
        raise ValueError("lease must be > 0 and at most 86400 seconds (a day)")
    return max(1, int(lease * 1000 + 0.5))


def _checked(rc_answer: Tuple[int, Any]) -> Tuple[int, Any]:
    """(rc, answer) of a _forq_worker call, raising forqd's refusal (rc ERROR)."""
    rc, answer = rc_answer
    if rc == _rt().ERROR:
        _raise(answer)
    return rc, answer


def _stale(text: str, lock: str, token: int) -> BaseException:
    return _make("StaleToken", DictError, text, lock=lock, token=token)


class WorkerQueue:
    """A forqd queue seen from a task: ``forq.Queue``'s API (``multiprocessing.Queue``'s) over
    the worker's link. The same queue as a client's ``forq.Queue(name)``: items are msgpack
    values, each to exactly one consumer, in order. ``maxsize`` > 0: a put waits for room (or
    raises ``queue.Full``); it travels with each put, as for forq.Queue."""

    def __init__(self, name: str, maxsize: int = 0) -> None:
        if type(maxsize) is not int or maxsize < 0:
            raise ValueError("maxsize must be an integer >= 0 (0: no bound)")
        self.name = _check_name("queue", name)
        self.maxsize = maxsize

    def __repr__(self) -> str:
        return "forq.worker.queue(%r)" % self.name

    def put(self, obj: Any, block: bool = True, timeout: Optional[float] = None, *,
            front: bool = False) -> None:
        """Put ``obj`` at the back (``front``: at the front). On a full queue (``maxsize``)
        wait for room - for ever, or up to ``timeout`` seconds - then raise ``queue.Full``;
        with ``block`` False raise it at once. Nothing is put when Full is raised."""
        ms = _ms(timeout) if block else 0
        rc, _ = _checked(_rt().queue_put(self.name, obj, bool(front), self.maxsize,
                                         ms if self.maxsize else 0))
        if rc == _rt().FULL:
            import queue as _queue
            raise _queue.Full("queue %r is full (maxsize %d): nothing was put"
                              % (self.name, self.maxsize))

    def put_nowait(self, obj: Any) -> None:
        """``put(obj, False)``."""
        self.put(obj, False)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Take the first item: wait for one - for ever, or up to ``timeout`` seconds - then
        raise ``queue.Empty``; with ``block`` False raise it at once. The worker does nothing
        else while it waits."""
        rc, item = _checked(_rt().queue_get(self.name, _ms(timeout) if block else 0))
        if rc == _rt().EMPTY:
            import queue as _queue
            raise _queue.Empty("queue %r is empty" % self.name)
        return item

    def get_nowait(self) -> Any:
        """``get(False)``."""
        return self.get(False)

    def qsize(self) -> int:
        """The number of items now."""
        return _checked(_rt().queue_len(self.name))[1]

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        return self.maxsize > 0 and self.qsize() >= self.maxsize

    def close(self) -> None:
        """Nothing to do: every put is in forqd when it returns."""

    def join_thread(self) -> None:
        """Nothing to wait for (see :meth:`close`)."""


class WorkerSemaphore:
    """A forqd semaphore (``value`` holders at once, each with its own lease and fencing token)
    seen from a task: ``forq.Semaphore``'s API over the worker's link. A grant the task still
    holds when it ends is not released by itself: it ends with its lease - use ``with``."""

    kind = "semaphore"

    def __init__(self, name: str, value: int = 1, *, lease: float = LEASE_DEF) -> None:
        if type(value) is not int or not 1 <= value <= PERMITS_MAX:
            raise ValueError("a semaphore's value must be an integer from 1 to %d"
                             % PERMITS_MAX)
        self.name = _check_name("lock", name)
        self.permits = value
        self.lease = lease
        self._lease_ms = _lease_ms(lease)
        self._held: list = []           # tokens, oldest first

    def __repr__(self) -> str:
        return "forq.worker.%s(%r)" % (self.kind, self.name)

    @property
    def token(self) -> Optional[int]:
        """The fencing token of the latest grant this handle holds, or None."""
        return self._held[-1] if self._held else None

    def acquire(self, blocking: bool = True, timeout: Optional[float] = -1) -> bool:
        """Take a grant: wait - for ever (``timeout`` -1 or None), or up to ``timeout``
        seconds - and return True, or False if none came in time; with ``blocking`` False,
        do not wait. Its token is then :attr:`token`."""
        if not blocking:
            if timeout is not None and timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            ms = 0
        else:
            ms = _ms(None if timeout is None or timeout == -1 else timeout)
        rc, token = _checked(_rt().lock_acquire(self.name, self.permits, self._lease_ms, ms))
        if rc == _rt().TIMEOUT:
            return False
        self._held.append(token)
        return True

    def release(self) -> None:
        """End the latest grant this handle holds; ValueError if it holds none;
        ``forq.StaleToken`` if it had already ended (its lease ran out)."""
        if not self._held:
            raise ValueError("%s %r released more times than it was acquired"
                             % (self.kind, self.name))
        token = self._held.pop()
        rc, _ = _checked(_rt().lock_release(self.name, token))
        if rc == _rt().CONFLICT:
            raise _stale("%s %r: the grant with token %d had already ended when it was "
                         "released (its lease ran out): another holder may have had it "
                         "meanwhile" % (self.kind, self.name, token), self.name, token)

    def renew(self, lease: Optional[float] = None) -> None:
        """Make the latest grant last ``lease`` seconds from now (None: the handle's lease);
        ``forq.StaleToken`` if it had already ended."""
        token = self.token
        if token is None:
            raise ValueError("%s %r: this handle holds no grant to renew" % (self.kind,
                                                                              self.name))
        ms = self._lease_ms if lease is None else _lease_ms(lease)
        rc, _ = _checked(_rt().lock_renew(self.name, token, ms))
        if rc == _rt().CONFLICT:
            self._held.remove(token)
            raise _stale("%s %r: the grant with token %d had already ended: acquire it again"
                         % (self.kind, self.name, token), self.name, token)

    def fence(self, d: WorkerDict) -> "WorkerFenced":
        """``d`` whose ``d[key] = value`` is fenced with this handle's grant (see
        :class:`WorkerFenced`)."""
        return WorkerFenced(d, self)

    def __enter__(self) -> "WorkerSemaphore":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class WorkerLock(WorkerSemaphore):
    """A forqd lock seen from a task: ``forq.Lock``'s API (one holder, a lease, a fencing
    token) over the worker's link. Not reentrant: acquiring it again while this handle holds
    it raises RuntimeError."""

    kind = "lock"

    def __init__(self, name: str, *, lease: float = LEASE_DEF) -> None:
        super().__init__(name, 1, lease=lease)

    def acquire(self, blocking: bool = True, timeout: Optional[float] = -1) -> bool:
        if self._held:
            raise RuntimeError("lock %r is held by this handle already (a forq lock is not "
                               "reentrant)" % self.name)
        return super().acquire(blocking, timeout)


class WorkerFenced:
    """A dict whose writes (``d[key] = value``, :meth:`set`) carry a lock's grant: forqd does
    them only while that grant holds the lock, else nothing changes and ``forq.StaleToken`` is
    raised. Reads pass through to the dict."""

    def __init__(self, d: WorkerDict, lock: WorkerSemaphore) -> None:
        self.dict = d
        self.lock = lock

    def set(self, key: str, value: Any) -> int:
        """Store ``value`` under ``key``, fenced; the key's new version."""
        token = self.lock.token
        if token is None:
            raise ValueError("%s %r is not held: acquire it before a fenced write"
                             % (self.lock.kind, self.lock.name))
        rc, ver = _checked(_rt().dict_set_fenced(self.dict.name, _key(key), value,
                                                 self.lock.name, token))
        if rc == _rt().CONFLICT:
            raise _stale("lock %r is not held with token %d any more (its lease ended): "
                         "nothing was changed" % (self.lock.name, token), self.lock.name, token)
        return ver

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __getitem__(self, key: str) -> Any:
        return self.dict[key]

    def __contains__(self, key: object) -> bool:
        return key in self.dict

    def get(self, key: str, default: Any = None) -> Any:
        return self.dict.get(key, default)


class WorkerEvent:
    """A forqd event seen from a task: ``forq.Event``'s API (``multiprocessing.Event``'s)."""

    def __init__(self, name: str) -> None:
        self.name = _check_name("event", name)

    def __repr__(self) -> str:
        return "forq.worker.event(%r)" % self.name

    def set(self) -> None:
        """Set it: every wait for it is answered."""
        _checked(_rt().event("set", self.name))

    def clear(self) -> None:
        _checked(_rt().event("clear", self.name))

    def is_set(self) -> bool:
        return bool(_checked(_rt().event_wait(self.name, 0))[1])

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until it is set - for ever, or up to ``timeout`` seconds: True if it is set,
        False if the timeout passed first. The worker does nothing else meanwhile."""
        if timeout is not None and timeout <= 0:
            return self.is_set()
        rc, _ = _checked(_rt().event_wait(self.name, _ms(timeout)))
        return rc == _rt().OK


_ABSENT: Any = object()


class WorkerValue:
    """A shared value seen from a task: ``forq.Value``'s API. The same value as a client's
    ``forq.Value(name, typecode)``: the key ``"value"`` of the dict ``name``, under the lock
    ``name`` (:meth:`get_lock`); a write of ``.value`` while that lock is held here is fenced
    with its grant. ``initial``: stored now; without it the value is attached to (stored as the
    type's zero if there is none)."""

    KEY = "value"

    def __init__(self, name: str, typecode: str = "i", initial: Any = _ABSENT, *,
                 lock: Any = True) -> None:
        from .locks import _INTS, _ZERO
        if not isinstance(typecode, str) or (typecode not in _ZERO
                                             and typecode.lower() not in _INTS):
            raise ValueError("typecode must be one of b B h H i I l L q Q f d c u, not %r"
                             % (typecode,))
        self.name = _check_name("value", name)
        self.typecode = typecode
        if lock is True:
            lock = WorkerLock(name)
        elif not isinstance(lock, WorkerLock):
            raise TypeError("lock must be True or a forq.worker.lock(), not %r" % (lock,))
        self._lock = lock
        self._dict = WorkerDict(name)
        self._zero = _ZERO.get(typecode, 0)
        if initial is _ABSENT:
            self._dict.setdefault(self.KEY, self._zero)
        else:
            self.value = initial

    def __repr__(self) -> str:
        return "<forq.worker.value %r typecode %r>" % (self.name, self.typecode)

    def get_lock(self) -> WorkerLock:
        """The value's lock: ``with v.get_lock(): v.value += 1``."""
        return self._lock

    @property
    def value(self) -> Any:
        """The value now (read from forqd at each access)."""
        return self._dict.get(self.KEY, self._zero)

    @value.setter
    def value(self, v: Any) -> None:
        from .locks import _convert
        v = _convert(self.typecode, v)
        if self._lock.token is None:
            self._dict[self.KEY] = v
        else:
            self._lock.fence(self._dict)[self.KEY] = v


def queue(name: str, maxsize: int = 0) -> WorkerQueue:
    """forqd's queue ``name`` (the ``forq.Queue`` API), as the job's submitter may use it."""
    return WorkerQueue(name, maxsize)


def lock(name: str, *, lease: float = LEASE_DEF) -> WorkerLock:
    """forqd's lock ``name`` (the ``forq.Lock`` API: a lease, a fencing token)."""
    return WorkerLock(name, lease=lease)


def semaphore(name: str, value: int = 1, *, lease: float = LEASE_DEF) -> WorkerSemaphore:
    """forqd's semaphore ``name`` (the ``forq.Semaphore`` API)."""
    return WorkerSemaphore(name, value, lease=lease)


def event(name: str) -> WorkerEvent:
    """forqd's event ``name`` (the ``forq.Event`` API)."""
    return WorkerEvent(name)


def value(name: str, typecode: str = "i", initial: Any = _ABSENT, *,
          lock: Any = True) -> WorkerValue:
    """forqd's shared value ``name`` (the ``forq.Value`` API, ``get_lock()`` included)."""
    return WorkerValue(name, typecode, initial, lock=lock)
