"""shared.py - forq.Queue and forq.Event: ``multiprocessing.Queue`` and ``multiprocessing.Event``
whose state lives in forqd, shared by every process and machine that reaches it (PROTOCOL.md
section 6.9). forq.Lock, forq.Semaphore and forq.Value are in locks.py, on the same handle.

Every method is one request to forqd's dict service, which runs one request at a time: each is
atomic. A call that blocks (``get``, ``put`` on a full queue, ``Lock.acquire``, ``Event.wait``)
waits in forqd, which answers by itself when its timeout passes (``timeout_ms``); this process
waits for that answer 5 s longer.

**No item is lost to an interrupted call.** A call that waits in forqd and is interrupted
(KeyboardInterrupt or another exception, or its answer did not come within its timeout and the
grace) first *withdraws* its request (``queue.withdraw``, ``lock.withdraw``, ``event.withdraw``,
PROTOCOL.md section 6.9): forqd takes it out of its line atomically, and then nothing was taken,
put or granted - no round trip more, nothing to lose if this process exits. Only when forqd had
answered it first (or the withdraw could not be asked: the connection is down) is the answer
acted on when it comes, in forq's I/O thread: an item is put back at the *front* of its queue
(``queue.put`` with ``front``: the next get takes it; a ``maxsize`` does not hold it back), and
a lock's grant is released; a call whose own wait ran out returns that answer instead. An item
is lost only where ZeroMQ loses it (PROTOCOL.md section 6.9.1): an answer on its way when the
connection breaks, or when this process exits before an answer sent first is read. When a
new forqd instance answers after a reconnection, such a request is withdrawn from it (it may
have reached it, sent while forqd was away) and its place for an answer goes.
"""
from __future__ import annotations

import os
import queue
import re
import sys
import threading
from typing import Any, Callable, Optional

from . import errors
from .connection import Call, packb, unpackb
from .defaults import default_executor

__all__ = ["Queue", "Event"]

_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
WAIT_GRACE = 5.0            # seconds to wait for forqd's answer after its own timeout
WITHDRAW_WAIT = 5.0         # seconds to wait for the answer to a withdraw
_NEVER = float("inf")

Rescue = Callable[[Any, dict, Optional[bytes]], None]


def _timeout_ms(timeout: float) -> int:
    """Seconds (> 0) as forqd's timeout_ms, rounded up (at least 1)."""
    return max(1, int(timeout * 1000 + 0.999))


class _Pending(Call):
    """A request whose answer may hold something to give back (an item, a grant). While its
    caller waits it is a Call; once the caller gave up (``abandon``), the answer goes to
    ``rescue`` in the I/O thread. When the connection loses it (a reconnection, lost_after), it
    stays registered under its request number, so that an answer forqd still sends is rescued,
    not dropped."""
    __slots__ = ("conn", "rescue", "guard", "abandoned", "rescued")

    def __init__(self, key: int, frames: list, idempotent: bool, conn: Any,
                 rescue: Optional[Rescue]) -> None:
        super().__init__(key, frames, idempotent)
        self.conn = conn
        self.rescue = rescue
        self.guard = threading.Lock()
        self.abandoned = False
        self.rescued = False

    def _on_reply(self, h: dict, frames: list) -> None:
        with self.guard:
            if not self.abandoned:
                Call._on_reply(self, h, frames)
                return
        self._give_back(h, frames[1] if len(frames) > 1 else None)

    def _on_lost(self, exc: BaseException) -> None:
        with self.guard:
            waited = not self.abandoned
            self.abandoned = True
            conn = self.conn
            if not conn._closing:           # an answer may still come: keep a place for it
                self.sent_session = None    # not "cut off" again at the next reconnection
                self.since = _NEVER         # never overdue (lost_after) again
                conn.pending[self.key] = self
            if waited:
                Call._on_lost(self, exc)

    def abandon(self) -> bool:
        """The caller gives up: True if no answer came (a late one will be rescued)."""
        with self.guard:
            if self.header is None and self.error is None:
                self.abandoned = True
                return True
        return False

    def _new_instance(self) -> None:
        """forqd restarted (in the I/O thread). If nobody waits for this request any more, the
        old instance can send no answer; the new one can, though, if ZeroMQ delivered the
        request to it (sent while forqd was away). A withdraw tells: its answer comes after
        any answer to the request (PROTOCOL.md section 6.9), and then the place kept for one
        goes (_Forget)."""
        with self.guard:
            if not self.abandoned or self.rescued:
                return
        try:
            h = unpackb(self.frames[0])
            kind = h["op"].split(".")[0]
            if kind in ("queue", "lock", "event"):
                self.conn.request({"v": 1, "cmd": "dict", "op": kind + ".withdraw",
                                   "name": h["name"], "of": self.key}, None, idempotent=True,
                                  make=lambda k, f, i: _Forget(k, f, i, self))
        except Exception as e:      # never in the I/O thread's way
            _warn("could not take back an abandoned request after forqd restarted: %r" % (e,))

    def withdrawn(self) -> None:
        """forqd withdrew the request: no answer will come; nothing to give back."""
        with self.guard:
            self.rescued = True
        if self.conn.pending.get(self.key) is self:
            self.conn.forget(self.key)

    def _give_back(self, h: Optional[dict], payload: Optional[bytes]) -> None:
        if self.rescued or self.rescue is None or h is None or h.get("cmd") == "error":
            return
        self.rescued = True
        try:
            self.rescue(self.conn, h, payload)
        except Exception as e:      # never in the I/O thread's way
            _warn("could not give back what an abandoned request received: %r" % (e,))

    def give_back(self) -> None:
        """The caller has the answer but leaves with an exception: give it back now."""
        self._give_back(self.header, self.payload)


class _Forget(Call):
    """The withdraw of an abandoned request after forqd restarted: once it is answered, any
    answer to the request has come (and was rescued); its place in the table goes. No answer
    (the connection dropped again) or an error: the place stays."""
    __slots__ = ("entry",)

    def __init__(self, key: int, frames: list, idempotent: bool, entry: _Pending) -> None:
        super().__init__(key, frames, idempotent)
        self.entry = entry

    def _on_reply(self, h: dict, frames: list) -> None:
        if h.get("cmd") == "error":
            return
        entry = self.entry
        with entry.guard:
            entry.rescued = entry.rescued or bool(h.get("found"))   # withdrawn: nothing came
        pending = entry.conn.pending
        if pending.get(entry.key) is entry:
            pending.pop(entry.key, None)

    def _on_lost(self, exc: BaseException) -> None:
        pass


def _warn(text: str) -> None:
    try:
        sys.stderr.write("forq: %s\n" % text)
    except Exception:
        pass


class _Notice(Call):
    """A request sent on behalf of nobody (a rescue): a failure is written to stderr, since no
    caller is left to raise it to. When this process closes its connection first (it exits),
    the request is still sent (ZeroMQ's linger) but its answer is not read: nothing is said."""
    __slots__ = ("conn", "what")

    def __init__(self, key: int, frames: list, idempotent: bool, conn: Any, what: str) -> None:
        super().__init__(key, frames, idempotent)
        self.conn = conn
        self.what = what

    def _on_reply(self, h: dict, frames: list) -> None:
        if h.get("cmd") == "error":
            _warn("%s failed: %s" % (self.what, h.get("msg") or h.get("code")))

    def _on_lost(self, exc: BaseException) -> None:
        if not self.conn._closing:
            _warn("%s: forqd's answer did not come (%s); whether it was done is unknown"
                  % (self.what, exc))


def send_notice(conn: Any, header: dict, payload: Optional[bytes], what: str) -> None:
    """Send a request whose answer nobody waits for (``what`` says what it does, for the line
    written to stderr if it fails)."""
    conn.request(header, payload, idempotent=False,
                 make=lambda k, f, i: _Notice(k, f, i, conn, what))


class Handle:
    """What every shared object has: its name, its connection (this process's default one to
    the endpoint, or an executor's), a timeout for requests that do not wait. A handle passed
    to another process (pickled, or inherited by fork) reconnects there by itself."""

    kind = "queue"

    def __init__(self, name: str, endpoint: Optional[str] = None, *, executor: Any = None,
                 key: Optional[str] = None, server_key: Optional[str] = None,
                 timeout: Optional[float] = None) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError("%s name %r must be 1-64 characters of A-Z a-z 0-9 . _ : -"
                             % (self.kind, name))
        if executor is not None and (endpoint is not None or key is not None
                                     or server_key is not None):
            raise TypeError("give an endpoint (and keys) or an executor, not both")
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be > 0 seconds or None")
        self.name = name
        self.timeout = timeout
        self._own = executor is None
        self._args = (endpoint, key, server_key)
        self.executor = default_executor(endpoint, key, server_key) if executor is None \
            else executor
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return "forq.%s(%r, %r)" % (type(self).__name__, self.name, self.executor.endpoint)

    def _where(self) -> tuple:
        """(endpoint, key, server_key) a copy in another process connects with: the handle's
        own, or those its executor was made with."""
        if self._own:
            return self._args
        return (self.executor.endpoint,) + tuple(self.executor._key_args)

    def _state(self) -> dict:
        """What a copy in another process needs (the executor is not sent: the copy uses its
        own process's default connection to the same endpoint, with the same keys)."""
        endpoint, key, server_key = self._where()
        return {"name": self.name, "endpoint": endpoint, "key": key, "server_key": server_key,
                "timeout": self.timeout}

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), self._state()))

    @property
    def _conn(self) -> Any:
        if self._pid != os.getpid():        # inherited by fork: this process's own connection
            if self._own or self.executor._conn._forked:
                self._args = self._where()
                self.executor = default_executor(*self._args)
                self._own = True
            self._pid = os.getpid()
        return self.executor._conn

    # ---- requests ----

    def _header(self, op: str, fields: dict) -> dict:
        h = {"v": 1, "cmd": "dict", "op": op, "name": self.name}
        h.update(fields)
        return h

    def _call(self, op: str, payload: Optional[bytes] = None, *, changes: bool,
              **fields: Any) -> tuple[dict, Optional[bytes]]:
        """A request that does not wait in forqd (``payload``: a packed value frame)."""
        return self._conn.call(self._header(op, fields), payload, idempotent=not changes,
                               timeout=self.timeout,
                               what=("%s %s %s", (self.kind, self.name, op)))

    def _pack(self, value: Any) -> bytes:
        try:
            payload = packb(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise TypeError("a %s item must be a msgpack value (None, bool, int, float, str, "
                            "bytes, list, tuple, dict): %s" % (self.kind, e)) from None
        conn = self._conn
        if len(payload) > conn.max_payload:
            raise ValueError("the item is %d bytes, more than the %d forqd accepts"
                             % (len(payload), conn.max_payload))
        return payload

    def _withdraw(self, conn: Any, call: "_Pending", op: str) -> bool:
        """Take back ``call``, a request that waits in forqd, unanswered here: True when forqd
        withdrew it (no answer will come; nothing was taken, put or granted), False when it
        had answered first (the answer came before this reply) or could not be asked (the
        connection is down, forqd did not answer in time): the answer is the rescue's then."""
        if not conn.up or conn._closing or conn._forked:
            return False
        header = self._header(op.split(".")[0] + ".withdraw", {"of": call.key})
        try:
            h, _ = conn.call(header, None, idempotent=True, timeout=WITHDRAW_WAIT,
                             what="withdrawing %s %s %s" % (self.kind, self.name, op))
        except Exception:
            return False
        if not h.get("found"):
            return False
        call.withdrawn()
        return True

    def _wait_call(self, op: str, payload: Optional[bytes], *, wait: Optional[float],
                   rescue: Optional[Rescue], changes: bool = True,
                   keep: Optional[Callable[[dict], None]] = None,
                   unkeep: Optional[Callable[[dict], None]] = None,
                   **fields: Any) -> tuple[dict, Optional[bytes]]:
        """A request whose answer may be long in coming (``wait``: seconds forqd may take, None
        for ever) or may hold something (``rescue``: gives it back if the caller is gone). One
        that waits in forqd (``block``) is withdrawn if the caller gives up first. ``keep``
        records what the answer holds before this returns (an interruption after this returns
        loses nothing); interrupted before it returns, ``unkeep`` undoes it and the answer is
        given back."""
        conn = self._conn
        what = "%s %s %s" % (self.kind, self.name, op)
        blocks = bool(fields.get("block"))
        if blocks:
            conn.check_may_wait(what)
        if conn._closing or conn._forked:
            conn.check_usable()
        header = self._header(op, fields)
        if rescue is None and not blocks:
            h, p = conn.call(header, payload, idempotent=not changes,
                             timeout=None if wait is None else wait + WAIT_GRACE, what=what)
            if keep is not None:
                keep(h)
            return h, p
        call = conn.request(header, payload, idempotent=not changes and rescue is None,
                            make=lambda k, f, i: _Pending(k, f, i, conn, rescue))
        asked = False
        kept: Optional[dict] = None
        try:
            if not call.lock.acquire(True, -1 if wait is None else wait + WAIT_GRACE):
                asked = blocks
                if blocks and self._withdraw(conn, call, op):
                    raise TimeoutError(
                        "forqd at %s did not answer %s within %g s: the request was withdrawn, "
                        "nothing was taken, put or granted"
                        % (conn.endpoint, what, wait + WAIT_GRACE))   # type: ignore[operator]
                if not call.lock.acquire(False):    # else: answered before the withdraw
                    if call.abandon():
                        if conn.up and not conn.auth_problem:
                            raise TimeoutError(
                                "forqd at %s did not answer %s within %g s (what it sends "
                                "later is given back)" % (conn.endpoint, what,
                                                          wait + WAIT_GRACE))  # type: ignore
                        raise errors.ConnectionError(
                            conn.why_silent(wait + WAIT_GRACE))  # type: ignore[operator]
                    call.lock.acquire()     # its answer is a moment away
            if call.error is not None:
                if isinstance(call.error, errors.ConnectionError):
                    raise errors.ConnectionError(
                        "%s: %s (if forqd still answers it, what it sends is given back)"
                        % (what, call.error)) from None
                raise call.error
            h = call.header
            if h.get("cmd") == "error":     # type: ignore[union-attr]
                raise errors.reply_exception(h, what)   # type: ignore[arg-type]
            if keep is not None:
                kept = h
                keep(h)                     # type: ignore[arg-type]
            return h, call.payload          # type: ignore[return-value]
        except BaseException:
            if kept is not None and unkeep is not None:
                unkeep(kept)
            if not call.abandon():
                call.give_back()
            elif blocks and not asked:
                self._withdraw(conn, call, op)  # else a late answer goes to the rescue
            raise


def _rebuild(cls: type, state: dict) -> Any:
    return cls._from_state(state)


def _put_back(name: str) -> Rescue:
    """The rescue of a queue's get: its item goes back to the front of the queue."""
    def rescue(conn: Any, h: dict, payload: Optional[bytes]) -> None:
        if h.get("found") and payload is not None:
            send_notice(conn, {"v": 1, "cmd": "dict", "op": "queue.put", "name": name,
                               "front": True}, payload,
                        "putting back into queue %r the item an interrupted get received"
                        % name)
    return rescue


def _check_wait(block: bool, timeout: Optional[float]) -> Optional[float]:
    """multiprocessing's (block, timeout): None to wait for ever, 0 not to wait, else seconds."""
    if not block:
        return 0.0
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return float(timeout)


class Queue(Handle):
    """The queue ``name`` inside forqd, a FIFO of msgpack values shared by every process and
    machine that reaches forqd (``multiprocessing.Queue``'s API)::

        q = forq.Queue("fruit")             # the default forqd ($FORQ_ENDPOINT ...)
        q.put("apple")
        q.get()                             # 'apple' - in any process, on any machine
        q.get(timeout=5)                    # queue.Empty if none came within 5 s

    ``maxsize`` > 0 bounds the queue: ``put`` waits for room (``block``, ``timeout``) or raises
    ``queue.Full`` - it is never dropped. The bound travels with each put: every producer of a
    queue should give the same. ``endpoint``, ``key``, ``server_key``, ``executor``: as for
    :class:`forq.Dict`. ``timeout``: seconds a request that does not wait may take (None: until
    forqd answers, or the connection is given up).

    Items are msgpack values: None, bool, int, float, str, bytes, list, dict (a tuple comes
    back as a list). Each item goes to exactly one consumer, in order; consumers that wait are
    served in the order they came, and one that goes away while it waits takes nothing with it.
    A ``get`` interrupted (Ctrl-C, an exception, a timeout of ours) loses no item: one forqd
    sends it later is put back at the front of the queue (see the module's text). The queue
    exists while it holds items; ``forqd --state-dir`` keeps them across restarts. A handle
    may be passed to another process (``Process(target=f, args=(q,))``): there it uses that
    process's own connection. Safe to share between threads.
    """

    kind = "queue"

    def __init__(self, name: str, maxsize: int = 0, endpoint: Optional[str] = None, *,
                 executor: Any = None, key: Optional[str] = None,
                 server_key: Optional[str] = None, timeout: Optional[float] = None) -> None:
        if type(maxsize) is not int or maxsize < 0:
            raise ValueError("maxsize must be an integer >= 0 (0: no bound)")
        super().__init__(name, endpoint, executor=executor, key=key, server_key=server_key,
                         timeout=timeout)
        self.maxsize = maxsize

    def _state(self) -> dict:
        s = super()._state()
        s["maxsize"] = self.maxsize
        return s

    @classmethod
    def _from_state(cls, s: dict) -> "Queue":
        return cls(s["name"], s["maxsize"], s["endpoint"], key=s["key"],
                   server_key=s["server_key"], timeout=s["timeout"])

    def put(self, obj: Any, block: bool = True, timeout: Optional[float] = None, *,
            front: bool = False) -> None:
        """Put ``obj`` at the back of the queue (``front``: at the front, the next get takes
        it). On a full queue (``maxsize``) wait for room - for ever, or up to ``timeout``
        seconds - then raise ``queue.Full``; with ``block`` False raise it at once. Nothing is
        put when Full is raised. A put that waits and is interrupted may still put its item
        when room comes."""
        wait = _check_wait(block, timeout) if self.maxsize else 0.0
        fields: dict = {}
        if front:
            fields["front"] = True
        if self.maxsize:
            fields["maxsize"] = self.maxsize
            if wait != 0.0:
                fields["block"] = True
                if wait is not None:
                    fields["timeout_ms"] = _timeout_ms(wait)
        payload = self._pack(obj)
        if fields.get("block"):
            h, _ = self._wait_call("queue.put", payload, wait=wait, rescue=None, **fields)
        else:
            h, _ = self._call("queue.put", payload, changes=True, **fields)
        if h.get("code") == "full":
            raise queue.Full("queue %r is full (%d items, maxsize %d)%s: nothing was put"
                             % (self.name, h.get("count", 0), self.maxsize,
                                "" if not fields.get("block") else
                                " and no room came within %g s" % wait))  # type: ignore

    def put_nowait(self, obj: Any) -> None:
        """``put(obj, False)``: queue.Full at once if the queue is at its maxsize."""
        self.put(obj, False)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Take the first item: wait for one - for ever, or up to ``timeout`` seconds - then
        raise ``queue.Empty``; with ``block`` False raise it at once. forqd does the waiting:
        consumers are served in the order they came."""
        wait = _check_wait(block, timeout)
        fields: dict = {}
        if wait != 0.0:
            fields["block"] = True
            if wait is not None:
                fields["timeout_ms"] = _timeout_ms(wait)
        h, payload = self._wait_call("queue.get", None, wait=self.timeout if wait == 0.0
                                     else wait, rescue=_put_back(self.name), **fields)
        if not h.get("found"):
            raise queue.Empty("queue %r is empty%s" % (
                self.name, "" if wait == 0.0 else
                " (no item came within %g s)" % wait))    # type: ignore[str-format]
        return unpackb(payload)         # type: ignore[arg-type]

    def get_nowait(self) -> Any:
        """``get(False)``: queue.Empty at once if the queue has no item."""
        return self.get(False)

    def qsize(self) -> int:
        """The number of items in the queue now (others may change it at once)."""
        h, _ = self._call("queue.len", changes=False)
        return h.get("count", 0)

    def empty(self) -> bool:
        """Does the queue hold no item now?"""
        return self.qsize() == 0

    def full(self) -> bool:
        """Does the queue hold ``maxsize`` items or more now? (Always False without one.)"""
        return self.maxsize > 0 and self.qsize() >= self.maxsize

    def peek(self, start: int = 0, limit: int = 1000) -> list:
        """Up to ``limit`` (at most 10,000) items from index ``start``, without taking them: a
        glimpse (indexes shift as gets take items)."""
        if type(start) is not int or start < 0 or type(limit) is not int or limit < 1:
            raise ValueError("start must be an integer >= 0 and limit >= 1")
        h, payload = self._call("queue.range", changes=False, start=start, limit=limit)
        return unpackb(payload) if payload else []

    def clear(self) -> int:
        """Remove every item at once; the number removed. Puts waiting for room go in."""
        h, _ = self._call("queue.clear", changes=True)
        return h.get("count", 0)

    def close(self) -> None:
        """Nothing to do (``multiprocessing.Queue.close`` stops its feeder thread; a forq.Queue
        has none: every put is in forqd when it returns). Kept so that ported code runs."""

    def join_thread(self) -> None:
        """Nothing to wait for (see :meth:`close`)."""


class Event(Handle):
    """The event ``name`` inside forqd (``multiprocessing.Event``'s API), seen by every process
    and machine that reaches forqd::

        ready = forq.Event("ready")
        ready.wait(10)                      # in consumers: True once set, False after 10 s
        ready.set()                         # in the producer: every wait is answered

    ``endpoint``, ``key``, ``server_key``, ``executor``, ``timeout``: as for
    :class:`forq.Queue`. An event that is set stays set (and, with ``forqd --state-dir``,
    across restarts) until cleared."""

    kind = "event"

    @classmethod
    def _from_state(cls, s: dict) -> "Event":
        return cls(s["name"], s["endpoint"], key=s["key"], server_key=s["server_key"],
                   timeout=s["timeout"])

    def set(self) -> None:
        """Set the event: every wait for it is answered, and waits answer at once until it is
        cleared."""
        self._call("event.set", changes=True)

    def clear(self) -> None:
        """Clear the event: waits wait again."""
        self._call("event.clear", changes=True)

    def is_set(self) -> bool:
        """Is the event set now?"""
        h, _ = self._call("event.wait", changes=False)
        return bool(h.get("found"))

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the event is set - for ever, or up to ``timeout`` seconds; True if it is
        set, False if the timeout passed first."""
        if timeout is not None and timeout <= 0:
            return self.is_set()
        fields: dict = {"block": True}
        if timeout is not None:
            fields["timeout_ms"] = _timeout_ms(timeout)
        h, _ = self._wait_call("event.wait", None, wait=timeout, rescue=None, changes=False,
                               **fields)
        return bool(h.get("found"))
