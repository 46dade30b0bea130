"""forq: a network task queue. (This is the server side's minimal package: the task
decorator and the in-task API; the client package - Executor, Future, Dict - joins it.)"""

from . import worker
from .tasks import task

__all__ = ["task", "worker"]
