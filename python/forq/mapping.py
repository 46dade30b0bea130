"""mapping.py - map, starmap and imap_unordered: items in chunk jobs, input pulled lazily.

A map cuts its input into chunks of ``chunksize`` items; each chunk is one job with ``chunk:
true`` (PROTOCOL.md section 6.1.1) that a worker runs item by item, answering an array of
``[0, value]`` or ``[1, etype, msg]`` entries. At most ``window`` chunk jobs are in flight or
waiting to be read: the input is pulled only as chunks are yielded, so memory stays bounded by
about ``(window + 1) * chunksize`` items however long the input (an endless generator works).

How: the I/O thread puts each chunk that forqd answered on the map's own SimpleQueue; the
consuming thread takes them, decodes them and yields the values, refilling the window before
it yields so that forqd never waits for the consumer. The work of a map is in a generator
primed past its first line, so that dropping or closing the iterator cancels the chunks still
in flight (its ``finally``).
"""
from __future__ import annotations

import array
import itertools
import queue
import sys
import time
from concurrent.futures import CancelledError
from typing import Any, Iterator, Optional

from . import errors
from .connection import packb, unpack_tuples

_CONTAINERS = {tuple, dict}


def _array_head(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 65536:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def _pack_fixed(items: list, typecode: str, code: bytes) -> bytes:
    """``[[x] for x in items]`` as msgpack, every x the same fixed-width encoding (msgpack
    allows an int in a wider form than the shortest): built by slicing, no per-item call."""
    arr = array.array(typecode, items)
    if sys.byteorder == "little":
        arr.byteswap()
    raw = arr.tobytes()
    n, width = len(items), arr.itemsize
    step = width + 2
    out = bytearray(n * step)
    out[0::step] = b"\x91" * n
    out[1::step] = code * n
    for k in range(width):
        out[2 + k::step] = raw[k::width]
    return _array_head(n) + out


def pack_chunk(items: list, star: bool) -> bytes:
    """A chunk job's args frame: each item is the args of one call (``star``), or its one
    argument. Lists of ints or floats - a map over numbers - take a fast path."""
    if star:
        return packb(items)
    kinds = set(map(type, items))
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind is int:
            lo, hi = min(items), max(items)
            if -2**31 <= lo and hi < 2**31 and array.array("i").itemsize == 4:
                return _pack_fixed(items, "i", b"\xd2")
            if -2**63 <= lo and hi < 2**63 and array.array("q").itemsize == 8:
                return _pack_fixed(items, "q", b"\xd3")
        elif kind is float and array.array("d").itemsize == 8:
            return _pack_fixed(items, "d", b"\xcb")
    return packb([(x,) for x in items])


def _lists(v: Any) -> Any:
    """A value unpacked with arrays as tuples, with its arrays as lists (as results are)."""
    t = type(v)
    if t is tuple:
        return [_lists(x) for x in v]
    if t is dict:
        return {k: _lists(x) for k, x in v.items()}
    return v


class _Chunk:
    """One chunk job: its items' first index and count; the I/O thread puts it on ``q``."""
    __slots__ = ("key", "seq", "first", "count", "q", "h", "payload", "exc", "since",
                 "_header", "_args", "_args_len", "_retries", "_refetching", "_state", "_ex")

    def __init__(self, key: str, seq: int, first: int, count: int, q: "queue.SimpleQueue",
                 state: "_MapState") -> None:
        self.key = key
        self.seq = seq
        self.first = first
        self.count = count
        self.q = q
        self.h: Optional[dict] = None
        self.payload: Optional[bytes] = None
        self.exc: Optional[BaseException] = None
        self.since = 0.0
        self._header: dict = {}
        self._args: Optional[bytes] = None
        self._args_len = 0
        self._retries = 0
        self._refetching = False
        self._state = state
        self._ex = state.ex

    def _on_reply(self, h: dict, frames: list) -> None:
        self.h = h
        self.payload = frames[1] if len(frames) > 1 else None
        self._ex._job_done()
        self.q.put(self)

    def _on_lost(self, exc: BaseException) -> None:
        self.exc = exc
        self._ex._job_done()
        self.q.put(self)

    def _on_progress(self, h: dict) -> None:
        pass

    def _abandoned(self) -> bool:
        return self._state.closed


class _MapState:
    """What a map's generator and its cancellation share (never the generator itself)."""

    def __init__(self, ex: Any, task: str, source: Iterator, star: bool, chunksize: int,
                 window: int, options: dict, ordered: bool, timeout: Optional[float]) -> None:
        self.ex = ex
        self.star = star
        self.conn = ex._conn
        self.task = task
        self.source = source
        self.chunksize = chunksize
        self.window = window
        self.options = options
        self.retries = options.get("retries", 0)
        self.ordered = ordered
        self.end = None if timeout is None else time.monotonic() + timeout
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.inflight: dict = {}        # job id -> chunk, submitted and not yet yielded
        self.fed = 0                    # items read from the input
        self.seq = 0                    # chunks submitted
        self.input_done = False
        self.closed = False

    def refill(self) -> None:
        """Submit chunks while the window has room and the input has items."""
        if self.closed:
            raise CancelledError("the map was cancelled (closed, or its executor shut down "
                                 "with cancel_futures)")
        while not self.input_done and len(self.inflight) < self.window:
            self.ex._check_open()
            items = list(itertools.islice(self.source, self.chunksize))
            if not items:
                self.input_done = True
                return
            args = pack_chunk(items, self.star)
            conn = self.conn
            conn.check_payload("the args of a chunk of %d items" % len(items), len(args))
            key = conn.new_job_id()
            ch = _Chunk(key, self.seq, self.fed, len(items), self.q, self)
            header = {"v": 1, "cmd": "submit", "id": key, "task": self.task, "chunk": True}
            if self.options:
                header.update(self.options)
            if self.retries:
                ch._header, ch._args, ch._retries = header, args, self.retries
            ch._args_len = len(args)
            self.ex._job_started(block=False)
            try:
                conn.submit(ch, header, args)
            except BaseException:
                self.ex._job_done()
                raise
            self.inflight[key] = ch
            self.seq += 1
            self.fed += len(items)

    def take(self) -> _Chunk:
        """The next chunk forqd answered, waiting until the map's deadline."""
        if self.end is None:
            ch = self.q.get()
        else:
            try:
                ch = self.q.get(timeout=max(0.0, self.end - time.monotonic()))
            except queue.Empty:
                raise TimeoutError("the map's results are not all done within its timeout") \
                    from None
        if ch is None:          # put there by cancel(): a consumer waiting here must not hang
            raise CancelledError("the map was cancelled (closed, or its executor shut down "
                                 "with cancel_futures)")
        return ch

    def cancel(self) -> None:
        """Cancel every chunk still in flight (queued ones are removed, running ones killed)."""
        self.closed = True
        conn = self.conn
        for key in list(self.inflight):
            if conn.forget(key) is not None:
                self.ex._job_done()
                try:
                    conn.send({"v": 1, "cmd": "cancel", "id": key})
                except Exception:
                    pass
        self.inflight.clear()
        self.q.put(None)


def _decode(ch: _Chunk) -> tuple[list, Optional[BaseException]]:
    """A chunk's values, and the exception to raise after them (None: all ok)."""
    if ch.exc is not None:
        return [], ch.exc
    h = ch.h or {}
    if h.get("cmd") == "error":
        return [], errors.reply_exception(h, "chunk job %s" % ch.key)
    status = h.get("status")
    if status != "ok":
        exc = errors.job_exception(h, ch.key)
        return [], exc if exc is not None else CancelledError(
            "chunk job %s (items %d-%d) was cancelled: %s"
            % (ch.key, ch.first, ch.first + ch.count - 1, h.get("msg") or ""))
    try:
        # arrays as tuples: a third of the unpacking time of lists for a chunk of small
        # results; values that hold arrays are turned back into lists below
        entries = unpack_tuples(ch.payload or b"")
    except Exception:
        entries = None
    if type(entries) is not tuple or len(entries) != ch.count:
        return [], errors.ProtocolError(
            "bad_message", "chunk job %s answered a malformed chunk result" % ch.key,
            job_id=ch.key, header=h)
    try:
        values = [v for s, v in entries]        # every call returned: (0, value) each
    except (ValueError, TypeError):
        values = None
    if values is not None:
        if _CONTAINERS.intersection(map(type, values)):
            values = [_lists(v) for v in values]
        return values, None
    entries = [list(e) if type(e) is tuple else e for e in entries]
    values = []
    for i, e in enumerate(entries):
        if type(e) is list and len(e) == 2 and e[0] == 0:
            values.append(_lists(e[1]))
        elif type(e) is list and len(e) == 3 and e[0] == 1:
            return values, errors.TaskError(str(e[1]), str(e[2]), index=ch.first + i,
                                            attempts=h.get("attempts", 0), job_id=ch.key,
                                            header=h)
        else:
            return values, errors.ProtocolError(
                "bad_message", "chunk job %s answered a malformed entry for item %d"
                % (ch.key, ch.first + i), job_id=ch.key, header=h)
    return values, None


def _generate(st: _MapState) -> Iterator[list]:
    """The map's values, a chunk's list at a time (itertools.chain walks each list at C
    speed); a failure is raised after the values before it."""
    try:
        yield []        # primed: from here on, closing or dropping the iterator runs `finally`
        st.refill()
        if st.ordered:
            done: dict = {}
            head = 0
            while head < st.seq:
                while head not in done:
                    ch = st.take()
                    done[ch.seq] = ch
                ch = done.pop(head)
                del st.inflight[ch.key]
                head += 1
                st.refill()
                values, exc = _decode(ch)
                yield values
                if exc is not None:
                    raise exc
        else:
            while st.inflight:
                ch = st.take()
                del st.inflight[ch.key]
                st.refill()
                values, exc = _decode(ch)
                yield values
                if exc is not None:
                    raise exc
    finally:
        st.cancel()


class MapIterator:
    """The results of a map, in input order (``imap_unordered``: as chunks finish).

    Iterate it (``for x in it``, ``list(it)``, ``sum(it)``); ``next(it)`` raises the item's
    failure at its turn (:class:`forq.TaskError` with ``index``, or its chunk's fate),
    ``TimeoutError`` when the map's ``timeout`` (counted from the call to ``map``) passes, and
    StopIteration at the end. :meth:`close` (or dropping the iterator, or leaving a ``with``
    block) cancels the chunks still in flight.
    """

    def __init__(self, ex: Any, task: str, source: Iterator, star: bool, chunksize: int,
                 window: int, options: dict, ordered: bool, timeout: Optional[float]) -> None:
        self._state = _MapState(ex, task, source, star, chunksize, window, options, ordered,
                                timeout)
        self._gen = _generate(self._state)
        next(self._gen)
        self._state.refill()       # the first window goes now, before the first next()
        self._values = itertools.chain.from_iterable(self._gen)

    def __iter__(self) -> Iterator[Any]:
        return self._values

    def __next__(self) -> Any:
        return next(self._values)

    def close(self) -> None:
        """Stop the map: cancel its chunks in flight; no more input is read."""
        self._gen.close()

    def __enter__(self) -> "MapIterator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def submitted(self) -> int:
        """Items read from the input and sent so far."""
        return self._state.fed
