"""The exceptions of the conq package and the wire form of a task's error.

``error_payload(exc)`` is what a worker sends back for an exception raised
by a task (docs/protocol.md, "Error payload"): the type name, the message,
the traceback and, for ``Retry`` / ``SkipRetry`` / binding errors, the
queue's retry hints.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional, Union

__all__ = [
    "ConqError",
    "TaskError",
    "Cancelled",
    "ProtocolError",
    "Retry",
    "SkipRetry",
    "BindError",
    "TaskNotFound",
    "TaskFailed",
    "WorkerCrashed",
    "TaskCancelled",
    "error_payload",
]

Seconds = Union[int, float, datetime.timedelta]


class ConqError(Exception):
    """Base class of the errors the conq client raises itself."""


class TaskError(Exception):
    """Raise in a task to report an error with a chosen type name."""

    def __init__(self, type: str, message: str, traceback: Optional[str] = None) -> None:  # noqa: A002 - mirrors the wire field
        super().__init__(message)
        self.type = type
        self.message = message
        self.traceback = traceback


class Cancelled(BaseException):
    """Raised inside a task the pool cancelled. A BaseException, so that
    ``except Exception`` in task code does not swallow it."""


class ProtocolError(Exception):
    """The pool sent something this SDK does not understand."""


def _seconds(v: Optional[Seconds], what: str) -> Optional[float]:
    if v is None:
        return None
    if isinstance(v, datetime.timedelta):
        v = v.total_seconds()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError("%s must be seconds or a timedelta, not %r" % (what, v))
    if v < 0:
        raise ValueError("%s must not be negative, got %r" % (what, v))
    return float(v)


class Retry(Exception):
    """Raise in a task to fail this attempt and have the queue retry it no
    sooner than ``after`` (seconds or a timedelta; None: the queue's
    backoff). The task's retry budget still applies."""

    def __init__(self, message: str = "retry requested", after: Optional[Seconds] = None) -> None:
        super().__init__(message)
        self.message = message
        self.after = _seconds(after, "Retry(after=)")


class SkipRetry(Exception):
    """Raise in a task to fail it for good: no retry, the task goes dead."""

    def __init__(self, message: str = "gave up") -> None:
        super().__init__(message)
        self.message = message


class BindError(TypeError):
    """The payload does not bind to the task's signature (wrong arguments,
    not JSON for a JSON task). Reported as a ``TypeError`` that is never
    retried: the same payload cannot bind next time either."""


class TaskNotFound(LookupError):
    """A worker cannot run a task name it was sent: an import path
    (``py:<module>:<name>``) that does not resolve, or that the worker
    does not serve. Never retried: the same worker cannot run it next time
    either."""


class TaskFailed(ConqError):
    """The task failed for good (every attempt failed, it gave up, or it was
    cancelled). ``type``, ``message`` and ``traceback`` describe the remote
    exception of the last attempt (``type`` is e.g. ``"ValueError"``, or
    ``"worker_crashed"`` when the worker process died); ``errors`` is the
    task's whole error history, oldest first."""

    def __init__(self, task_id: str, kind: Optional[str], queue: Optional[str], attempts: int,
                 errors: Optional[List[Dict[str, Any]]], state: str = "dead") -> None:
        self.task_id = task_id
        self.kind = kind
        self.queue = queue
        self.attempts = attempts
        self.state = state
        self.errors = list(errors or [])
        self.last_error: Dict[str, Any] = self.errors[-1] if self.errors else {}
        self.type, self.message = _split_message(self.last_error)
        self.traceback: Optional[str] = self.last_error.get("stack")
        super().__init__("task %s (kind %r) failed after %d attempt(s): %s: %s"
                         % (task_id, kind, attempts, self.type, self.message))

    def __reduce__(self):  # picklable, like any exception a future may hold
        return (type(self), (self.task_id, self.kind, self.queue, self.attempts, self.errors, self.state))


class WorkerCrashed(TaskFailed):
    """The worker process running the task died (killed, ``os._exit``,
    segfault) on the task's last attempt. Only the futures of the tasks it
    was running fail; the executor keeps working."""


class TaskCancelled(TaskFailed):
    """The task was cancelled before it completed."""


def _split_message(err: Dict[str, Any]):
    """The remote exception's type and message from an attempt error: the
    worker records "Type: message" with kind "error" (or the type itself
    as kind for errors that skip retries)."""
    kind = err.get("kind") or "error"
    msg = err.get("message") or ""
    if kind in ("worker_crashed", "timeout", "cancelled", "unknown_kind", "lost", "expired"):
        return kind, msg
    head, sep, rest = msg.partition(": ")
    if sep and head and " " not in head and len(head) < 200:
        return head, rest
    return (kind if kind != "error" else "Error"), msg


def error_payload(exc: BaseException) -> Dict[str, Any]:
    """The wire error object for an exception raised by a task: ``type``,
    ``message``, ``traceback`` and, when the exception asks for it,
    ``retry_after`` (seconds) and ``skip_retry``."""
    import traceback as _traceback  # here, not at import: 1.6 MiB a worker interpreter needs only on failure

    tb = "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, TaskError):
        body: Dict[str, Any] = {"type": exc.type, "message": exc.message, "traceback": exc.traceback or tb}
    elif isinstance(exc, BindError):
        body = {"type": "TypeError", "message": str(exc), "traceback": tb, "skip_retry": True}
    elif isinstance(exc, TaskNotFound):
        body = {"type": "TaskNotFound", "message": str(exc), "skip_retry": True}
    elif isinstance(exc, SkipRetry):
        body = {"type": "SkipRetry", "message": exc.message, "traceback": tb, "skip_retry": True}
    elif isinstance(exc, Retry):
        body = {"type": "Retry", "message": exc.message, "traceback": tb}
        if exc.after is not None and exc.after > 0:
            body["retry_after"] = exc.after
    else:
        body = {"type": type(exc).__name__, "message": str(exc), "traceback": tb}
    if not body.get("traceback"):
        body.pop("traceback", None)
    return body
