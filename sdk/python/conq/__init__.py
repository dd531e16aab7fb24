"""conq for Python: write tasks as plain functions, run them anywhere.

Step 1, a tasks module::

    import conq

    @conq.task
    def add(a, b):
        return a + b

    if __name__ == "__main__":
        conq.run()              # serve the tasks when a conq pool starts this file

Step 2, run it and call it::

    $ conq server --exec "python3 tasks.py"      # broker + API + dashboard + workers
    >>> conq.connect("http://127.0.0.1:8080")    # or CONQ_URL
    >>> add.delay(2, 3).get()
    5

or, with no server to start, ``with conq.Executor() as ex: ex.map(add, xs, ys)``.

Standard library only, Python >= 3.9. See docs/python.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ._context import TaskContext, current
from ._errors import (
    BindError,
    Cancelled,
    ConqError,
    ProtocolError,
    Retry,
    SkipRetry,
    TaskCancelled,
    TaskError,
    TaskFailed,
    WorkerCrashed,
)
from ._task import Task, registry, task

__version__ = "0.2.0"

__all__ = [
    "task",
    "run",
    "cancelled",
    "current",
    "connect",
    "enqueue",
    "Executor",
    "Task",
    "TaskContext",
    "AsyncResult",
    "Client",
    "Worker",
    "Retry",
    "SkipRetry",
    "TaskError",
    "TaskFailed",
    "WorkerCrashed",
    "TaskCancelled",
    "BindError",
    "Cancelled",
    "ProtocolError",
    "ConqError",
    "APIError",
    "BadRequestError",
    "AuthError",
    "NotFoundError",
    "ConflictError",
    "PayloadTooLargeError",
    "ServerUnavailable",
    "BatchError",
    "DEFAULT_RETENTION",
    "PROTOCOL_VERSION",
    "registry",
    "default_client",
    "Signature",
    "signature",
    "chain",
    "group",
    "chord",
    "WorkflowResult",
    "WorkflowFailed",
    "WorkflowCancelled",
]


def run(slots: Optional[int] = None, threads: Optional[int] = None, interpreters: Optional[int] = None,
        imports: bool = False) -> None:
    """Serve the tasks registered with ``@conq.task`` to the conq process
    pool that started this program (``conq worker --exec``, ``conq server
    --exec``, ``procpool``), until it closes the request stream.

    ``imports=True`` also runs any function or class found by importing
    its module (what ``conq.Executor`` sends for ``pow``, ``math.factorial``
    or a function of another module of yours, as ``py:<module>:<name>``):
    a producer can then run any importable function in this worker, so
    serve imports only to producers you trust, as with pickle."""
    from . import _serve

    _serve.run(slots=slots, threads=threads, interpreters=interpreters, imports=imports)


def cancelled() -> bool:
    """Whether the running task has been asked to stop (cancel, timeout)."""
    from . import _serve

    return _serve.cancelled()


if TYPE_CHECKING:  # the lazy names below, for type checkers
    from ._client import (DEFAULT_RETENTION, APIError, AuthError, BadRequestError, BatchError, Client, ConflictError,
                          NotFoundError, PayloadTooLargeError, ServerUnavailable, connect, default_client, enqueue)
    from ._executor import Executor
    from ._result import AsyncResult
    from ._canvas import Signature, WorkflowCancelled, WorkflowFailed, WorkflowResult, chain, chord, group, signature

_CANVAS_NAMES = frozenset(("Signature", "signature", "chain", "group", "chord", "WorkflowResult", "WorkflowFailed",
                           "WorkflowCancelled"))

_CLIENT_NAMES = frozenset(("DEFAULT_RETENTION", "APIError", "AuthError", "BadRequestError", "BatchError", "Client",
                           "ConflictError", "NotFoundError", "PayloadTooLargeError", "ServerUnavailable", "connect",
                           "default_client", "enqueue"))


def __getattr__(name: str):
    # Loaded on first use. A worker process (and each of its
    # sub-interpreters) imports conq to serve tasks and never needs the
    # HTTP client: http.client pulls in ssl and email, about 8 MiB of
    # resident memory per interpreter; the executor machinery the same.
    if name in _CLIENT_NAMES:
        from . import _client

        return getattr(_client, name)
    if name in _CANVAS_NAMES:
        from . import _canvas

        return getattr(_canvas, name)
    if name == "AsyncResult":
        from ._result import AsyncResult

        return AsyncResult
    if name == "Executor":
        from ._executor import Executor

        return Executor
    if name in ("Worker", "result_buffer", "PROTOCOL_VERSION", "READY", "CALL", "RESULT", "ERROR", "CANCEL"):
        from . import _serve

        return getattr(_serve, name)
    raise AttributeError("module 'conq' has no attribute %r" % (name,))
