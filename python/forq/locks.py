"""locks.py - forq.Lock, forq.Semaphore, forq.Value and fenced dict writes: the locks of
``multiprocessing`` with leases and fencing tokens, in forqd (PROTOCOL.md section 6.9.2).

A grant of a lock lasts its *lease* (60 s unless said otherwise), then ends by itself unless it
is renewed or released first: a holder that died or hung frees the lock. Each grant has a
*fencing token*, an integer that grows with every grant and never repeats (restarts included).
A change of a dict that carries the token (:func:`fenced`, or ``Value.value = ...`` under its
lock) is done only while that grant holds the lock: a holder whose lease ended without its
noticing (it was paused, its network was slow) cannot overwrite what the next holder wrote -
forqd refuses it (:class:`forq.StaleToken`) and nothing changes.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Optional

from . import errors
from .connection import packb, unpackb
from .dicts import Dict, _check_key
from .shared import Handle, _timeout_ms, send_notice

__all__ = ["Lock", "Semaphore", "Value", "Fenced", "fenced"]

LEASE_DEF = 60.0            # seconds: forqd's default lease
LEASE_MAX = 86400.0         # forqd's longest lease (a day)
PERMITS_MAX = 10000

_reset_lock = threading.Lock()      # over the first look at a handle's grants after a fork


def _new_reset_lock() -> None:
    global _reset_lock
    _reset_lock = threading.Lock()  # one another thread held at the fork is never released


os.register_at_fork(after_in_child=_new_reset_lock)


def _lease_ms(lease: float) -> int:
    if not isinstance(lease, (int, float)) or not 0 < lease <= LEASE_MAX:
        raise ValueError("lease must be > 0 and at most %d seconds (a day)" % LEASE_MAX)
    return max(1, int(lease * 1000 + 0.5))


def _release_later(name: str) -> Any:
    """The rescue of an acquire: a grant that came when nobody waited any more is released."""
    def rescue(conn: Any, h: dict, payload: Optional[bytes]) -> None:
        if h.get("found") and h.get("token"):
            send_notice(conn, {"v": 1, "cmd": "dict", "op": "lock.release", "name": name,
                               "token": h["token"]}, None,
                        "releasing the grant of lock %r an interrupted acquire received (else "
                        "it ends with its lease)" % name)
    return rescue


class Semaphore(Handle):
    """The semaphore ``name`` inside forqd: at most ``value`` holders at once, each with its own
    grant, lease and fencing token (``multiprocessing.Semaphore``'s API)::

        slots = forq.Semaphore("gpu", 2)    # two holders at a time, on any machines
        with slots:
            run_on_gpu()

    ``lease``: seconds a grant lasts unless renewed (:meth:`renew`) or released (at most a day).
    ``value`` travels with each acquire: every user of a name should give the same.
    ``endpoint``, ``key``, ``server_key``, ``executor``, ``timeout``: as for
    :class:`forq.Queue`. The handle keeps the tokens of the grants it holds; ``release`` ends
    the calling thread's latest (else the handle's latest). An acquire interrupted (Ctrl-C, an
    exception) leaves no grant behind: one forqd sends later is released at once.
    """

    kind = "lock"

    def __init__(self, name: str, value: int = 1, endpoint: Optional[str] = None, *,
                 lease: float = LEASE_DEF, executor: Any = None, key: Optional[str] = None,
                 server_key: Optional[str] = None, timeout: Optional[float] = None) -> None:
        if type(value) is not int or not 1 <= value <= PERMITS_MAX:
            raise ValueError("a semaphore's value must be an integer from 1 to %d"
                             % PERMITS_MAX)
        self._lease_ms = _lease_ms(lease)
        super().__init__(name, endpoint, executor=executor, key=key, server_key=server_key,
                         timeout=timeout)
        self.permits = value
        self.lease = lease
        self._held: list = []           # (thread ident, token), oldest first
        self._mutex = threading.Lock()
        self._held_pid = os.getpid()

    def _grants(self) -> threading.Lock:
        """The mutex over ``_held``. In a process forked from the one that took the grants they
        are forgotten first: they are the parent's (the forking thread's ident is this
        process's main thread's), and so is the mutex, which another thread may have held."""
        pid = os.getpid()
        if self._held_pid != pid:
            with _reset_lock:
                if self._held_pid != pid:
                    self._held = []
                    self._mutex = threading.Lock()
                    self._held_pid = pid
        return self._mutex

    def _state(self) -> dict:
        s = super()._state()
        s["permits"], s["lease"] = self.permits, self.lease
        return s

    @classmethod
    def _from_state(cls, s: dict) -> "Semaphore":
        return cls(s["name"], s["permits"], s["endpoint"], lease=s["lease"], key=s["key"],
                   server_key=s["server_key"], timeout=s["timeout"])

    @property
    def token(self) -> Optional[int]:
        """The fencing token of the calling thread's latest grant (else of this handle's
        latest), or None when the handle holds no grant."""
        me = threading.get_ident()
        with self._grants():
            for ident, tok in reversed(self._held):
                if ident == me:
                    return tok
            return self._held[-1][1] if self._held else None

    def acquire(self, blocking: bool = True, timeout: Optional[float] = -1) -> bool:
        """Take a grant: wait until one is free - for ever (``timeout`` -1 or None), or up to
        ``timeout`` seconds - and return True, or False if none came in time; with
        ``blocking`` False, or a timeout of 0, do not wait. forqd does the waiting: acquirers
        are served in the order they came. The grant's token is then :attr:`token`."""
        if not blocking:
            if timeout is not None and timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            wait: Optional[float] = 0.0
        elif timeout is None or timeout == -1:
            wait = None
        elif timeout < 0:
            raise ValueError("timeout value must be a non-negative number (or -1: no limit)")
        else:
            wait = float(timeout)
        fields: dict = {"lease_ms": self._lease_ms}
        if self.permits > 1:
            fields["permits"] = self.permits
        if wait != 0.0:
            fields["block"] = True
            if wait is not None:
                fields["timeout_ms"] = _timeout_ms(wait)
        h, _ = self._wait_call("lock.acquire", None, wait=self.timeout if wait == 0.0 else wait,
                               rescue=_release_later(self.name), keep=self._keep,
                               unkeep=self._unkeep, **fields)
        return bool(h.get("found"))

    def _keep(self, h: dict) -> None:
        """The grant an acquire's answer holds is this handle's (before acquire returns)."""
        if h.get("found") and h.get("token"):
            with self._grants():
                self._held.append((threading.get_ident(), h["token"]))

    def _unkeep(self, h: dict) -> None:
        """The acquire was interrupted after _keep: its grant is given back, not held."""
        with self._grants():
            self._held = [e for e in self._held if e[1] != h.get("token")]

    def _take(self) -> tuple[int, tuple]:
        """The grant release ends, taken out of ``_held`` while its release is on its way:
        (its index there, the entry)."""
        me = threading.get_ident()
        with self._grants():
            if not self._held:
                raise ValueError("%s %r released more times than this handle acquired it"
                                 % (self.kind, self.name))
            for i in range(len(self._held) - 1, -1, -1):
                if self._held[i][0] == me:
                    return i, self._held.pop(i)
            return len(self._held) - 1, self._held.pop()

    def release(self) -> None:
        """End a grant this handle holds (the calling thread's latest, else the handle's
        latest): the next acquirer gets it. ValueError if the handle holds none;
        :class:`forq.StaleToken` if the grant had already ended (its lease ran out): another
        holder may have had the lock meanwhile. A release whose request fails (no answer:
        the connection dropped, a timeout) leaves the grant held: call it again."""
        i, entry = self._take()
        token = entry[1]
        try:
            h, _ = self._call("lock.release", changes=True, token=token)
        except BaseException:
            with self._grants():            # not known to be released: still this handle's
                self._held.insert(min(i, len(self._held)), entry)
            raise
        if not h.get("found"):
            raise errors.StaleToken(
                "%s %r: the grant with token %d had already ended when it was released (its "
                "lease of %g s ran out): another holder may have had it meanwhile; renew() "
                "before the lease ends, or give a longer lease" % (self.kind, self.name, token,
                                                                   self._lease_ms / 1000),
                lock=self.name, token=token, header=h)

    def renew(self, lease: Optional[float] = None) -> None:
        """Make the grant (as :attr:`token` says) last ``lease`` seconds from now (None: the
        handle's lease). :class:`forq.StaleToken` if it had already ended."""
        token = self.token
        if token is None:
            raise ValueError("%s %r: this handle holds no grant to renew" % (self.kind,
                                                                              self.name))
        ms = self._lease_ms if lease is None else _lease_ms(lease)
        h, _ = self._call("lock.renew", changes=True, token=token, lease_ms=ms)
        if not h.get("found"):
            with self._grants():
                self._held = [e for e in self._held if e[1] != token]
            raise errors.StaleToken("%s %r: the grant with token %d had already ended (its "
                                    "lease ran out): acquire it again" % (self.kind, self.name,
                                                                          token),
                                    lock=self.name, token=token, header=h)

    def fence(self, d: Dict) -> "Fenced":
        """``d`` (a :class:`forq.Dict`) whose changes are fenced with this handle's grant at
        the time of each change (see :class:`Fenced`)."""
        return Fenced(d, self)

    def __enter__(self) -> "Semaphore":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class Lock(Semaphore):
    """The lock ``name`` inside forqd (``multiprocessing.Lock``'s API), with a lease and a
    fencing token::

        with forq.Lock("deploy", lease=30) as lock:     # waits for the lock
            config = forq.Dict("config")
            lock.fence(config)["mode"] = "fast"         # refused once the grant has ended
            lock.renew()                                # 30 s more

    :attr:`token` is the grant's fencing token while the handle holds it. Not reentrant:
    acquiring it again from the thread that holds it raises RuntimeError. ``lease`` and the
    rest: as for :class:`Semaphore`."""

    def __init__(self, name: str, endpoint: Optional[str] = None, *, lease: float = LEASE_DEF,
                 executor: Any = None, key: Optional[str] = None,
                 server_key: Optional[str] = None, timeout: Optional[float] = None) -> None:
        super().__init__(name, 1, endpoint, lease=lease, executor=executor, key=key,
                         server_key=server_key, timeout=timeout)

    @classmethod
    def _from_state(cls, s: dict) -> "Lock":
        return cls(s["name"], s["endpoint"], lease=s["lease"], key=s["key"],
                   server_key=s["server_key"], timeout=s["timeout"])

    def acquire(self, blocking: bool = True, timeout: Optional[float] = -1) -> bool:
        me = threading.get_ident()
        with self._grants():
            if any(ident == me for ident, _ in self._held):
                raise RuntimeError("lock %r is already held by this thread (forq locks are not "
                                   "reentrant): release it first" % self.name)
        return super().acquire(blocking, timeout)

    acquire.__doc__ = Semaphore.acquire.__doc__


class Fenced:
    """A :class:`forq.Dict` whose changes carry a fence: each is done only while the grant
    holds the lock, else nothing changes and it raises :class:`forq.StaleToken`. ``lock`` is a
    :class:`Lock` (or :class:`Semaphore`) handle - its grant at the time of each change - or a
    lock's name with ``token``, a grant's token from elsewhere. Reads go to the dict as they
    are. ``d[k] = v``, ``del d[k]``, ``cas``, ``incr``, ``pop``, ``setdefault``, ``update`` and
    ``clear`` are fenced."""

    def __init__(self, d: Dict, lock: Any, token: Optional[int] = None) -> None:
        if not isinstance(d, Dict):
            raise TypeError("fenced() takes a forq.Dict, not %s" % type(d).__name__)
        if isinstance(lock, str):
            if type(token) is not int or token < 1:
                raise ValueError("a fence by a lock's name needs the grant's token (an "
                                 "integer >= 1)")
        elif not isinstance(lock, Semaphore):
            raise TypeError("the fence's lock is a forq.Lock or a lock's name, not %s"
                            % type(lock).__name__)
        self.dict = d
        self.lock = lock
        self._token = token

    def __repr__(self) -> str:
        return "forq.fenced(%r, %r)" % (self.dict, self._fence()[0])

    def _fence(self) -> tuple[str, int]:
        if isinstance(self.lock, str):
            return self.lock, self._token       # type: ignore[return-value]
        tok = self.lock.token if self._token is None else self._token
        if tok is None:
            raise RuntimeError("lock %r is not held by this handle: acquire it before a fenced "
                               "change" % self.lock.name)
        return self.lock.name, tok

    def _change(self, op: str, key: Optional[str], *value: Any,
                **fields: Any) -> tuple[dict, Optional[bytes]]:
        lock, token = self._fence()
        try:
            return self.dict._op(op, key, *value, changes=True, lock=lock, token=token,
                                 **fields)
        except errors.StaleToken as e:
            e.lock, e.token = lock, token
            raise

    def __getattr__(self, attr: str) -> Any:
        if attr in ("dict", "lock", "_token"):
            raise AttributeError(attr)
        return getattr(self.dict, attr)         # reads: get, keys, items, wait ...

    def __getitem__(self, key: str) -> Any:
        return self.dict[key]

    def __contains__(self, key: object) -> bool:
        return key in self.dict

    def __len__(self) -> int:
        return len(self.dict)

    def __iter__(self) -> Any:
        return iter(self.dict)

    def __setitem__(self, key: str, value: Any) -> None:
        self._change("set", _check_key(key), value)

    def __delitem__(self, key: str) -> None:
        h, _ = self._change("del", _check_key(key))
        if not h.get("found"):
            raise KeyError(key)

    def cas(self, key: str, version: int, value: Any) -> int:
        """:meth:`forq.Dict.cas`, fenced."""
        if type(version) is not int or version < 0:
            raise ValueError("version must be an integer >= 0 (0: the key must not exist)")
        h, _ = self._change("cas", _check_key(key), value, ver=version)
        if h.get("code") == "conflict":
            raise errors.Conflict("dict %s cas(%r): the version is %d, not %d; nothing was "
                                  "stored" % (self.dict.name, key, h.get("ver", 0), version),
                                  version=h.get("ver", 0), found=bool(h.get("found")), header=h)
        return h.get("ver", 0)

    def incr(self, key: str, delta: int = 1) -> int:
        """:meth:`forq.Dict.incr`, fenced."""
        if type(delta) is not int:
            raise TypeError("delta must be an integer, not %s" % type(delta).__name__)
        _, payload = self._change("incr", _check_key(key), delta=delta)
        return unpackb(payload)         # type: ignore[arg-type]

    def pop(self, key: str, *default: Any) -> Any:
        """:meth:`forq.Dict.pop`, fenced."""
        h, payload = self._change("pop", _check_key(key))
        if h.get("found"):
            return unpackb(payload)     # type: ignore[arg-type]
        if default:
            return default[0]
        raise KeyError(key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """:meth:`forq.Dict.setdefault`, fenced."""
        _, payload = self._change("setdefault", _check_key(key), default)
        return unpackb(payload) if payload else default

    def update(self, other: Any = (), /, **kwds: Any) -> None:
        """:meth:`forq.Dict.update` (all keys or none), fenced."""
        m = dict(other, **kwds)
        for k in m:
            _check_key(k)
        if m:
            self._change("update", None, m)

    def clear(self) -> None:
        """:meth:`forq.Dict.clear`, fenced."""
        self._change("clear", None)


def fenced(d: Dict, lock: Any, token: Optional[int] = None) -> Fenced:
    """``d`` with its changes fenced by ``lock`` (a :class:`Lock`, or a lock's name and a
    grant's ``token``): see :class:`Fenced`."""
    return Fenced(d, lock, token)


_INTS = {"b": 8, "h": 16, "i": 32, "l": 64, "q": 64}     # signed; upper case: unsigned
_ZERO = {"f": 0.0, "d": 0.0, "c": b"\0", "u": "\0"}
_ABSENT: Any = object()


def _convert(typecode: str, v: Any) -> Any:
    """``v`` as a value of ``typecode`` (as ``multiprocessing.Value`` takes it), or the error."""
    if typecode in ("f", "d"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError("must be real number, not %s" % type(v).__name__)
        return float(v)
    if typecode == "c":
        if not isinstance(v, bytes) or len(v) != 1:
            raise TypeError("a Value('c') holds one byte (bytes of length 1), not %r" % (v,))
        return v
    if typecode == "u":
        if not isinstance(v, str) or len(v) != 1:
            raise TypeError("a Value('u') holds one character (str of length 1), not %r"
                            % (v,))
        return v
    if not isinstance(v, int):
        raise TypeError("an integer is required (Value(%r)), not %s" % (typecode,
                                                                         type(v).__name__))
    bits = _INTS[typecode.lower()]
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if typecode.islower() \
        else (0, (1 << bits) - 1)
    if not lo <= v <= hi:
        raise OverflowError("%d does not fit a Value(%r) (%d to %d)" % (v, typecode, lo, hi))
    return int(v)


class Value(Handle):
    """A shared value in forqd (``multiprocessing.Value``'s API), under its own forq lock, so
    that the classic counter ports line for line::

        counter = forq.Value("counter", "i", 0)         # was: Value("i", 0)
        def work(counter):
            for _ in range(1000):
                with counter.get_lock():
                    counter.value += 1                  # exact, from any process or machine

    ``typecode``: ``b h i l q`` (signed integers), ``B H I L Q`` (unsigned), ``f d`` (float),
    ``c`` (one byte), ``u`` (one character); a value that does not fit raises OverflowError.
    ``initial``: the value to store now, as ``multiprocessing.Value`` does; without it the
    handle attaches to the value of that name (stored as the type's zero if there is none), as
    a copy in another process does. The value is the key ``"value"`` of the dict ``name`` (so a
    forq.Dict sees it, and the same ``read=``/``write=`` rights cover it); :meth:`get_lock` is
    the lock ``name`` (``lock``: True, or a :class:`Lock` of your own). A write of ``.value``
    while this handle's lock is held is fenced with its grant: refused
    (:class:`forq.StaleToken`) once the lease has ended, so a holder that was paused past its
    lease cannot undo the next one's work.
    """

    kind = "value"
    KEY = "value"

    def __init__(self, name: str, typecode: str = "i", initial: Any = _ABSENT,
                 endpoint: Optional[str] = None, *, lock: Any = True, executor: Any = None,
                 key: Optional[str] = None, server_key: Optional[str] = None,
                 timeout: Optional[float] = None) -> None:
        if not isinstance(typecode, str) or (typecode not in _ZERO
                                             and typecode.lower() not in _INTS):
            raise ValueError("typecode must be one of b B h H i I l L q Q f d c u, not %r"
                             % (typecode,))
        super().__init__(name, endpoint, executor=executor, key=key, server_key=server_key,
                         timeout=timeout)
        self.typecode = typecode
        if lock is True:        # on the same connection (and in another process, the same)
            lock = Lock(name, endpoint, key=key, server_key=server_key, timeout=timeout) \
                if executor is None else Lock(name, executor=executor, timeout=timeout)
        elif not isinstance(lock, Lock):
            raise TypeError("lock must be True or a forq.Lock, not %r" % (lock,))
        self._lock = lock
        zero = _ZERO.get(typecode, 0)
        if initial is _ABSENT:
            self._call("setdefault", packb(zero), changes=True, key=self.KEY)
        else:
            self.value = initial

    def _state(self) -> dict:
        s = super()._state()
        s["typecode"], s["lock"] = self.typecode, self._lock
        return s

    @classmethod
    def _from_state(cls, s: dict) -> "Value":
        return cls(s["name"], s["typecode"], _ABSENT, s["endpoint"], lock=s["lock"],
                   key=s["key"], server_key=s["server_key"], timeout=s["timeout"])

    def __repr__(self) -> str:
        return "<forq.Value %r typecode %r at %s>" % (self.name, self.typecode,
                                                       self.executor.endpoint)

    def get_lock(self) -> Lock:
        """The value's lock (a :class:`forq.Lock`): ``with v.get_lock(): v.value += 1``."""
        return self._lock

    @property
    def value(self) -> Any:
        """The value now (read from forqd at each access). Setting it is one atomic write,
        fenced with the lock's grant while this handle's lock is held."""
        h, payload = self._call("get", changes=False, key=self.KEY)
        if not h.get("found"):
            return _ZERO.get(self.typecode, 0)
        return unpackb(payload)         # type: ignore[arg-type]

    @value.setter
    def value(self, v: Any) -> None:
        payload = packb(_convert(self.typecode, v))
        token = self._lock.token
        if token is None:
            self._call("set", payload, changes=True, key=self.KEY)
            return
        try:
            self._call("set", payload, changes=True, key=self.KEY, lock=self._lock.name,
                       token=token)
        except errors.StaleToken as e:
            e.lock, e.token = self._lock.name, token
            raise
