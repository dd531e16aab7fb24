"""AsyncResult: the handle of an enqueued task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["AsyncResult"]


class AsyncResult(object):
    """An enqueued task: ``id``, ``state`` (pending, scheduled, active,
    retry, completed, dead), ``ready()``, ``get(timeout=)``, ``cancel()``.

    ``get()`` needs the task's result to be kept (``retention``): tasks
    enqueued from Python keep it for ``conq.DEFAULT_RETENTION`` by default.
    """

    __slots__ = ("id", "queue", "kind", "_client", "_done")

    def __init__(self, id: str, queue: Optional[str] = None, client: "Optional[Client]" = None,  # noqa: A002
                 kind: Optional[str] = None) -> None:
        self.id = id
        self.queue = queue
        self.kind = kind
        self._client = client
        self._done: Optional[Dict[str, Any]] = None

    @property
    def client(self) -> "Client":
        if self._client is None:
            from ._client import default_client

            self._client = default_client()
        return self._client

    def __repr__(self) -> str:
        return "<AsyncResult %s %s>" % (self.kind or "task", self.id)

    def _poll(self, wait: float = 0.0) -> Dict[str, Any]:
        if self._done is not None:
            return self._done
        body = self.client.poll(self.id, wait, self.queue)
        if body.get("done"):
            self._done = body
        return body

    @property
    def state(self) -> str:
        """The task's state now (``completed`` or ``dead`` once done)."""
        return self._poll().get("state", "unknown")

    def ready(self) -> bool:
        """Whether the task is done (completed or dead)."""
        return bool(self._poll().get("done"))

    def successful(self) -> bool:
        return self.ready() and self.state == "completed"

    def failed(self) -> bool:
        return self.ready() and self.state != "completed"

    def get(self, timeout: Optional[float] = None, propagate: bool = True) -> Any:
        """Wait for the task and return its result. Raises conq.TaskFailed
        (with the remote ``type``, ``message``, ``traceback``) if it failed
        for good (``propagate=False``: returns the exception instead), and
        TimeoutError after ``timeout`` seconds (None: wait for ever), whose
        message names the last failed attempt of a task waiting to retry."""
        import time

        from ._client import _MAX_WAIT, _decode_result, failure, task_timeout

        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while self._done is None:
            wait = _MAX_WAIT
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            body = self._poll(wait)
            if self._done is None and deadline is not None and time.monotonic() >= deadline:
                raise task_timeout(self.id, timeout, body)
        body = self._done
        if body.get("state") != "completed":
            exc = failure(body)
            if propagate:
                raise exc
            return exc
        return _decode_result(body)

    def wait(self, timeout: Optional[float] = None) -> Any:
        return self.get(timeout=timeout)

    def cancel(self) -> Optional[str]:
        """Cancel the task: a waiting one is dead at once, a running one is
        asked to stop. Returns the state it was in (None if already done)."""
        from ._client import ConflictError

        try:
            was, _ = self.client.cancel(self.id, self.queue)
            return was
        except ConflictError:
            return None

    revoke = cancel  # Celery's name
