"""dicts.py - forq.Dict: a named dict inside forqd, shared by every client and task, used like
``multiprocessing.Manager().dict()`` but with atomic operations and across machines.

Every method is one request to forqd's dict service (PROTOCOL.md section 6.8), which runs one
request at a time: each is atomic - ``incr`` is a real counter, ``cas`` a real
compare-and-set, ``update`` all keys or none. Iteration pages through the keys (1000 a
request). Keys are strings (1-1024 bytes, no NUL); values are any msgpack value.
"""
from __future__ import annotations

import collections
import re
import threading
from collections.abc import ItemsView, MutableMapping, ValuesView
from typing import Any, Iterator, NamedTuple, Optional

from . import errors
from .connection import packb, unpackb
from .defaults import default_executor

_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
_MISSING: Any = object()
PAGE = 1000                 # keys per page when iterating
UPDATE_MAX = 100000         # keys forqd takes in one update, mset or mget


class Versioned(NamedTuple):
    """A value with its version (which grows on every change; 0: the key does not exist)."""
    value: Any
    version: int


def _check_key(key: Any) -> str:
    if type(key) is not str:
        raise TypeError("forq dict keys are strings (1-1024 bytes, no NUL), not %s"
                        % type(key).__name__)
    if not key or "\0" in key or (len(key) > 256 and len(key.encode()) > 1024):
        raise ValueError("forq dict key %r must be 1-1024 bytes without NUL" % key[:64])
    return key


class _Cache:
    """A Dict's local copy (``cache=``): packed values by key, oldest evicted first past
    ``max_bytes``. The connection's I/O thread drops keys as forqd's invalidations come
    (``drop``) and stores what a tracked get read (``put``), both in the order it reads
    forqd's messages: a value is never kept after the invalidation that followed it."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self.entries: collections.OrderedDict = collections.OrderedDict()  # key -> (packed, ver)
        self.bytes = 0
        self.hits = self.misses = self.invalidations = 0

    def get(self, key: str) -> Any:
        with self.lock:
            return self.entries.get(key)

    def put(self, key: str, packed: bytes, ver: int) -> None:
        size = len(key) + len(packed)
        if size > self.max_bytes:
            return
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.bytes -= len(key) + len(old[0])
            self.entries[key] = (packed, ver)
            self.bytes += size
            while self.bytes > self.max_bytes and self.entries:
                k, (p, _) = self.entries.popitem(last=False)
                self.bytes -= len(k) + len(p)

    def drop(self, key: Optional[str]) -> None:
        with self.lock:
            self.invalidations += 1
            if key is None:
                self.entries.clear()
                self.bytes = 0
                return
            old = self.entries.pop(key, None)
            if old is not None:
                self.bytes -= len(key) + len(old[0])


class Dict(MutableMapping):
    """The dict ``name`` inside forqd (created by its first write; an absent dict is empty)::

        hits = forq.Dict("stats")           # the default forqd ($FORQ_ENDPOINT ...)
        hits.incr("page")                   # atomic, from any process or machine
        v = hits.get_versioned("config", None)
        hits.cas("config", v.version, {"mode": "fast"})    # forq.Conflict if it changed

    ``endpoint``, ``key``, ``server_key``: as for :class:`forq.Executor`; the dict uses this
    process's default connection to that forqd (one per endpoint and keys). ``executor``: use
    that executor's connection instead. ``timeout``: seconds each request may wait for forqd
    (None: until it answers, or until the connection is given up - forq.ConnectionError).

    A :class:`collections.abc.MutableMapping`: ``d[k]``, ``d[k] = v``, ``del d[k]``, ``k in d``,
    ``len(d)``, iteration (paged), ``keys()``, ``items()``, ``values()``, ``get``, ``pop``,
    ``popitem``, ``setdefault``, ``update`` (atomic), ``clear``, ``copy()`` (a plain dict), plus
    :meth:`incr`, :meth:`get_versioned`, :meth:`cas`, :meth:`wait`, and many keys in one request:
    :meth:`mget` (read at one instant) and :meth:`mset` (all or none). Safe to share between
    threads. Errors: KeyError (no such key), :class:`forq.Conflict` (cas), :class:`forq.DictFull`
    (forqd's limits: nothing is evicted), :class:`forq.Forbidden` (rights), TypeError (a value
    ``incr`` cannot add to), ValueError (a value too large).

    ``cache``: keep a local copy of what ``d[k]`` and ``get`` read, at most that many bytes
    (0: none), kept right by forqd (PROTOCOL.md 6.8.1): the first read of a key asks forqd to
    track it, forqd pushes an invalidation when anyone changes the key, and the connection's
    I/O thread drops the copy the moment it reads it - a cached read costs no round trip and is
    never older than the last invalidation read. While the link to forqd is down nothing is
    served from the copy, and it is emptied at the next connection. Only ``d[k]`` and ``get``
    use it (``get_versioned``, ``mget``, iteration ask forqd). :meth:`close_cache` stops it.
    """

    def __init__(self, name: str, endpoint: Optional[str] = None, *, executor: Any = None,
                 key: Optional[str] = None, server_key: Optional[str] = None,
                 timeout: Optional[float] = None, cache: int = 0) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError("dict name %r must be 1-64 characters of A-Z a-z 0-9 . _ : -"
                             % (name,))
        if executor is None:
            executor = default_executor(endpoint, key, server_key)
        elif endpoint is not None or key is not None or server_key is not None:
            raise TypeError("give an endpoint (and keys) or an executor, not both")
        self.name = name
        self.executor = executor
        self.timeout = timeout
        self._conn = executor._conn
        self._cache: Optional[_Cache] = None
        if cache:
            if type(cache) is not int or cache < 0:
                raise ValueError("cache is a size in bytes (0: no cache)")
            self._cache = _Cache(cache)
            self._conn.caches.setdefault(name, set()).add(self._cache)

    def close_cache(self) -> None:
        """Stop caching: drop the local copy (gets ask forqd again)."""
        if self._cache is not None:
            self._conn.caches.get(self.name, set()).discard(self._cache)
            self._cache = None

    def __del__(self) -> None:
        try:
            self.close_cache()
        except Exception:
            pass

    def cache_stats(self) -> dict:
        """The local copy's counters: ``hits`` (gets answered without forqd), ``misses``,
        ``invalidations`` (keys dropped as forqd or this process changed them), ``entries``."""
        c = self._cache
        if c is None:
            return {"hits": 0, "misses": 0, "invalidations": 0, "entries": 0}
        return {"hits": c.hits, "misses": c.misses, "invalidations": c.invalidations,
                "entries": len(c.entries)}

    def _cached(self, key: str) -> tuple:
        """A get through the local copy: ``(found, packed, version)``."""
        cache, conn = self._cache, self._conn
        if conn.up:
            e = cache.get(key)      # type: ignore[union-attr]
            if e is not None:
                cache.hits += 1     # type: ignore[union-attr]
                return True, e[0], e[1]
        cache.misses += 1           # type: ignore[union-attr]
        session = conn._session

        def keep(call: Any) -> None:
            # the I/O thread, as it reads the reply: before any later invalidation
            h = call.header
            if (h.get("cmd") == "dict_reply" and h.get("found") and call.payload is not None
                    and conn.up and call.sent_session == conn._session == session):
                cache.put(key, call.payload, h.get("ver", 0))   # type: ignore[union-attr]

        h, payload = self._op("get", key, changes=False, on_reply=keep, track=True)
        return bool(h.get("found")), payload, h.get("ver", 0)

    def __repr__(self) -> str:
        return "forq.Dict(%r, %r)" % (self.name, self._conn.endpoint)

    # ---- one request ----

    def _op(self, op: str, key: Optional[str] = None, value: Any = _MISSING, *,
            changes: bool, on_reply: Any = None, **fields: Any) -> tuple[dict, Optional[bytes]]:
        if changes:
            # this process's own change: every local copy of the key (or dict) goes first
            for cache in list(self._conn.caches.get(self.name, ())):
                cache.drop(key if op not in ("update", "mset", "clear") else None)
        header = {"v": 1, "cmd": "dict", "op": op, "name": self.name}
        if key is not None:
            header["key"] = key
        if fields:
            header.update(fields)
        payload = None
        if value is not _MISSING:
            payload = packb(value)
            if len(payload) > self._conn.max_payload:
                raise ValueError("the value for %r is %d bytes, more than the %d forqd accepts"
                                 % (key, len(payload), self._conn.max_payload))
        what = ("dict %s %s(%.80r)", (self.name, op, "" if key is None else key))
        try:
            return self._conn.call(header, payload, idempotent=not changes,
                                   timeout=self.timeout, what=what, on_reply=on_reply)
        except (errors.ProtocolError, errors.Rejected) as e:
            code = getattr(e, "code", "")
            if code == "not_integer":
                raise TypeError(e.message) from None
            if code == "overflow":
                raise OverflowError(e.message) from None
            if code in ("too_large", "bad_value", "bad_key"):
                raise ValueError(e.message) from None
            if code == "cursor_expired":
                raise RuntimeError("dict %r changed during iteration: the key at a page "
                                   "boundary was deleted; iterate again" % self.name) from None
            raise

    # ---- the mapping ----

    def __getitem__(self, key: str) -> Any:
        if self._cache is not None:
            found, payload, _ = self._cached(_check_key(key))
            if not found:
                raise KeyError(key)
            return unpackb(payload)
        h, payload = self._op("get", _check_key(key), changes=False)
        if not h.get("found"):
            raise KeyError(key)
        return unpackb(payload)

    def get(self, key: str, default: Any = None) -> Any:
        """``d[key]``, or ``default`` when the key does not exist."""
        if self._cache is not None:
            found, payload, _ = self._cached(_check_key(key))
            return unpackb(payload) if found else default
        h, payload = self._op("get", _check_key(key), changes=False)
        return unpackb(payload) if h.get("found") else default

    def __setitem__(self, key: str, value: Any) -> None:
        self._op("set", _check_key(key), value, changes=True)

    def __delitem__(self, key: str) -> None:
        h, _ = self._op("del", _check_key(key), changes=True)
        if not h.get("found"):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if type(key) is not str:
            return False
        h, _ = self._op("has", _check_key(key), changes=False)
        return bool(h.get("found"))

    def __len__(self) -> int:
        h, _ = self._op("len", changes=False)
        return h.get("count", 0)

    def _pages(self, op: str) -> Iterator[Any]:
        cursor = None
        while True:
            h, payload = self._op(op, cursor, changes=False, limit=PAGE)
            yield from (unpackb(payload) if payload else [])
            if not h.get("more"):
                return
            cursor = h.get("key")

    def __iter__(self) -> Iterator[str]:
        """The keys, in the order they were first added, a page (1000) per request. Keys added
        meanwhile may or may not be listed; RuntimeError if the key at a page boundary is
        deleted meanwhile."""
        return self._pages("keys")

    def items(self) -> "_Items":
        """A view of ``(key, value)`` pairs, read a page (1000) per request."""
        return _Items(self)

    def values(self) -> "_Values":
        """A view of the values, read a page (1000) per request."""
        return _Values(self)

    def copy(self) -> dict:
        """A plain dict with the keys and values now (paged; not one atomic snapshot)."""
        return dict(self.items())

    def clear(self) -> None:
        """Delete every key, in one atomic request."""
        self._op("clear", changes=True)

    def update(self, other: Any = (), /, **kwds: Any) -> None:
        """Set several keys at once, atomically: all of them or none (at most 100,000 keys a
        call; the whole map must fit forqd's ``max_payload``)."""
        m: dict = {}
        if isinstance(other, Dict):
            m.update(other.items())
        elif hasattr(other, "keys"):
            for k in other.keys():
                m[k] = other[k]
        else:
            for k, v in other:
                m[k] = v
        m.update(kwds)
        if not m:
            return
        if len(m) > UPDATE_MAX:
            raise ValueError("update takes at most %d keys at once (it is one atomic request); "
                             "split it into several" % UPDATE_MAX)
        for k in m:
            _check_key(k)
        self._op("update", None, m, changes=True)

    def mget(self, keys: Any, default: Any = None) -> list:
        """The values of several keys, read in one request at one instant (no write falls
        between two of them): a list in the order of ``keys``, ``default`` for a key that does
        not exist. At most 100,000 keys a call; ValueError if their values would pass forqd's
        ``max_payload`` (ask for fewer)."""
        keys = [_check_key(k) for k in keys]
        if not keys:
            return []
        if len(keys) > UPDATE_MAX:
            raise ValueError("mget takes at most %d keys at once; split it" % UPDATE_MAX)
        _, payload = self._op("mget", None, keys, changes=False)
        return [default if e is None else e[1] for e in unpackb(payload)]

    def mget_versioned(self, keys: Any, default: Any = None) -> list:
        """As :meth:`mget`, each value with its version: ``Versioned(value, version)``, and
        ``(default, 0)`` for a key that does not exist."""
        keys = [_check_key(k) for k in keys]
        if not keys:
            return []
        if len(keys) > UPDATE_MAX:
            raise ValueError("mget takes at most %d keys at once; split it" % UPDATE_MAX)
        _, payload = self._op("mget", None, keys, changes=False)
        return [Versioned(default, 0) if e is None else Versioned(e[1], e[0])
                for e in unpackb(payload)]

    def mset(self, mapping: Any) -> int:
        """Set several keys in one request, all of them or none (the same as :meth:`update`,
        with forqd's --state-dir one frame of its log); returns the version of the last key
        written - the keys got consecutive versions in the mapping's order. At most 100,000
        keys a call; :class:`forq.DictFull` or ValueError at forqd's limits, nothing changed."""
        m = dict(mapping)
        if not m:
            raise ValueError("mset needs at least one key")
        if len(m) > UPDATE_MAX:
            raise ValueError("mset takes at most %d keys at once (it is one atomic request); "
                             "split it" % UPDATE_MAX)
        for k in m:
            _check_key(k)
        h, _ = self._op("mset", None, m, changes=True)
        return h.get("ver", 0)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """``d[key]`` if it exists, else store ``default`` there and return it (atomic)."""
        _, payload = self._op("setdefault", _check_key(key), default, changes=True)
        return unpackb(payload) if payload else default

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (atomic); ``default`` (or KeyError) if absent."""
        h, payload = self._op("pop", _check_key(key), changes=True)
        if h.get("found"):
            return unpackb(payload)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the first ``(key, value)`` (the oldest key); KeyError if empty."""
        while True:
            h, payload = self._op("keys", changes=False, limit=1)
            keys = unpackb(payload) if payload else []
            if not keys:
                raise KeyError("popitem(): dict %r is empty" % self.name)
            h, payload = self._op("pop", keys[0], changes=True)
            if h.get("found"):
                return keys[0], unpackb(payload)

    # ---- beyond a dict ----

    def incr(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` to the integer under ``key`` (a missing key counts as 0) and return
        the new value, atomically. TypeError if the value is not an integer, OverflowError
        past the signed 64-bit range."""
        if type(delta) is not int:
            raise TypeError("delta must be an integer, not %s" % type(delta).__name__)
        if delta == 1:
            _, payload = self._op("incr", _check_key(key), changes=True)
        else:
            _, payload = self._op("incr", _check_key(key), changes=True, delta=delta)
        return unpackb(payload)

    def get_versioned(self, key: str, default: Any = _MISSING) -> Versioned:
        """``(value, version)`` of ``key``; for an absent key ``(default, 0)`` when a default
        is given, else KeyError. The version is what :meth:`cas` and :meth:`wait` compare."""
        h, payload = self._op("get", _check_key(key), changes=False)
        if h.get("found"):
            return Versioned(unpackb(payload), h.get("ver", 0))
        if default is _MISSING:
            raise KeyError(key)
        return Versioned(default, 0)

    def cas(self, key: str, version: int, value: Any) -> int:
        """Store ``value`` under ``key`` only if the key's version is ``version`` (0: only if
        the key does not exist); return the new version. :class:`forq.Conflict` (with the
        current ``version``) if it differs: nothing was stored."""
        if type(version) is not int or version < 0:
            raise ValueError("version must be an integer >= 0 (0: the key must not exist)")
        h, _ = self._op("cas", _check_key(key), value, changes=True, ver=version)
        if h.get("code") == "conflict":
            raise errors.Conflict("dict %s cas(%r): the version is %d, not %d; nothing was "
                                  "stored" % (self.name, key, h.get("ver", 0), version),
                                  version=h.get("ver", 0), found=bool(h.get("found")), header=h)
        return h.get("ver", 0)

    def wait(self, key: str, version: Optional[int] = None,
             timeout: Optional[float] = None) -> Versioned:
        """Block until ``key`` changes: until its version differs from ``version`` (0: the
        key is absent; at once if it already differs), or with ``version`` None until its next
        change from now. Returns the key's state then, ``(value, version)``: ``(None, 0)`` if
        the change deleted it. ``timeout`` (seconds; None: no limit): TimeoutError if nothing
        changed in time."""
        fields: dict = {}
        if version is not None:
            if type(version) is not int or version < 0:
                raise ValueError("version must be an integer >= 0 or None")
            fields["ver"] = version
        if timeout is not None:
            if not timeout >= 0:
                raise ValueError("timeout must be >= 0 seconds or None")
            fields["timeout_ms"] = max(1, int(timeout * 1000 + 0.999))
        self._conn.check_may_wait("Dict.wait()")
        h, payload = self._op("wait", _check_key(key), changes=False, **fields)
        if h.get("code") == "timeout":
            raise TimeoutError("dict %s: key %r did not change within %g s"
                               % (self.name, key, timeout))
        if not h.get("found"):
            return Versioned(None, 0)
        return Versioned(unpackb(payload), h.get("ver", 0))


class _Items(ItemsView):
    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for k, _ver, v in self._mapping._pages("items"):
            yield k, v


class _Values(ValuesView):
    def __iter__(self) -> Iterator[Any]:
        for _k, _ver, v in self._mapping._pages("items"):
            yield v

