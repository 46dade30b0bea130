"""Inside a task that forqd runs: the job's id, progress, a cancel check, and forqd's dicts.

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
(or from a thread the task started) they raise RuntimeError. The dict calls go over the
worker's own link to forqd and act with the rights of the client that submitted the job.
forqd's queues, locks and events (forq.Queue, forq.Lock, forq.Event) are not reachable this way
yet: forqd's Python runtime offers a task only the dict calls (C tasks have them, in
<forq/task.h>).

``print()`` in a task writes to forqd's log, a line per line, at debug level with the job's id
(``forqd --log-level debug`` shows them); ``sys.stderr`` goes there at warning level.
"""

from __future__ import annotations

from collections.abc import ItemsView, KeysView, MutableMapping
from typing import Any, Iterator, Optional, Tuple

__all__ = ["job_id", "task_name", "progress", "cancelled", "dict", "WorkerDict", "DictError",
           "Conflict", "DictFull", "Forbidden"]

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
