"""Python functions as forq tasks: the ``@forq.task`` decorator and the registry it fills.

A module that forqd imports (``forqd --python-import MODULE``, or ``python-import = MODULE`` in
forqd.conf) declares its tasks with the decorator::

    # primes.py
    import forq

    @forq.task
    def is_prime(n: int) -> bool:
        ...

    @forq.task(name="primes.count")
    def count_primes(numbers: list) -> int:
        ...

forqd serves exactly the functions so declared (and those its configuration names as
``python-task = MODULE:FUNCTION``): a client names a task, never code, and nothing else in the
module can be reached from a task name.

The decorator returns the function unchanged, so the module works as before outside forqd,
and marks it with the task's name (``function.__forq_task__``): a client may pass the function
itself wherever it takes a task name (``executor.map(primes.is_prime, range(100))``), which
sends the name.

The name defaults to ``module.function`` (``primes.is_prime``), where a module run as a script
(``python3 primes.py``, whose ``__name__`` is ``"__main__"``) counts under the name forqd
imports it by (``primes``), so that the client side and forqd agree. Names are 1 to 64
characters of ``A-Z a-z 0-9 . _ : -``.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any, Callable, Dict, Optional, TypeVar, Union, overload

__all__ = ["task", "task_name", "declared"]

F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
_registry: Dict[str, Callable[..., Any]] = {}
_lock = threading.Lock()


def _module_name(fn: Callable[..., Any]) -> str:
    """The module a function is declared in, as forqd would import it."""
    mod = getattr(fn, "__module__", None) or ""
    if mod == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:  # python3 -m pkg.mod
            return spec.name
        path = getattr(main, "__file__", None)
        if path:  # python3 mod.py
            return os.path.splitext(os.path.basename(path))[0]
    return mod


def _default_name(fn: Callable[..., Any]) -> str:
    qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not qual:
        raise TypeError("forq.task: %r has no name; pass name=" % (fn,))
    mod = _module_name(fn)
    return "%s.%s" % (mod, qual) if mod else qual


def _register(fn: F, name: Optional[str]) -> F:
    if not callable(fn):
        raise TypeError("forq.task decorates a function, not %s" % type(fn).__name__)
    if name is None:
        name = _default_name(fn)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            "forq.task: the task name %r is not 1-64 characters of A-Z a-z 0-9 . _ : - "
            "(a nested function has no such name: pass name=)" % (name,))
    with _lock:
        other = _registry.get(name)
        if other is not None and other is not fn:
            raise ValueError("forq.task: the task %r is already declared, by %s.%s"
                             % (name, getattr(other, "__module__", "?"),
                                getattr(other, "__qualname__", "?")))
        _registry[name] = fn
    try:
        fn.__forq_task__ = name  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass  # a builtin or a slotted callable: it is registered all the same
    return fn


@overload
def task(fn: F) -> F: ...


@overload
def task(*, name: Optional[str] = None) -> Callable[[F], F]: ...


def task(fn: Optional[F] = None, *, name: Optional[str] = None) -> Union[F, Callable[[F], F]]:
    """Declare ``fn`` a forq task (``@forq.task`` or ``@forq.task(name="...")``).

    Returns the function unchanged, marked with ``__forq_task__`` (the task's name).
    Raises ValueError for a name outside the alphabet above, or one already declared for
    another function; TypeError for what is not callable."""
    if fn is None:
        return lambda f: _register(f, name)
    return _register(fn, name)


def task_name(obj: Union[str, Callable[..., Any]]) -> str:
    """The task name to send for ``obj``: a str as it is, a decorated function's name.

    Raises TypeError for a function that was not declared with ``@forq.task`` (forqd serves
    only declared functions)."""
    if isinstance(obj, str):
        return obj
    name = getattr(obj, "__forq_task__", None)
    if isinstance(name, str):
        return name
    raise TypeError("%r is not a forq task: declare it with @forq.task in a module that forqd "
                    "imports, or pass the task's name" % (obj,))


def declared() -> Dict[str, Callable[..., Any]]:
    """{name: function} of every task declared so far in this process (a copy)."""
    with _lock:
        return dict(_registry)
