"""executor.py - forq.Executor: concurrent.futures.Executor whose pool is a forqd.

Moving a program from ``ProcessPoolExecutor()`` to forq is a one-line change: the same
``submit``/``map``/``shutdown``/``with`` calls, futures the standard ``wait()`` and
``as_completed()`` take, and the task named by a string (or by a function whose name is the
task's) rather than sent as code - the functions are forqd's tasks: its built-in ones (echo,
sleep, is_prime, count_primes, sum_squares, sha256, exec) and those of its plugins.
"""
from __future__ import annotations

import concurrent.futures
import math
import re
import threading
from typing import Any, Callable, Iterable, Optional, Union

from . import config, errors
from .connection import SUBMIT_HEAD, SUBMIT_TASK, Connection, packb, packstr, probe_ipc
from .future import Future
from .mapping import MapIterator, _Chunk

_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
_OPTIONS = ("run_timeout", "deadline", "priority", "retries", "store", "max_result",
            "max_memory", "max_cpu_seconds", "tags", "job_id")
_TAG = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
WINDOW_DEF = 32         # chunk jobs a map keeps in flight by default

Task = Union[str, Callable[..., Any]]


def with_kwargs(args: tuple, kwargs: Any) -> tuple:
    """``args`` followed by the ``{"$kw": kwargs}`` of PROTOCOL.md section 13 (nothing for
    None; an empty one when the last positional argument would read as keyword arguments)."""
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise TypeError("kwargs must be a dict with str keys, not %r" % (kwargs,))
    last_is_kw = bool(args) and isinstance(args[-1], dict) and list(args[-1]) == ["$kw"]
    if kwargs or last_is_kw:
        return tuple(args) + ({"$kw": kwargs},)
    return tuple(args)


def task_name(task: Task) -> str:
    """The forqd task a ``submit``/``map`` names: a string, or a function's ``__forq_task__`` or
    ``__name__`` (the function itself is never sent: forqd runs its own task of that name)."""
    if isinstance(task, str):
        name = task
    else:
        name = getattr(task, "__forq_task__", None) or getattr(task, "__name__", None)
        if not isinstance(name, str):
            raise TypeError("task must be a task name (str) or a function named like one, not "
                            "%r" % (task,))
    if not _NAME.match(name):
        raise ValueError("task name %r must be 1-64 characters of A-Z a-z 0-9 . _ : -" % name)
    return name


_valid_names: set = set()       # task names already checked (str only, a bounded few)


def _checked_name(task: Task) -> str:
    name = task_name(task)
    if type(task) is str and len(_valid_names) < 4096:
        _valid_names.add(name)
    return name


_packed_names: dict = {}       # task name -> its msgpack str, for the submit header


def _pack_name(name: str) -> bytes:
    packed = packstr(name)
    if len(_packed_names) < 4096:
        _packed_names[name] = packed
    return packed


def _seconds_ms(name: str, value: Any) -> int:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0 \
            or math.isinf(value):
        raise ValueError("%s must be a number of seconds >= 0, not %r" % (name, value))
    return int(math.ceil(value * 1000))


def job_options(options: dict) -> dict:
    """The wire fields of a job's options (PROTOCOL.md section 6.1); ValueError/TypeError
    naming a bad one. ``job_id`` is not among them (the caller takes it out)."""
    out: dict = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "run_timeout":
            ms = _seconds_ms(name, value)
            if ms:
                out["timeout_ms"] = ms
        elif name == "deadline":
            ms = _seconds_ms(name, value)
            if ms:
                out["deadline_ms"] = ms
        elif name == "priority":
            if type(value) is not int or not 0 <= value <= 9:
                raise ValueError("priority must be an integer from 0 to 9, not %r" % (value,))
            out["priority"] = value
        elif name == "retries":
            if type(value) is not int or not 0 <= value <= 100:
                raise ValueError("retries must be an integer from 0 to 100, not %r" % (value,))
            if value:
                out["retries"] = value
        elif name in ("max_result", "max_memory", "max_cpu_seconds"):
            if type(value) is not int or value < 0:
                raise ValueError("%s must be an integer >= 0, not %r" % (name, value))
            if value:
                out[{"max_result": "max_result", "max_memory": "as_bytes",
                     "max_cpu_seconds": "cpu_s"}[name]] = value
        elif name == "store":
            out.update(_store_fields(value))
        elif name == "tags":
            tags = [value] if isinstance(value, str) else value
            if (not isinstance(tags, (list, tuple)) or not tags
                    or not all(isinstance(t, str) and _TAG.match(t) for t in tags)):
                raise ValueError("tags must be a tag or a list of tags of 1-64 of A-Z a-z 0-9 . _ "
                                 ": -, not %r" % (value,))
            joined = ",".join(tags)
            if len(joined) > 256:
                raise ValueError("tags must join to at most 256 bytes, not %d" % len(joined))
            out["tags"] = joined
        else:
            hint = ("; the run timeout is run_timeout= (Future.result(timeout) waits)"
                    if name == "timeout" else
                    "; forq tasks take positional arguments only" if name not in _OPTIONS else "")
            raise TypeError("unknown job option %r (options: %s)%s"
                            % (name, ", ".join(_OPTIONS), hint))
    return out


def _store_fields(value: Any) -> dict:
    try:
        dname, key = value
    except (TypeError, ValueError):
        raise TypeError("store must be a (dict name, key) pair, not %r" % (value,)) from None
    dname = getattr(dname, "name", dname)       # a forq.Dict names its dict
    if not isinstance(dname, str) or not _NAME.match(dname):
        raise ValueError("store: the dict name %r must be 1-64 characters of A-Z a-z 0-9 . _ : -"
                         % (dname,))
    if not isinstance(key, str) or not key or "\0" in key or len(key.encode()) > 1024:
        raise ValueError("store: the key %r must be a string of 1-1024 bytes without NUL"
                         % (key,))
    return {"name": dname, "key": key}


class Executor(concurrent.futures.Executor):
    """A :class:`concurrent.futures.Executor` whose workers are a forqd's, here or on another
    machine::

        with forq.Executor() as ex:                     # $FORQ_ENDPOINT, else forqd's default
            print(ex.submit("count_primes", 1, 300000).result())        # 25997
            print(list(ex.map("is_prime", [10_000_019, 10_000_033])))   # [True, False]

    ``endpoint``: forqd's endpoint (``ipc://PATH`` or ``tcp://HOST:PORT``); None: as the forq
    command resolves it - ``$FORQ_ENDPOINT``, else ``ipc://$XDG_RUNTIME_DIR/forq/forqd.sock``,
    else ``ipc:///tmp/forq-UID/forqd.sock``.
    ``key``, ``server_key``: CURVE for tcp endpoints - this client's key file (``forq keygen``
    writes one) and forqd's public key (40 Z85 characters, ``forqd --show-key``, or a file
    holding it); None: ``$FORQ_KEY`` and ``$FORQ_SERVER_KEY``, and with a server key the
    default key file ``~/.config/forq/client.key``. Without a server key: plaintext (ipc, or a
    forqd with ``--insecure-tcp``).
    ``max_in_flight``: jobs submitted and not yet finished before ``submit`` blocks until some
    finish (None: no bound; forqd's own per-client limit, 100,000 by default, then rejects).
    ``connect_timeout``: seconds to wait for forqd's first answer at creation; without one,
    forq.ConnectionError says why (no socket file, nobody listening, CURVE refused, not a
    forqd). 0 or None: do not wait (forqd may come later).
    ``lost_after``: a pending job resolves :class:`forq.Lost` once forqd has been unreachable
    this many seconds while it waited (default 60; 0 or None: wait for forqd for ever).
    ``linger``: at shutdown, seconds to keep trying to deliver jobs and cancels not yet sent.

    One I/O thread per Executor owns the connection; ``submit`` and every other method may be
    called from any thread. A job that forqd restarted under is submitted again if it allows
    ``retries``, else it ends :class:`forq.Lost`; results that arrive while the connection is
    down are fetched again after it comes back.
    """

    def __init__(self, endpoint: Optional[str] = None, *, key: Optional[str] = None,
                 server_key: Optional[str] = None, max_in_flight: Optional[int] = 10000,
                 connect_timeout: Optional[float] = 5.0, lost_after: Optional[float] = 60.0,
                 linger: float = 2.0) -> None:
        ep = config.resolve_endpoint(endpoint)
        keys = config.resolve_keys(key, server_key)
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1 or None")
        if connect_timeout:
            why = probe_ipc(ep)
            if why:
                raise errors.ConnectionError(why)
        self._key_args = (key, server_key)     # as given: a handle's copy elsewhere uses them
        self._max = max_in_flight
        self._inflight = 0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._waiting = 0
        self._shutdown = False
        self._conn = Connection(ep, keys, lost_after=lost_after, linger=linger)
        if connect_timeout and not self._conn.wait_ready(connect_timeout):
            why = self._conn.why_silent(connect_timeout)
            self._conn.close(wait=True, abort=True)
            raise errors.ConnectionError(why)

    def __repr__(self) -> str:
        return "<forq.Executor %s%s>" % (self.endpoint, " shut down" if self._shutdown else "")

    @property
    def endpoint(self) -> str:
        """The endpoint this executor talks to."""
        return self._conn.endpoint

    @property
    def max_payload(self) -> int:
        """The largest args frame forqd accepts (its ``--max-payload``, from its first answer;
        64 MiB before it). Larger arguments are refused here with Rejected ``too_large``."""
        return self._conn.max_payload

    @property
    def unreachable_for(self) -> float:
        """Seconds forqd has been unreachable (0.0 while connected)."""
        return self._conn.unreachable_for()

    # ---- in-flight jobs ----

    def _job_started(self, block: bool = True) -> None:
        with self._lock:
            if block and self._max is not None and self._inflight >= self._max \
                    and not self._conn.in_io_thread():
                self._waiting += 1
                try:
                    while self._inflight >= self._max and not self._shutdown:
                        self._room.wait()
                finally:
                    self._waiting -= 1
            self._inflight += 1

    def _job_done(self) -> None:
        with self._lock:
            self._inflight -= 1
            if self._waiting or (self._shutdown and self._inflight == 0):
                self._room.notify_all()

    # ---- submitting ----

    def submit(self, task: Task, /, *args: Any, **options: Any) -> Future:
        """Run ``task(*args)`` in forqd; returns a :class:`forq.Future` at once.

        ``task`` names a task of forqd (see :func:`task_name`); ``args`` are sent as msgpack
        (None, bool, int, float, str, bytes, list/tuple, dict; tuples come back as lists).
        Options, all keyword-only and optional:

        * ``run_timeout`` (seconds): once started, a job that runs longer is killed
          (:class:`forq.JobTimeout`);
        * ``deadline`` (seconds): a job not started this long after forqd received it is
          dropped (:class:`forq.JobTimeout` with ``deadline`` True);
        * ``priority`` 0-9 (default 5): larger runs first;
        * ``retries`` (0-100): run it again if its worker crashes, or if forqd restarts under it
          (give retries only to idempotent tasks);
        * ``store=(dict, key)``: forqd also stores the result under ``key`` in that dict (a
          name or a :class:`forq.Dict`), where it outlives this client;
        * ``max_result`` (bytes), ``max_memory`` (bytes of address space),
          ``max_cpu_seconds``: limits of this job;
        * ``tags`` (a tag or a list of them): with worker nodes, only a forqd or node that has
          every one runs the job (README "More machines", PROTOCOL.md section 14);
        * ``job_id``: the job's id (1-64 of ``A-Z a-z 0-9 . _ : -``); default a unique one;
        * ``kwargs`` (a dict of str keys): keyword arguments for a Python task (forqd's Python
          task runtime, README "Python tasks"): sent after ``args`` as ``{"$kw": kwargs}``,
          PROTOCOL.md section 13. A last positional argument that is itself a dict of the one
          key ``"$kw"`` is protected by an empty ``{"$kw": {}}`` after it.

        Raises TypeError for arguments msgpack cannot carry or an unknown option,
        :class:`forq.Rejected` (``too_large``) for arguments larger than forqd accepts,
        RuntimeError after :meth:`shutdown`. Blocks while ``max_in_flight`` jobs are unfinished.
        """
        conn = self._conn
        if self._shutdown or conn._closing or conn._forked:
            conn.check_usable()
            raise RuntimeError("cannot schedule new futures after shutdown")
        name = task if type(task) is str and task in _valid_names else _checked_name(task)
        if options and "kwargs" in options:
            args = with_kwargs(args, options.pop("kwargs"))
        elif args and type(args[-1]) is dict and len(args[-1]) == 1 and "$kw" in args[-1]:
            args = with_kwargs(args, None)  # a dict that would read as keyword arguments
        payload = packb(args)
        if len(payload) > conn.max_payload:
            conn.check_payload("the args frame", len(payload))
        if options:
            job_id = options.pop("job_id", None)
            opts = job_options(options)
            if job_id is not None and (not isinstance(job_id, str) or not _NAME.match(job_id)):
                raise ValueError("job_id %r must be 1-64 characters of A-Z a-z 0-9 . _ : -"
                                 % (job_id,))
        else:
            job_id, opts = None, None
        jid = job_id or conn.new_job_id()
        fut = Future(self, jid, name)
        if opts:
            header: Any = {"v": 1, "cmd": "submit", "id": jid, "task": name}
            header.update(opts)
            retries = opts.get("retries", 0)
            if retries:
                fut._header, fut._args, fut._retries = header, payload, retries
        else:
            packed_name = _packed_names.get(name) or _pack_name(name)
            header = b"".join((SUBMIT_HEAD, packstr(jid), SUBMIT_TASK, packed_name))
        fut._args_len = len(payload)
        self._job_started()
        fut._counted = True
        try:
            conn.submit(fut, header, payload)
        except BaseException:
            fut._counted = False
            self._job_done()
            raise
        return fut

    def map(self, task: Task, *iterables: Iterable[Any], timeout: Optional[float] = None,
            chunksize: int = 1, buffersize: Optional[int] = None, **options: Any) -> MapIterator:
        """``task(*items)`` for the items of ``iterables`` taken in parallel (as the builtin
        ``map``), results in input order.

        Unlike the standard library, the input is read lazily: at most ``buffersize`` chunk
        jobs of ``chunksize`` items each (default 32 chunks) are in flight or waiting to be
        read, so an endless generator works and memory stays bounded. Items travel
        ``chunksize`` to a job (the protocol's chunk jobs): use hundreds or thousands for tiny
        tasks. ``timeout`` (seconds, from this call) bounds the wait for each result
        (TimeoutError). A failed item raises its :class:`forq.TaskError` (with ``index``) at its
        turn; a chunk that crashed or was cancelled raises its fate at its first item. Job
        ``options`` as for :meth:`submit` (``run_timeout`` applies per chunk). The first chunks
        are submitted before this returns; see :class:`forq.MapIterator`.
        """
        if len(iterables) == 1:
            return self._map(task, iter(iterables[0]), False, timeout, chunksize, buffersize,
                             options, True)
        return self._map(task, zip(*iterables), True, timeout, chunksize, buffersize, options,
                         True)

    def starmap(self, task: Task, iterable: Iterable[Iterable[Any]], *,
                timeout: Optional[float] = None, chunksize: int = 1,
                buffersize: Optional[int] = None, **options: Any) -> MapIterator:
        """As :meth:`map`, each item of ``iterable`` being the arguments of one call
        (``Pool.starmap``): ``starmap("multiply", [(2, 3), (4, 5)])`` gives ``[6, 20]``."""
        return self._map(task, iter(iterable), True, timeout, chunksize, buffersize, options,
                         True)

    def imap_unordered(self, task: Task, iterable: Iterable[Any], *,
                       timeout: Optional[float] = None, chunksize: int = 1,
                       buffersize: Optional[int] = None, **options: Any) -> MapIterator:
        """As :meth:`map` over one iterable, results as soon as their chunk finishes rather
        than in input order (``Pool.imap_unordered``)."""
        return self._map(task, iter(iterable), False, timeout, chunksize, buffersize, options,
                         False)

    def _map(self, task: Task, source: Any, star: bool, timeout: Optional[float],
             chunksize: int, buffersize: Optional[int], options: dict,
             ordered: bool) -> MapIterator:
        self._check_open()
        name = task_name(task)
        if type(chunksize) is not int or not 1 <= chunksize <= 1000000:
            raise ValueError("chunksize must be an integer from 1 to 1000000")
        window = WINDOW_DEF if buffersize is None else buffersize
        if type(window) is not int or window < 1:
            raise ValueError("buffersize must be a positive integer (chunk jobs in flight)")
        if "job_id" in options:
            raise TypeError("a map's chunk jobs get their own ids: job_id is not an option here")
        return MapIterator(self, name, source, star, chunksize, window, job_options(options),
                           ordered, timeout)

    # ---- other jobs: fetch, cancel, status ----

    def fetch(self, job_id: str) -> Future:
        """A future for job ``job_id``, submitted by any client (a detached job, or one whose
        submitter went away): its result if forqd still keeps it, else when it finishes.
        :class:`forq.UnknownJob` if forqd has no such job (never submitted, or forgotten)."""
        self._check_open()
        if not isinstance(job_id, str) or not _NAME.match(job_id):
            raise ValueError("job_id %r must be 1-64 characters of A-Z a-z 0-9 . _ : -"
                             % (job_id,))
        fut = Future(self, job_id, "?")
        self._conn.fetch(fut)
        return fut

    def cancel(self, job_id: str, timeout: Optional[float] = 10.0) -> str:
        """Cancel job ``job_id`` (any client's, rights permitting) and say what that did:
        ``"dequeued"`` (it was queued), ``"killing"`` (it was running: its worker is being
        killed), ``"finished"`` (too late), ``"unknown"`` (no such job)."""
        h, _ = self._conn.call({"v": 1, "cmd": "cancel", "id": job_id}, timeout=timeout,
                               what="cancel of job %s" % job_id)
        return h.get("outcome", "unknown")

    def status(self, job_id: str, timeout: Optional[float] = 10.0) -> dict:
        """What forqd knows of job ``job_id`` now: ``status`` and, when known, ``task``,
        ``attempts``, ``pid``, ``priority`` (see :meth:`forq.Future.status`)."""
        h, _ = self._conn.call({"v": 1, "cmd": "status", "id": job_id}, timeout=timeout,
                               what="status of job %s" % job_id)
        return {k: v for k, v in h.items() if k not in ("v", "cmd", "req")}

    def ping(self, timeout: Optional[float] = 5.0) -> str:
        """Ask forqd whether it is there: its version text (``"forqd 0.1.0"``);
        forq.ConnectionError if it does not answer within ``timeout``."""
        h, _ = self._conn.call({"v": 1, "cmd": "ping"}, timeout=timeout, what="ping")
        return h.get("msg", "forqd")

    def stats(self, timeout: Optional[float] = 10.0) -> dict:
        """forqd's counters and gauges (PROTOCOL.md section 6.4): workers, queued, running,
        ok, error ..., the task names (``tasks``), the dict service."""
        from .connection import unpackb
        _, payload = self._conn.call({"v": 1, "cmd": "stats"}, timeout=timeout, what="stats")
        return unpackb(payload) if payload else {}

    # ---- the end ----

    def _check_open(self) -> None:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        self._conn.check_usable()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more submissions. ``cancel_futures``: cancel every job still pending - queued
        ones and, unlike the standard library, running ones too. ``wait``: return once every
        pending job has finished (and was delivered); else at once, the connection closing by
        itself when they have. Jobs and cancels not yet sent are delivered for up to
        ``linger`` seconds. Safe to call twice."""
        conn = self._conn
        with self._lock:
            first = not self._shutdown
            self._shutdown = True
            self._room.notify_all()
        if cancel_futures:
            maps = set()
            for key, entry in list(conn.pending.items()):
                if isinstance(entry, Future):
                    entry.cancel()
                elif isinstance(entry, _Chunk):
                    maps.add(entry._state)
            for state in maps:
                state.cancel()          # the rest of those maps' chunks, and no more input
        if wait and not conn.in_io_thread():
            with self._lock:
                while self._inflight > 0 and not conn._forked and conn._thread.is_alive():
                    self._room.wait(0.1)
        if first or wait:
            conn.close(wait=wait)

    def __del__(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None and not conn._closing:
            conn.close(wait=False)
