"""errors.py - the exceptions a forq user catches, and how a reply from forqd becomes one.

Every exception forq raises for something forqd or a job did is a :class:`forq.Error`; each kind
of failure has its own class, so that a caller catches what it can handle::

    try:
        value = future.result(timeout=5)
    except concurrent.futures.TimeoutError:   # not done in 5 s: the job goes on
        ...
    except forq.TaskError as e:               # the task raised: e.etype, e.message
        ...
    except forq.WorkerCrashed as e:           # its worker died: e.signal or e.exit_code
        ...

A job's own failure (its task raised, it crashed, ran too long, was refused) is the future's
exception; a failure to reach forqd is :class:`forq.ConnectionError`. Cancelled futures raise
the standard :class:`concurrent.futures.CancelledError`, as the standard library's do.
"""
from __future__ import annotations

import builtins
from typing import Any, Mapping, Optional

__all__ = [
    "Error", "TaskError", "JobTimeout", "WorkerCrashed", "Rejected", "Forbidden", "Lost",
    "UnknownJob", "ConnectionError", "ProtocolError", "Conflict", "DictFull", "StaleToken",
]


class Error(Exception):
    """The base of every forq exception.

    ``job_id`` names the job the error is about (``None`` for errors that are not a job's);
    ``header`` is forqd's reply as it came (a dict of its header fields), or ``None`` when the
    error was decided here, in the client.
    """

    def __init__(self, message: str, *, job_id: Optional[str] = None,
                 header: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.job_id = job_id
        self.header = dict(header) if header is not None else None


class TaskError(Error):
    """The task raised an error: the job ran and failed.

    ``etype`` is the remote error type (``"ValueError"``, ``"TypeError"``, a plugin's own, or
    forqd's ``"ResultTooLarge"`` ...), ``message`` its text, ``traceback`` the remote traceback
    text when the task gave one (else ``None``), ``attempts`` the times the job was started.
    ``str(e)`` reads ``"ValueError: ..."``. For an item of a map, ``index`` is its position in
    the input (else ``None``).
    """

    def __init__(self, etype: str, message: str, *, traceback: Optional[str] = None,
                 attempts: int = 0, index: Optional[int] = None, job_id: Optional[str] = None,
                 header: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message, job_id=job_id, header=header)
        self.etype = etype
        self.traceback = traceback
        self.attempts = attempts
        self.index = index

    def __str__(self) -> str:
        text = "%s: %s" % (self.etype, self.message)
        if self.traceback:
            text += "\n" + self.traceback
        return text


class JobTimeout(Error):
    """The job ran longer than its ``run_timeout`` (its worker was killed), or waited in the
    queue past its ``deadline`` (``deadline`` is then True: it never started).

    Not a :class:`TimeoutError`: ``future.result(timeout)`` running out of patience raises the
    standard ``concurrent.futures.TimeoutError`` and the job goes on; this one means the job is
    over.
    """

    def __init__(self, message: str, *, deadline: bool = False, attempts: int = 0,
                 job_id: Optional[str] = None,
                 header: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message, job_id=job_id, header=header)
        self.deadline = deadline
        self.attempts = attempts


class WorkerCrashed(Error):
    """The job's worker process died while it ran the job (after any ``retries``).

    ``signal`` is the signal that killed it (e.g. 11, SIGSEGV) or ``None``; ``exit_code`` its exit
    status when it exited, else ``None``; ``attempts`` the times the job was started. Only this
    job failed: forqd replaced the worker, and every other job goes on.
    """

    def __init__(self, message: str, *, signal: Optional[int] = None,
                 exit_code: Optional[int] = None, attempts: int = 0,
                 job_id: Optional[str] = None,
                 header: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message, job_id=job_id, header=header)
        self.signal = signal
        self.exit_code = exit_code
        self.attempts = attempts


class Rejected(Error):
    """forqd refused the job (or a request) without running it.

    ``code`` is the machine-readable reason (PROTOCOL.md section 9): ``"unknown_task"``,
    ``"queue_full"``, ``"client_queue_full"``, ``"too_large"``, ``"shutting_down"``,
    ``"task_disabled"``, ``"bad_args"``, ``"bad_store"``, ``"duplicate_id"`` ...; ``message``
    says what to do.
    """

    def __init__(self, code: str, message: str, *, job_id: Optional[str] = None,
                 header: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message, job_id=job_id, header=header)
        self.code = code

    def __str__(self) -> str:
        return "%s: %s" % (self.code, self.message)


class Forbidden(Rejected):
    """forqd's clients file does not give this client's key the right (a task, a dict, another
    client's job); the message names the missing right. Ask forqd's operator."""


class Lost(Error):
    """The job's outcome cannot be known: forqd restarted and lost it (and it allowed no more
    ``retries``), forqd stayed unreachable for ``lost_after`` seconds, or the executor was shut
    down before the result came. The job may or may not have run."""


class UnknownJob(Lost):
    """forqd has no job with this id: never submitted, or finished longer ago than forqd keeps
    results (its ``--retain`` limits). Raised by futures from :func:`forq.fetch`."""


class ConnectionError(Error, builtins.ConnectionError):
    """forqd cannot be reached, refused the connection (CURVE keys), or the peer at the endpoint
    is not forqd. The message says which and what to check (the endpoint, ``$FORQ_ENDPOINT``,
    the keys)."""


class ProtocolError(Error):
    """forqd could not act on a message this client sent (an ``error`` reply, PROTOCOL.md
    section 6.7), or sent one this client cannot read. ``code`` is forqd's code. A bug of forq's,
    or a forqd of another version: please report it."""

    def __init__(self, code: str, message: str, *, job_id: Optional[str] = None,
                 header: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message, job_id=job_id, header=header)
        self.code = code

    def __str__(self) -> str:
        return "%s: %s" % (self.code, self.message)


class Conflict(Error):
    """:meth:`forq.Dict.cas`: the key's version was not the one given, so nothing was stored.
    ``version`` is its version now (0: the key does not exist), ``found`` whether it exists."""

    def __init__(self, message: str, *, version: int, found: bool,
                 header: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message, header=header)
        self.version = version
        self.found = found


class DictFull(Error):
    """The dict service is at its limits (forqd's ``--dict-max-keys`` or ``--dict-max-bytes``):
    nothing was changed, and nothing is ever evicted. Delete keys, or ask the operator."""


class StaleToken(Error):
    """A lock's grant has ended (its lease ran out, or it was released): a change fenced with
    its token was refused and nothing changed, or its release or renew found it no longer
    holding the lock. Another holder may have had the lock meanwhile: read again under a new
    grant. ``lock`` names the lock, ``token`` the grant's token."""

    def __init__(self, message: str, *, lock: Optional[str] = None, token: Optional[int] = None,
                 header: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message, header=header)
        self.lock = lock
        self.token = token


def job_exception(h: Mapping[str, Any], job_id: str) -> Optional[BaseException]:
    """The exception for a job's ``result`` header whose status is not ``ok``; ``None`` for
    ``cancelled`` (the future becomes cancelled instead)."""
    status = h.get("status")
    msg = h.get("msg") or ""
    attempts = h.get("attempts", 0)
    if status == "error":
        return TaskError(h.get("etype") or "TaskError", msg, traceback=h.get("traceback"),
                         attempts=attempts, job_id=job_id, header=h)
    if status == "timeout":
        return JobTimeout(msg or "the job ran past its timeout", job_id=job_id, header=h,
                          deadline=h.get("code") == "deadline", attempts=attempts)
    if status == "crashed":
        return WorkerCrashed(msg or "the job's worker died", signal=h.get("signal"),
                             exit_code=h.get("exit") if "exit" in h else None,
                             attempts=attempts, job_id=job_id, header=h)
    if status == "rejected":
        code = h.get("code") or "rejected"
        cls = Forbidden if code == "forbidden" else Rejected
        return cls(code, msg or "forqd refused the job", job_id=job_id, header=h)
    if status == "cancelled":
        return None
    if status == "unknown":
        return UnknownJob(msg or "forqd has no such job (never submitted, or forgotten)",
                          job_id=job_id, header=h)
    if status == "lost":
        return Lost(msg or "the job's outcome is unknown", job_id=job_id, header=h)
    return ProtocolError("bad_status", "forqd answered job %s with status %r, which this client "
                         "does not know; is forqd of another version?" % (job_id, status),
                         job_id=job_id, header=h)


def reply_exception(h: Mapping[str, Any], what: str) -> Error:
    """The exception for an ``error`` reply to a request (``what`` names the request)."""
    code = h.get("code") or "error"
    msg = "%s: %s" % (what, h.get("msg") or code)
    if code == "forbidden":
        return Forbidden(code, msg, header=h)
    if code == "dict_full":
        return DictFull(msg, header=h)
    if code == "stale_token":
        return StaleToken(msg, header=h)
    if code in ("too_large", "too_many_waiters", "too_many_watchers", "disk_full",
                "disk_error", "duplicate_id"):
        return Rejected(code, msg, header=h)
    return ProtocolError(code, msg, header=h)
