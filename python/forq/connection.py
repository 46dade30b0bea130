"""connection.py - one connection to forqd: the I/O thread that owns the DEALER socket, the
outgoing queue, the table of pending jobs and requests, and what happens when forqd goes away
and comes back.

How:

* One I/O thread per connection owns the ZeroMQ DEALER socket (ZeroMQ sockets are not
  thread-safe). Any thread hands it a message by appending to a deque and, when the I/O thread
  is not already due to look, writing to an eventfd it polls beside the socket: a burst of
  submissions costs one wake-up, and the I/O thread sends the whole burst in one turn.
* Replies find their waiter in one table: a job's ``result``/``progress``/``error`` by job id (a
  str), every other reply by its request number (an int). The I/O thread resolves futures
  and wakes waiters; each pending entry is taken out of the table exactly once (``dict.pop`` is
  atomic), and whoever takes it resolves it - the I/O thread with forqd's answer, or a caller
  that cancels it.
* As libforq does (client/conn.c, client/health.c): the routing id is ``"c"`` + 32 random hex
  digits, job ids are a random prefix and a counter; at every connection the client pings forqd
  without waiting (the pong gives ``max_payload`` and forqd's ``instance``); after a
  reconnection it fetches every pending job again - a job forqd does not know is submitted again
  when forqd restarted (a new instance) and the job allows retries, else it is ``Lost``;
  requests whose answer may have been cut off are sent again when they only read, and fail
  with ConnectionError when they change something (whether forqd applied them is unknown).
  While forqd is unreachable, whatever has waited ``lost_after`` seconds is resolved ``Lost``
  (requests: ConnectionError), so nothing waits for ever unless ``lost_after`` is 0.

Invariants: only the I/O thread touches the sockets; an entry is in the table exactly while it
waits for forqd; every entry taken out of the table is resolved exactly once.
"""
from __future__ import annotations

import atexit
import collections
import itertools
import os
import socket as pysocket
import stat
import threading
import time
import weakref
from _thread import allocate_lock
from typing import Any, Callable, Optional

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

from . import errors
from .config import Keys

PAYLOAD_DEF = 64 << 20      # forqd's --max-payload until its pong says otherwise
HEADER_MAX = 4096           # bytes in a header frame (PROTOCOL.md section 3.1)
LOST_CHECK = 0.1            # seconds between looks for overdue waits while forqd is away
RESTART_SAME, RESTART_NEW = "same", "new"

_MONITOR_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
                   | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


# the socket calls of the I/O thread, straight to pyzmq's Cython layer (its Python layer costs
# more than the call itself)
_send = zmq.backend.Socket.send
_recv = zmq.backend.Socket.recv
_get = zmq.backend.Socket.get
_NOBLOCK, _SNDMORE, _RCVMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE), int(zmq.RCVMORE)
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)


def _events(sock: zmq.Socket) -> int:
    return _get(sock, _EVENTS)


def _recv_all(sock: zmq.Socket) -> list:
    """Every message waiting on the socket, each a list of frames (bytes)."""
    batch = []
    while _get(sock, _EVENTS) & _POLLIN:
        frames = [_recv(sock, _NOBLOCK)]
        while _get(sock, _RCVMORE):
            frames.append(_recv(sock, _NOBLOCK))
        batch.append(frames)
    return batch


def _drain(fd: int) -> None:
    try:
        os.read(fd, 64)
    except BlockingIOError:
        pass


class _Packers(threading.local):
    def __init__(self) -> None:
        self.pack = msgpack.Packer(use_bin_type=True).pack


_packers = _Packers()       # one Packer per thread: made once, not per message


def packb(value: Any) -> bytes:
    """One msgpack value, as forq sends it (str as str, bytes as bin)."""
    return _packers.pack(value)


def packstr(text: str) -> bytes:
    """A msgpack str of an ASCII name or id (at most 255 bytes)."""
    b = text.encode("ascii")
    n = len(b)
    return (bytes((0xa0 | n,)) if n < 32 else b"\xd9" + bytes((n,))) + b


# {"v": 1, "cmd": "submit", "id": ..., "task": ...}: a job without options, packed by hand
SUBMIT_HEAD = b"\x84\xa1v\x01\xa3cmd\xa6submit\xa2id"
SUBMIT_TASK = b"\xa4task"


def unpackb(data: bytes) -> Any:
    """One msgpack value from forqd (str as str, bin as bytes; map keys of any type)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False,
                           unicode_errors="surrogateescape")


def unpack_tuples(data: bytes) -> Any:
    """As unpackb, with arrays as tuples (faster to make than lists)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=False,
                           unicode_errors="surrogateescape")


# ---- the process's ZeroMQ context ----

_ctx_lock = threading.Lock()
_ctx: Optional[zmq.Context] = None
_ctx_pid = 0
_inherited: list = []               # a parent's objects in a forked child: never touched again
_live: "weakref.WeakSet[Connection]" = weakref.WeakSet()


def _context() -> zmq.Context:
    """One ZeroMQ context (one ZeroMQ I/O thread) for every connection of this process."""
    global _ctx, _ctx_pid
    with _ctx_lock:
        if _ctx is None or _ctx_pid != os.getpid():
            if _ctx is not None:
                _inherited.append(_ctx)
            _ctx = zmq.Context(io_threads=1)
            _ctx_pid = os.getpid()
        return _ctx


def _after_fork_in_child() -> None:
    # the parent's I/O threads do not exist here: its connections are unusable in this process
    for conn in list(_live):
        conn._forked = True
        _inherited.append(conn)
    _live.clear()


def _at_exit() -> None:
    """Stop every connection, deliver what was not sent yet (linger), let the process go."""
    global _ctx
    conns = [c for c in list(_live) if not c._forked]
    for c in conns:
        c.close(wait=False, abort=True)
    for c in conns:
        c._thread.join(c.linger + 1.0)
    with _ctx_lock:
        ctx, _ctx = _ctx, None
        mine = _ctx_pid == os.getpid()
    if ctx is not None and mine and all(not c._thread.is_alive() for c in conns):
        ctx.term()      # returns once the lingering messages are out (or their linger is over)


_exit_hook_pid = 0


def _exit_hooks() -> None:
    """_at_exit at this process's exit: atexit, and multiprocessing's finalizers for the
    children it forks (they leave with os._exit, after its finalizers but without atexit)."""
    global _exit_hook_pid
    if _exit_hook_pid != os.getpid():
        _exit_hook_pid = os.getpid()
        import multiprocessing.util
        multiprocessing.util.Finalize(None, _at_exit, exitpriority=100)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)


# ---- the wake-up ----

if hasattr(os, "eventfd"):
    def _wakefd() -> tuple[int, int]:
        fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        return fd, fd

    def _signal(fd: int) -> None:
        os.eventfd_write(fd, 1)
else:                                           # pragma: no cover - Python < 3.10
    def _wakefd() -> tuple[int, int]:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        return r, w

    def _signal(fd: int) -> None:
        try:
            os.write(fd, b"\0")
        except BlockingIOError:
            pass


class Call:
    """A request waiting for its one reply; the waiting thread blocks on ``lock``."""
    __slots__ = ("key", "lock", "header", "payload", "error", "frames", "idempotent",
                 "since", "sent_session", "on_reply")

    def __init__(self, key: int, frames: list, idempotent: bool) -> None:
        self.key = key
        self.lock = allocate_lock()
        self.lock.acquire()
        self.header: Optional[dict] = None
        self.payload: Optional[bytes] = None
        self.error: Optional[BaseException] = None
        self.frames = frames
        self.idempotent = idempotent
        self.since = time.monotonic()
        self.sent_session: Optional[int] = None     # the session it was sent in while up
        self.on_reply: Optional[Callable[[Any], None]] = None  # run by the I/O thread first

    def _on_reply(self, h: dict, frames: list) -> None:
        self.header = h
        self.payload = frames[1] if len(frames) > 1 else None
        if self.on_reply is not None:
            self.on_reply(self)     # in the I/O thread, in order with the invalidations
        self.lock.release()

    def _on_lost(self, exc: BaseException) -> None:
        self.error = exc
        self.lock.release()


class Connection:
    """A connection to forqd shared by every thread of an Executor (see the module comment)."""

    def __init__(self, endpoint: str, keys: Optional[Keys], *, lost_after: Optional[float],
                 linger: float, max_message: Optional[int] = None) -> None:
        self.endpoint = endpoint
        self.lost_after = lost_after if lost_after and lost_after > 0 else None
        self.linger = max(0.0, linger)
        rnd = os.urandom(24)
        self.prefix = rnd[:8].hex()
        self.routing_id = b"c" + rnd[8:].hex().encode("ascii")
        self._jobs = itertools.count(1)
        self._reqs = itertools.count(1)
        self.pending: dict = {}                 # job id (str) or request number (int) -> entry
        self._out: collections.deque = collections.deque()     # (frames, Call or None)
        self._wake_due = False
        self.max_payload = PAYLOAD_DEF
        self.limits_known = False
        self.instance = 0
        self._session = 0
        self._pong_session = -1
        self._restart: Optional[str] = None
        self.up = False
        self.ever_up = False
        self.down_since = time.monotonic()
        self.auth_problem = ""
        self.peer_problem = ""
        self._transport_seen = False
        self._ready = threading.Event()         # a pong came, or a refusal
        self._ponged = False
        self._closing = False
        self._abort = False
        self._forked = False
        self._orders = False
        self._orders_while_down = False
        self.io_ident = 0
        self.curve = keys is not None
        # the client-side dict caches (dicts.py's _Cache) by dict name: the I/O thread applies
        # forqd's invalidations to them as it reads them, and empties them when the link drops
        self.caches: dict = {}
        self._rfd, self._wfd = _wakefd()
        ctx = _context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, self.routing_id)
        sock.setsockopt(zmq.MAXMSGSIZE, max_message or PAYLOAD_DEF + HEADER_MAX)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, keys.server.encode("ascii"))
            sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public.encode("ascii"))
            sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.encode("ascii"))
        self._mon = sock.get_monitor_socket(_MONITOR_EVENTS)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as e:
            sock.disable_monitor()
            self._mon.close(0)
            sock.close(0)
            raise ValueError("cannot connect to %r: %s" % (endpoint, e)) from None
        self._sock = sock
        _exit_hooks()
        self._thread = threading.Thread(target=self._run, name="forq-io", daemon=True)
        self._thread.start()
        _live.add(self)

    # ---- any thread ----

    def check_usable(self) -> None:
        """Raise RuntimeError when this connection cannot take work any more."""
        if self._forked:
            raise RuntimeError("this forq Executor was created in another process (before a "
                               "fork): create a new one in this process")
        if self._closing:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def in_io_thread(self) -> bool:
        """Is the caller the I/O thread (where callbacks run, and where waiting would block
        the very thread that delivers the answer)?"""
        return threading.get_ident() == self.io_ident

    def check_may_wait(self, what: str) -> None:
        if threading.get_ident() == self.io_ident:
            raise RuntimeError("%s would wait for forqd inside a callback, which runs in forq's "
                               "I/O thread and would block it: wait in another thread" % what)

    def new_job_id(self) -> str:
        return "%s-%x" % (self.prefix, next(self._jobs))

    def check_payload(self, what: str, size: int) -> None:
        """Refuse locally (Rejected too_large) a frame forqd would refuse, or over which ZeroMQ
        would drop the connection (PROTOCOL.md section 3.1)."""
        if size > self.max_payload:
            raise errors.Rejected(
                "too_large", "%s is %d bytes, more than the %d %s; send less, or pass a file "
                "path or dict key in its place" % (
                    what, size, self.max_payload,
                    "forqd accepts (its --max-payload)" if self.limits_known else
                    "forqd accepts by default (its own limit is not known yet)"))

    def _push(self, frames: list, call: Optional[Call] = None) -> None:
        self._out.append((frames, call))
        if not self._wake_due:
            self._wake_due = True
            _signal(self._wfd)

    def submit(self, entry: Any, header: Any, args: bytes) -> None:
        """Send a job: its header (a dict, or already packed) and args frame. ``entry`` (a
        Future or a map's chunk) has ``key`` (the job id) and is resolved through
        ``_on_reply``/``_on_lost``; registered before it is sent."""
        hb = header if type(header) is bytes else packb(header)
        if len(hb) > HEADER_MAX:
            raise ValueError("the job's header is %d bytes, more than forqd's %d; use shorter "
                             "names" % (len(hb), HEADER_MAX))
        entry.since = time.monotonic()
        if self.pending.setdefault(entry.key, entry) is not entry:
            raise ValueError("this executor already waits for a job with id %r" % entry.key)
        self._orders = True
        if not self.up:
            self._orders_while_down = True
        self._push([hb, args])

    def fetch(self, entry: Any) -> None:
        """Wait for job ``entry.key``, submitted by anyone (PROTOCOL.md section 6.4.1)."""
        entry.since = time.monotonic()
        if self.pending.setdefault(entry.key, entry) is not entry:
            raise ValueError("this executor already waits for job %r" % entry.key)
        self._push([packb({"v": 1, "cmd": "fetch", "id": entry.key})])

    def send(self, header: dict) -> None:
        """Send a message whose answer nobody waits for (a cancel)."""
        if header.get("cmd") == "cancel":
            self._orders = True
        self._push([packb(header)])

    def forget(self, key: Any) -> Any:
        """Take ``key`` out of the table; the entry if it was there (then the caller resolves
        it), else None (the I/O thread took it first)."""
        return self.pending.pop(key, None)

    def request(self, header: dict, payload: Optional[bytes] = None, *,
                idempotent: bool = True, make: Callable[[int, list, bool], Call] = Call,
                on_reply: Any = None) -> Call:
        """Send a request (it gets a ``req``); wait on the returned Call's lock. ``make``: the
        Call's class (a subclass that acts on an answer nobody waits for any more: shared.py).
        ``on_reply`` (the Call) runs in the I/O thread as the reply is read, before the waiter
        wakes."""
        req = next(self._reqs)
        header["req"] = req
        frames = [packb(header)]
        if payload is not None:
            frames.append(payload)
        call = make(req, frames, idempotent)
        call.on_reply = on_reply
        self.pending[req] = call
        if not idempotent:
            self._orders = True
            if not self.up:
                self._orders_while_down = True
        self._push(frames, call)
        return call

    def call(self, header: dict, payload: Optional[bytes] = None, *, idempotent: bool = True,
             timeout: Optional[float] = None, what: Any = "request",
             on_reply: Any = None) -> tuple[dict, Optional[bytes]]:
        """Send a request and wait for its reply: ``(header, payload frame or None)``. An
        ``error`` reply raises its exception; no answer within ``timeout`` raises TimeoutError
        (forqd answers slowly) or forq.ConnectionError (forqd is not there). ``what`` names
        the request in errors: a str, or a ``(format, args)`` pair formatted only then."""
        if threading.get_ident() == self.io_ident:
            self.check_may_wait(_what(what))
        if self._closing or self._forked:
            self.check_usable()
        call = self.request(header, payload, idempotent=idempotent, on_reply=on_reply)
        if not call.lock.acquire(True, -1 if timeout is None else max(0.0, timeout)):
            if self.forget(call.key) is not None:
                if self.up and not self.auth_problem:
                    raise TimeoutError("forqd did not answer %s at %s within %g s"
                                       % (_what(what), self.endpoint, timeout))
                raise errors.ConnectionError(self.why_silent(timeout or 0.0))
            call.lock.acquire()     # the I/O thread took it: its answer is a moment away
        if call.error is not None:
            raise call.error
        h = call.header
        if h.get("cmd") == "error":     # type: ignore[union-attr]
            raise errors.reply_exception(h, _what(what))    # type: ignore[arg-type]
        return h, call.payload          # type: ignore[return-value]

    def wait_ready(self, timeout: float) -> bool:
        """Wait until forqd answered the first ping (True), or refused us, or ``timeout``."""
        self._ready.wait(timeout)
        return self._ponged and not self.auth_problem

    def unreachable_for(self) -> float:
        """Seconds forqd has been unreachable (0.0 while connected)."""
        return 0.0 if self.up else max(1e-3, time.monotonic() - self.down_since)

    def why_silent(self, timeout: float) -> str:
        """One line saying why forqd did not answer (health_why_silent in libforq)."""
        ep = self.endpoint
        if self.auth_problem:
            return self.auth_problem
        if self.curve and self._transport_seen and not self.ever_up:
            return ("the CURVE handshake with forqd at %s did not complete in %g s: is the server "
                    "key you gave forqd's (forqd --show-key prints it), and is your key in its "
                    "clients file?" % (ep, timeout))
        if self.peer_problem:
            return ("the peer at %s is not forqd: %s; check the endpoint ($FORQ_ENDPOINT)"
                    % (ep, self.peer_problem))
        if self.up:
            return ("a ZeroMQ peer at %s took the connection but did not answer a ping within "
                    "%g s: it is not forqd, or forqd is stuck" % (ep, timeout))
        if self._transport_seen and not self.ever_up:
            return ("the peer at %s is not forqd: it takes connections but did not complete "
                    "ZeroMQ's handshake in %g s; check the endpoint ($FORQ_ENDPOINT)"
                    % (ep, timeout))
        return ("no forqd at %s: nothing answered within %g s; is forqd running, and is this "
                "its endpoint ($FORQ_ENDPOINT)?" % (ep, timeout))

    def close(self, wait: bool = True, abort: bool = False) -> None:
        """Stop: at once with ``abort`` (pending waits are resolved Lost), else once nothing
        is pending. Unsent orders are delivered for up to ``linger`` seconds."""
        if self._forked:
            return
        self._closing = True
        self._abort = self._abort or abort
        _signal(self._wfd)
        if wait and not self.in_io_thread():
            self._thread.join()

    # ---- the I/O thread ----

    def _run(self) -> None:
        self.io_ident = threading.get_ident()
        sock, mon, out, rfd = self._sock, self._mon, self._out, self._rfd
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(mon, zmq.POLLIN)
        poller.register(rfd, zmq.POLLIN)
        want_out = False
        on_frames = self._on_frames
        try:
            while True:
                self._wake_due = False      # before the queue is read: see _push
                if self._abort:
                    self._lose_all("the executor was shut down before the result arrived")
                if out:
                    blocked = self._flush()
                    if blocked != want_out:
                        poller.modify(sock, zmq.POLLIN | (zmq.POLLOUT if blocked else 0))
                        want_out = blocked
                if self._closing and not out and (
                        self._abort or not any(type(k) is str for k in self.pending)):
                    break           # no job pending: requests still waiting are given up
                timeout = None
                if not self.up and self.lost_after:
                    timeout = LOST_CHECK * 1000
                events = poller.poll(timeout)
                # every reply there is read before any waiter is woken: a woken thread takes
                # the GIL, and each of the socket calls below would wait for it
                batch = _recv_all(sock) if _events(sock) & _POLLIN else ()
                for s, _ in events:
                    if s is mon:
                        self._monitor()
                    elif s is rfd:
                        _drain(rfd)
                for frames in batch:
                    on_frames(frames)
                if not self.up and self.lost_after and self.pending:
                    self._lose_overdue()
        except BaseException as e:      # a bug of ours: say so to every waiter, never hang
            self._lose_all("forq's I/O thread failed: %r; please report it" % (e,))
            raise
        finally:
            self._shut()

    def _shut(self) -> None:
        self._lose_all("the executor was shut down before forqd answered")
        linger = self.linger if self._orders and (self.up or self._orders_while_down) else 0
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._mon.close(0)
        self._sock.close(int(linger * 1000))
        self._closing = True
        _live.discard(self)

    def __del__(self, _close: Callable[[int], None] = os.close) -> None:
        # the wake-up descriptors outlive the thread: a late close() or cancel may still poke
        if getattr(self, "_forked", True) or not hasattr(self, "_rfd"):
            return
        try:
            _close(self._rfd)
            if self._wfd != self._rfd:
                _close(self._wfd)
        except OSError:
            pass

    def _flush(self) -> bool:
        """Send what is queued; True if the socket took not all of it (poll for room)."""
        out, sock = self._out, self._sock
        session = self._session if self.up else None
        while out:
            frames, call = out.popleft()
            try:
                last = len(frames) - 1
                _send(sock, frames[0], _NOBLOCK | (_SNDMORE if last else 0))
                for i in range(1, last + 1):
                    _send(sock, frames[i], _SNDMORE if i < last else 0)
            except zmq.Again:
                out.appendleft((frames, call))
                return True
            if call is not None:
                call.sent_session = session
        return False

    def _on_frames(self, frames: list) -> None:
        try:
            h = unpackb(frames[0])
        except Exception:
            h = None
        if type(h) is not dict:
            self.peer_problem = "it answered with a message that is not forq's protocol"
            return
        cmd = h.get("cmd")
        if cmd == "invalidate":
            self._invalidate(h, frames)
            return
        if cmd == "result" or cmd == "progress":
            key = h.get("id")
        else:
            if cmd == "pong":
                self._learn(h)
            key = h.get("req")
            if key is None:
                if cmd != "error":
                    return
                key = h.get("id")       # an error about a submit: it carries the job's id
                if not isinstance(key, str):
                    return
        if cmd == "progress":
            entry = self.pending.get(key)
            if entry is not None and not isinstance(key, int):
                entry._on_progress(h)
            return
        entry = self.pending.pop(key, None)
        if entry is None:
            return
        if cmd == "result" and h.get("status") == "unknown" and entry._refetching:
            self._job_unknown(entry)
            return
        entry._on_reply(h, frames)

    def _invalidate(self, h: dict, frames: list) -> None:
        """forqd's ``invalidate`` (PROTOCOL.md 6.8.1): keys of a dict, a whole dict, or (no
        name) everything this connection cached changed."""
        name = h.get("name")
        if name is None:
            for caches in list(self.caches.values()):
                for cache in list(caches):
                    cache.drop(None)
            return
        keys = None
        if len(frames) > 1:
            try:
                keys = unpackb(frames[1])
            except Exception:
                keys = None     # never keep doubt: the whole dict goes
            if not isinstance(keys, list):
                keys = None
        for cache in list(self.caches.get(name, ())):
            if keys is None:
                cache.drop(None)
            else:
                for k in keys:
                    cache.drop(k)

    def _drop_caches(self) -> None:
        for caches in list(self.caches.values()):
            for cache in list(caches):
                cache.drop(None)

    def _learn(self, h: dict) -> None:
        """A pong: forqd's limits, and (first pong of a connection) whether it restarted."""
        mp = h.get("max_payload")
        if isinstance(mp, int) and mp > 0:
            self.max_payload = mp
            self.limits_known = True
        inst = h.get("instance") or 0
        if self._pong_session != self._session:
            self._pong_session = self._session
            self._restart = (None if not inst or not self.instance else
                             RESTART_SAME if inst == self.instance else RESTART_NEW)
            if self._restart == RESTART_NEW:
                self._new_instance()
        if inst:
            self.instance = inst
        self._ponged = True
        self._ready.set()

    def _new_instance(self) -> None:
        """forqd restarted (a new instance): the requests that want to know are told (shared.py
        keeps a place for answers nobody waits for; the old instance can send none now)."""
        for entry in list(self.pending.values()):
            told = getattr(entry, "_new_instance", None)
            if told is not None:
                told()

    def _monitor(self) -> None:
        while True:
            try:
                ev = recv_monitor_message(self._mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            event, value = ev["event"], ev["value"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                again = self.ever_up
                self.up = self.ever_up = True
                self._orders_while_down = False
                self._session += 1
                self._drop_caches()     # invalidations sent while the link was down are lost
                self.auth_problem = self.peer_problem = ""
                # hello: forqd's limits and instance (not waited for: read like any pong)
                self._push([packb({"v": 1, "cmd": "ping", "req": next(self._reqs)})])
                if again:
                    self._after_reconnect()
            elif event == zmq.EVENT_DISCONNECTED:
                if self.up:
                    self.up = False
                    self.down_since = time.monotonic()
                self._drop_caches()
            elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                    self.auth_problem = (
                        "forqd at %s does not use CURVE on this endpoint: connect without a "
                        "server key (server_key=, $FORQ_SERVER_KEY)" % self.endpoint
                        if self.curve else
                        "forqd at %s requires CURVE: give its public key with server_key= "
                        "($FORQ_SERVER_KEY; forqd --show-key prints it) and your key pair "
                        "with key= ($FORQ_KEY)" % self.endpoint)
                    self._ready.set()
                elif self.curve and (value & 0xF0000000) == zmq.PROTOCOL_ERROR_ZMTP_UNSPECIFIED:
                    self.auth_problem = ("the CURVE handshake with forqd at %s failed: is the "
                                         "server key you gave forqd's (forqd --show-key prints "
                                         "it)?" % self.endpoint)
                    self._ready.set()
                else:
                    self.peer_problem = ("the ZeroMQ handshake failed (protocol error 0x%x: "
                                         "another kind of ZeroMQ socket, or not ZeroMQ)" % value)
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self.auth_problem = ("authentication refused by forqd at %s: is your public key "
                                     "in its clients file? (forq keygen prints it; the operator "
                                     "adds a line for it)" % self.endpoint)
                self._ready.set()
            elif event == zmq.EVENT_CONNECTED:
                self._transport_seen = True

    def _after_reconnect(self) -> None:
        """Ask forqd about every pending job; send again the questions whose answer may have
        been lost with the old connection; fail the orders in that case (unknown whether
        applied). Requests sent while forqd was away were kept by ZeroMQ: they go now."""
        for key, entry in list(self.pending.items()):
            if isinstance(key, int):
                if entry.sent_session is None:
                    continue
                if entry.idempotent:
                    entry.sent_session = None
                    self._out.append((entry.frames, entry))
                elif self.pending.pop(key, None) is not None:
                    entry._on_lost(errors.ConnectionError(
                        "the connection to forqd at %s dropped while this request was on its "
                        "way: whether forqd applied it is unknown; check, then retry"
                        % self.endpoint))
            else:
                entry._refetching = True
                self._out.append(([packb({"v": 1, "cmd": "fetch", "id": key})], None))

    def _job_unknown(self, entry: Any) -> None:
        """A pending job forqd does not know after a reconnection (health_job_unknown)."""
        entry._refetching = False
        if entry._args_len > self.max_payload:
            entry._on_lost(errors.Rejected(
                "too_large", "the args are %d bytes, more than the %d forqd at %s accepts (its "
                "--max-payload): it dropped the connection; send smaller arguments"
                % (entry._args_len, self.max_payload, self.endpoint), job_id=entry.key))
            return
        if self._restart == RESTART_SAME:
            entry._on_lost(errors.Lost(
                "forqd at %s did not restart but does not know this job: its submit was cut off "
                "when the connection dropped, or its result expired (forqd's --retain) while "
                "this client was away; its outcome is unknown" % self.endpoint,
                job_id=entry.key))
            return
        if entry._abandoned():
            return
        if entry._retries > 0 and entry._args is not None and not self._closing:
            entry._retries -= 1
            entry._header["retries"] = entry._retries
            self.pending[entry.key] = entry
            self._out.append(([packb(entry._header), entry._args], None))
            return
        entry._on_lost(errors.Lost(
            "forqd restarted (a new instance) and lost this job, which allows no more retries"
            if self._restart == RESTART_NEW else
            "forqd does not know this job after a reconnection (it restarted, or lost it); the "
            "job allows no more retries", job_id=entry.key))

    def _lose_overdue(self) -> None:
        now = time.monotonic()
        limit = self.lost_after or 0.0
        why_job = ("forqd at %s stayed unreachable for %g s (lost_after): the job's outcome is "
                   "unknown" % (self.endpoint, limit))
        for key, entry in list(self.pending.items()):
            if now - max(entry.since, self.down_since) < limit:
                continue
            if self.pending.pop(key, None) is None:
                continue
            if isinstance(key, int):
                entry._on_lost(errors.ConnectionError(
                    "forqd at %s stayed unreachable for %g s (lost_after): %s"
                    % (self.endpoint, limit, self.why_silent(limit))))
            else:
                entry._on_lost(errors.Lost(why_job, job_id=key))

    def _lose_all(self, why: str) -> None:
        for key in list(self.pending):
            entry = self.pending.pop(key, None)
            if entry is None:
                continue
            if isinstance(key, int):
                entry._on_lost(errors.ConnectionError(why))
            else:
                entry._on_lost(errors.Lost(why, job_id=key))


def _what(what: Any) -> str:
    return what if type(what) is str else what[0] % what[1]


def probe_ipc(endpoint: str) -> Optional[str]:
    """Why an ipc endpoint cannot be forqd (its socket file is missing, not a socket, or nobody
    listens on it), said at once rather than after a timeout; None when it may be."""
    if not endpoint.startswith("ipc://"):
        return None
    path = endpoint[len("ipc://"):]
    if not path or path.startswith("@") or len(path.encode()) >= 108:
        return None
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return ("no forqd at %s: the socket file does not exist; is forqd running? see "
                "$FORQ_ENDPOINT" % endpoint)
    except OSError:
        return None
    if not stat.S_ISSOCK(st.st_mode):
        return "no forqd at %s: that path is not a socket; see $FORQ_ENDPOINT" % endpoint
    s = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM | pysocket.SOCK_CLOEXEC)
    try:
        s.setblocking(False)
        s.connect(path)
    except ConnectionRefusedError:
        return ("no forqd at %s: nothing listens on the socket file (left behind by a forqd "
                "that stopped?); is forqd running? see $FORQ_ENDPOINT" % endpoint)
    except PermissionError:
        return ("cannot connect to forqd at %s: permission denied; run as a user its socket "
                "admits, or see $FORQ_ENDPOINT" % endpoint)
    except OSError:
        return None
    finally:
        s.close()
    return None


Callback = Callable[..., None]
