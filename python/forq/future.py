"""future.py - forq.Future: a concurrent.futures.Future for a job that runs in forqd.

It is a real :class:`concurrent.futures.Future` (a subclass), so ``concurrent.futures.wait()``,
``as_completed()`` and ``asyncio.wrap_future()`` take it unchanged. The connection's I/O thread
resolves it with forqd's ``result``; what a job's own failure becomes is errors.job_exception.
The resolution takes the future's condition, checks that it is still pending and changes its
state under it, so a result and a concurrent ``cancel()`` never both win.
"""
from __future__ import annotations

import concurrent.futures
import logging
from concurrent.futures._base import (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED,
                                      TimeoutError as _FuturesTimeout)
from typing import Any, Callable, NamedTuple, Optional

from . import errors
from .connection import unpackb

LOGGER = logging.getLogger("forq")

_DONE = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)


class Progress(NamedTuple):
    """A task's progress report: ``done`` of ``total`` units (``total`` 0: unknown) and its
    ``message`` (``""`` when the task gave none)."""
    done: int
    total: int
    message: str


class Future(concurrent.futures.Future):
    """The future of one forq job: what :meth:`forq.Executor.submit` returns.

    Everything a :class:`concurrent.futures.Future` does, with these differences:

    * :meth:`cancel` also cancels a **running** job: forqd kills its worker (a fresh one takes
      its place) and the call returns True. The standard library's ``cancel()`` returns False
      once the call runs. A job not yet started is simply removed from forqd's queue. The future
      is cancelled at once (``result()`` raises ``concurrent.futures.CancelledError``); if the
      job happened to finish meanwhile, its result is dropped.
    * :meth:`running` is always False: forqd does not tell a client when a job starts (ask with
      :meth:`status`).
    * A job's failure is the future's exception, by kind: :class:`forq.TaskError`,
      :class:`forq.JobTimeout`, :class:`forq.WorkerCrashed`, :class:`forq.Rejected`,
      :class:`forq.Forbidden`, :class:`forq.Lost`. A job cancelled by someone else (another
      client, forqd's shutdown) ends cancelled, as if :meth:`cancel` had been called.
    * ``result(timeout)`` raises ``concurrent.futures.TimeoutError`` (the builtin TimeoutError)
      when the job is not done in time, as the standard library does; the job goes on. When
      forqd is unreachable, the error's message says so.
    * Callbacks (:meth:`add_done_callback`, :meth:`add_progress_callback`) run **in the
      executor's I/O thread** when forqd's answer arrives (or in the thread that calls
      ``cancel()``; or at once, in the calling thread, if the future is already done). Each
      done callback runs exactly once. Keep callbacks short: they hold up every other answer.
      A callback may submit jobs, but must not wait for one (``result()`` of a pending forq
      future inside a callback raises RuntimeError rather than block the thread that would
      deliver the answer).

    Attributes: ``job_id`` (forqd's id of the job; give it to :func:`forq.fetch` elsewhere),
    ``task`` (its task name), and once done ``attempts`` (times it was started), ``pid`` (the
    worker's process id), ``run_us`` (how long the task ran, in microseconds) and ``header``
    (forqd's ``result`` header as a dict: e.g. ``header.get("code") == "store_failed"`` when the
    result could not be stored under its dict key).
    """

    # defaults, set on the instance only when they change (a future is made per job: every
    # attribute set in __init__ costs every submit)
    attempts = 0
    pid: Optional[int] = None
    run_us: Optional[int] = None
    header: Optional[dict] = None
    _progress: Optional[Progress] = None
    _progress_cbs: tuple = ()
    _counted = False                # counts in the executor's in-flight jobs
    # what it takes to submit the job again after forqd restarted (connection._job_unknown)
    _header: dict = {}
    _args: Optional[bytes] = None
    _args_len = 0
    _retries = 0
    _refetching = False
    since = 0.0

    def __init__(self, executor: Any, job_id: str, task: str) -> None:
        super().__init__()
        self.job_id = self.key = job_id
        self.task = task
        self._executor = executor

    def __repr__(self) -> str:
        return "<forq.Future %s %s at %#x state=%s>" % (self.job_id, self.task, id(self),
                                                         self._state.lower())

    # ---- the I/O thread resolves ----

    def _on_reply(self, h: dict, frames: list) -> None:
        self.header = h
        get = h.get
        self.attempts = get("attempts", 0)
        self.pid = get("pid")
        self.run_us = get("run_us")
        status = get("status")
        if status == "ok":
            try:
                value = unpackb(frames[1])
            except Exception as e:
                self._finish(exception=errors.ProtocolError(
                    "bad_message", "forqd sent job %s a result that is not one msgpack value "
                    "(%s)" % (self.job_id, e), job_id=self.job_id, header=h))
                return
            self._finish(result=value)
        elif get("cmd") == "error":
            self._finish(exception=errors.reply_exception(h, "job %s" % self.job_id))
        elif status == "cancelled":
            self._finish_cancelled()
        else:
            self._finish(exception=errors.job_exception(h, self.job_id))

    def _on_lost(self, exc: BaseException) -> None:
        self._finish(exception=exc)

    def _on_progress(self, h: dict) -> None:
        p = Progress(h.get("done", 0), h.get("total", 0), h.get("msg") or "")
        self._progress = p
        for fn in self._progress_cbs:
            try:
                fn(self, p)
            except Exception:
                LOGGER.exception("exception calling progress callback for %r", self)

    def _finish(self, result: Any = None, exception: Optional[BaseException] = None) -> bool:
        """Resolve (once): False if the future was already done (cancelled meanwhile)."""
        cond = self._condition
        with cond:
            if self._state in _DONE:
                return False
            if exception is None:
                self._result = result
                for waiter in self._waiters:
                    waiter.add_result(self)
            else:
                self._exception = exception
                for waiter in self._waiters:
                    waiter.add_exception(self)
            self._state = FINISHED
            if cond._waiters:       # threading.Condition's own list: skip the call when empty
                cond.notify_all()
        if self._done_callbacks:
            self._invoke_callbacks()
        self._release()
        return True

    def _finish_cancelled(self) -> bool:
        with self._condition:
            if self._state in _DONE:
                return False
            # straight to "notified": there is no executor thread to do the second step
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()
        self._release()
        return True

    def _release(self) -> None:
        if self._progress_cbs:
            self._progress_cbs = ()
        if self._counted:
            self._counted = False
            self._executor._job_done()

    # ---- the caller's side ----

    def cancel(self) -> bool:
        """Cancel the job, queued or running; True unless the future is already done (see the
        class docstring for how this differs from the standard library)."""
        if not self._finish_cancelled():
            return self._state != FINISHED
        conn = self._executor._conn
        conn.forget(self.job_id)
        conn.send({"v": 1, "cmd": "cancel", "id": self.job_id})
        return True

    def _abandoned(self) -> bool:
        """Done already: nothing must be submitted again for it (connection._job_unknown)."""
        return self._state in _DONE

    def running(self) -> bool:
        """Always False: forqd does not report a job's start to its client (see :meth:`status`)."""
        return False

    def result(self, timeout: Optional[float] = None) -> Any:
        """The job's result, waiting up to ``timeout`` seconds (None: until it is done).

        Raises the job's failure (:class:`forq.TaskError` ...), ``CancelledError`` if it was
        cancelled, ``concurrent.futures.TimeoutError`` if it is not done in time."""
        if self._state not in _DONE:
            self._executor._conn.check_may_wait("Future.result()")
        try:
            return super().result(timeout)
        except _FuturesTimeout:
            raise _FuturesTimeout(self._why_not_done(timeout)) from None

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The job's failure (None if it succeeded), waiting as :meth:`result` does."""
        if self._state not in _DONE:
            self._executor._conn.check_may_wait("Future.exception()")
        try:
            return super().exception(timeout)
        except _FuturesTimeout:
            raise _FuturesTimeout(self._why_not_done(timeout)) from None

    def _why_not_done(self, timeout: Optional[float]) -> str:
        conn = self._executor._conn
        text = "job %s (%s) is not done after %g s" % (self.job_id, self.task, timeout or 0)
        if not conn.up:
            text += "; " + conn.why_silent(conn.unreachable_for())
        return text

    @property
    def progress(self) -> Optional[Progress]:
        """The task's latest progress report (:class:`Progress`), or None if it sent none.
        Reports are best effort: the first and the last of a job arrive, some in between."""
        return self._progress

    def add_progress_callback(self, fn: Callable[["Future", Progress], Any]) -> None:
        """Call ``fn(future, progress)`` for each progress report that arrives from now on, in
        the executor's I/O thread (never after the future is done)."""
        if not self.done():
            self._progress_cbs = self._progress_cbs + (fn,)

    def status(self, timeout: Optional[float] = 10.0) -> dict:
        """Ask forqd about the job now: a dict with ``status`` (``"queued"``, ``"running"``, a
        final state or ``"unknown"``) and, as forqd knows them, ``task``, ``attempts``, ``pid``
        (while running), ``priority`` (while queued)."""
        return self._executor.status(self.job_id, timeout=timeout)

    def __await__(self):  # type: ignore[no-untyped-def]
        """``await future`` in a coroutine (the same as ``await asyncio.wrap_future(future)``)."""
        import asyncio
        return asyncio.wrap_future(self).__await__()
