"""defaults.py - the process's default clients: one Executor per forqd endpoint and keys, made
on first use by :func:`forq.fetch` and :class:`forq.Dict` when no executor is given, shut down
at exit. The only global state of the package (a forked child makes its own)."""
from __future__ import annotations

import os
import threading
from typing import Any, Optional

from . import config

_lock = threading.Lock()
_executors: dict = {}
_pid = 0


def default_executor(endpoint: Optional[str] = None, key: Optional[str] = None,
                     server_key: Optional[str] = None) -> Any:
    """The default Executor for this endpoint and keys (resolved as :class:`forq.Executor`
    does, ``$FORQ_ENDPOINT`` and the rest included), made on first use."""
    from .executor import Executor
    global _pid
    ep = config.resolve_endpoint(endpoint)
    ident = (ep, key or os.environ.get("FORQ_KEY"),
             server_key or os.environ.get("FORQ_SERVER_KEY"))
    with _lock:
        if _pid != os.getpid():
            _executors.clear()
            _pid = os.getpid()
        ex = _executors.get(ident)
        if ex is None or ex._shutdown or ex._conn._closing:
            ex = Executor(ep, key=key, server_key=server_key)
            _executors[ident] = ex
        return ex
