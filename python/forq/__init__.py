"""forq for Python: a :class:`concurrent.futures.Executor` and a ``Manager().dict()`` whose
pool and state live in forqd, on this machine or another.

Moving a ProcessPoolExecutor program to forq is a one-line change::

    import forq

    with forq.Executor() as ex:         # was: concurrent.futures.ProcessPoolExecutor()
        futures = [ex.submit("count_primes", lo, lo + 100000) for lo in range(0, 300000, 100000)]
        print(sum(f.result() for f in futures))                    # 25997
        print(list(ex.map("is_prime", [10_000_019, 10_000_081])))  # [True, False]

What it can do that the standard library cannot: cancel a *running* job
(:meth:`Future.cancel`), survive a crashed worker (only that job fails:
:class:`WorkerCrashed`), bound a job's run time (``run_timeout=``), stream a huge ``map`` in
bounded memory, follow a job's progress, pick up a job submitted elsewhere (:func:`fetch`), and
share an atomic dict across processes and machines (:class:`Dict`).

* :class:`Executor` - ``submit``, ``map``, ``starmap``, ``imap_unordered``, ``shutdown``,
  ``fetch``, ``cancel``, ``status``, ``ping``, ``stats``; a context manager.
* :class:`Future` - a ``concurrent.futures.Future`` (``wait()``, ``as_completed()`` and
  ``asyncio.wrap_future()`` work unchanged), with ``progress`` and ``job_id``.
* :class:`Dict` - a ``MutableMapping`` in forqd, with ``incr``, ``cas``, ``wait``.
* :class:`Queue`, :class:`Lock`, :class:`Semaphore`, :class:`Event`, :class:`Value` - the rest
  of ``multiprocessing``'s shared types, in forqd: locks with leases and fencing tokens
  (:func:`fenced` fences a Dict's changes with one).
* Exceptions: :class:`Error` and its kinds (:mod:`forq.errors`).
* Server side: :func:`task`, the decorator that makes a function a forqd task (Python tasks,
  README), and :mod:`forq.worker`, what a running task may call (progress, its dict).

The endpoint and CURVE keys are resolved as the ``forq`` command does: ``$FORQ_ENDPOINT``,
``$FORQ_KEY``, ``$FORQ_SERVER_KEY``. The tasks are forqd's: its built-in ones (echo, sleep,
is_prime, count_primes, sum_squares, sha256, exec) and its plugins'. The wire protocol is
PROTOCOL.md (installed in share/doc/forq/).
"""
from __future__ import annotations

from typing import Optional

from .config import default_endpoint, resolve_endpoint, write_keyfile
from .defaults import default_executor
from .dicts import Dict, Versioned
from .errors import (Conflict, ConnectionError, DictFull, Error, Forbidden, JobTimeout, Lost,
                     ProtocolError, Rejected, StaleToken, TaskError, UnknownJob, WorkerCrashed)
from .executor import Executor, task_name
from .future import Future, Progress
from .locks import Fenced, Lock, Semaphore, Value, fenced
from .mapping import MapIterator
from .shared import Event, Queue
from . import worker
from .tasks import task

__version__ = "0.1.0"

__all__ = [
    "task", "worker", "Executor", "Future", "Progress", "MapIterator", "Dict", "Versioned", "fetch",
    "Queue", "Lock", "Semaphore", "Event", "Value", "Fenced", "fenced",
    "default_executor", "default_endpoint", "resolve_endpoint", "task_name", "write_keyfile",
    "Error", "TaskError", "JobTimeout", "WorkerCrashed", "Rejected", "Forbidden", "Lost",
    "UnknownJob", "ConnectionError", "ProtocolError", "Conflict", "DictFull", "StaleToken",
]


def fetch(job_id: str, endpoint: Optional[str] = None, *, executor: Optional[Executor] = None,
          key: Optional[str] = None, server_key: Optional[str] = None) -> Future:
    """A :class:`Future` for job ``job_id``, submitted by any client (a detached job: e.g.
    ``forq submit --no-wait``, or a program that submitted and exited). Through ``executor``,
    else this process's default connection to ``endpoint`` (resolved as :class:`Executor`
    does). Its result is forqd's: at once if forqd still keeps it, else when the job finishes;
    :class:`UnknownJob` if forqd has no such job."""
    if executor is None:
        executor = default_executor(endpoint, key, server_key)
    return executor.fetch(job_id)
