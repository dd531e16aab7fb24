"""Workflows with Celery's canvas: signatures, chain, group, chord.

``add.s(2, 2)`` is a Signature: a call of a task, not yet sent. Combine
them and send the whole shape as one workflow (``POST /api/v1/workflows``,
docs/workflows.md); the server stores it and enqueues each step when its
inputs are ready, so nothing here waits between steps::

    conq.chain(add.s(2, 2), mul.s(4)).delay().get()                # 16
    (add.s(2, 2) | mul.s(4)).delay().get()                         # 16
    conq.group(add.s(i, i) for i in range(10)).delay().get()       # [0, 2, ..., 18]
    conq.chord((add.s(i, i) for i in range(10)), tsum.s()).delay().get()   # 90

Result passing is Celery's: a step gets the result of what precedes it
prepended to its positional arguments (``mul.s(4)`` after ``add.s(2, 2)``
runs ``mul(4, 4)``); a chord's body and a step after a group get the list
of the members' results, in member order. An immutable signature
(``b.si(5)``, Celery's, or ``signature(..., immutable=True)``) gets
nothing: it runs ``b(5)`` once what precedes it has completed, a chord
body too (it then runs without the members' results). ``.delay()`` returns a
WorkflowResult, which answers like an AsyncResult: ``id``, ``state``,
``ready()``, ``get(timeout=)`` (raises WorkflowFailed, a conq.TaskFailed,
naming the failed step with its remote exception), ``cancel()``.

Not supported: ``link``/``link_error`` callbacks, and chord or chain
options per call beyond queue, retries, timeout and retention.
"""

from __future__ import annotations

import collections.abc as _abc
import time
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._errors import TaskCancelled, TaskFailed

if TYPE_CHECKING:
    from ._client import Client
    from ._result import AsyncResult
    from ._task import Task

__all__ = [
    "Signature",
    "chain",
    "group",
    "chord",
    "signature",
    "WorkflowResult",
    "WorkflowFailed",
    "WorkflowCancelled",
]

# Options a step may carry (Python names; _client._options maps them to
# the API's). A step's ID is the workflow's, and a step cannot be unique.
_STEP_OPTIONS = ("queue", "retries", "max_retries", "timeout", "retention")
_REFUSED = {"task_id": "a workflow step's task ID is set by the workflow (wf_ID.STEP)",
            "id": "a workflow step's task ID is set by the workflow (wf_ID.STEP)",
            "unique": "a workflow step cannot be unique", "unique_key": "a workflow step cannot be unique",
            "countdown": "a workflow step starts when its inputs are ready",
            "eta": "a workflow step starts when its inputs are ready"}

# The server caps one wait at 5 minutes; shorter waits keep a get() with a
# timeout responsive and each request well under the socket timeout.
_WAIT_CHUNK = 30.0

# The states of a finished workflow.
_FINISHED = ("completed", "failed", "cancelled")

_TASK_CLASS = None
_client_options = None  # conq._client._options, imported on first use (Signature._node)


def _task_class() -> Any:
    """conq.Task, imported on first use (_task imports this module): a
    function-level import on every signature cost an import-system lookup
    per call."""
    global _TASK_CLASS
    if _TASK_CLASS is None:
        from ._task import Task

        _TASK_CLASS = Task
    return _TASK_CLASS


def _check_options(options: Mapping[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in options.items():
        if k in _REFUSED:
            raise ValueError("option %r: %s" % (k, _REFUSED[k]))
        if k not in _STEP_OPTIONS:
            raise TypeError("unknown option %r for a workflow step (want one of %s)" % (k, ", ".join(_STEP_OPTIONS)))
        if v is not None:
            out[k] = v
    return out


class _Canvas(object):
    """What signatures, chains, groups and chords share: ``|``, delay,
    apply_async and the node they send."""

    def _node(self) -> Dict[str, Any]:
        raise NotImplementedError

    def _partial(self, args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> "_Canvas":
        raise NotImplementedError

    def __or__(self, other: Any) -> "chain":
        if not isinstance(other, _Canvas):
            return NotImplemented
        return chain(self, other)

    def flow(self, queue: Optional[str] = None, retention: Any = None) -> Dict[str, Any]:
        """The workflow's JSON body, as POST /api/v1/workflows takes it."""
        from ._client import _duration

        body: Dict[str, Any] = {"flow": self._node()}
        if queue is not None:
            if not isinstance(queue, str) or not queue:
                raise ValueError("queue must be a non-empty string, not %r" % (queue,))
            body["queue"] = queue
        if retention is not None:
            body["retention"] = _duration(retention)
        return body

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Send it; partial arguments are prepended (kwargs merged) to the
        first steps' (Celery's rule). Shortcut for ``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Optional[Iterable[Any]] = None, kwargs: Optional[Mapping[str, Any]] = None, *,
                    queue: Optional[str] = None, retention: Any = None, client: "Optional[Client]" = None) -> Any:
        """Send it as one workflow and return its WorkflowResult. ``queue``
        is the queue of the steps that name none (their task's own queue
        wins); ``retention`` how long the finished workflow and its steps'
        results are kept (default 24h)."""
        from ._client import default_client

        target = self._partial(tuple(args or ()), dict(kwargs or {})) if (args or kwargs) else self
        c = client if client is not None else default_client()
        _, body = c._request("POST", "/api/v1/workflows", target.flow(queue=queue, retention=retention))
        return WorkflowResult(body["id"], client=c)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Celery's ``chain(...)()``: send it, as delay() does."""
        return self.apply_async(args, kwargs)


class Signature(_Canvas):
    """One call of a task: its name, arguments and step options (queue,
    retries, timeout, retention). ``task.s(*args, **kwargs)`` makes one.
    Calling a signature runs the task here, with the arguments."""

    __slots__ = ("task", "name", "args", "kwargs", "options", "immutable")

    def __init__(self, task: "Union[str, Task]", args: Optional[Iterable[Any]] = None,
                 kwargs: Optional[Mapping[str, Any]] = None, immutable: bool = False, **options: Any) -> None:
        _Task = _task_class()
        if isinstance(task, _Task):
            self.task: Optional[_Task] = task
            self.name = task.name
            defaults = {"queue": task.queue, "retries": task.retries, "timeout": task.timeout}
        elif isinstance(task, str) and task:
            self.task = None
            self.name = task
            defaults = {}
        else:
            raise TypeError("a signature needs a conq.Task or a task name, not %r" % (task,))
        if isinstance(args, (str, bytes)) or (args is not None and not isinstance(args, _abc.Iterable)):
            raise TypeError("args must be a sequence of arguments, not %r" % (args,))
        self.args: Tuple[Any, ...] = tuple(args or ())
        self.kwargs: Dict[str, Any] = dict(kwargs or {})
        defaults.update(options)
        self.options: Dict[str, Any] = _check_options(defaults)
        # Not a step option of the API's task spec but of the flow node
        # ({"task": ..., "immutable": true}), so kept apart from options.
        self.immutable = bool(immutable)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + ["%s=%r" % kv for kv in self.kwargs.items()]
        return "%s.%s(%s)" % (self.name, "si" if self.immutable else "s", ", ".join(parts))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Signature) and (self.name, self.args, self.kwargs, self.options, self.immutable)
                == (other.name, other.args, other.kwargs, other.options, other.immutable))

    __hash__ = None  # type: ignore[assignment]  # mutable, like Celery's (a dict)

    def set(self, immutable: Optional[bool] = None, **options: Any) -> "Signature":
        """Set step options (queue, retries, timeout, retention) and
        ``immutable`` in place; returns the signature, as Celery's does."""
        self.options.update(_check_options(options))
        if immutable is not None:
            self.immutable = bool(immutable)
        return self

    def clone(self, args: Optional[Iterable[Any]] = None, kwargs: Optional[Mapping[str, Any]] = None,
              **options: Any) -> "Signature":
        """A copy with ``args`` prepended and ``kwargs`` and options merged;
        an immutable signature keeps its own arguments (Celery's rule)."""
        if self.immutable:
            args, kwargs = None, None
        s = Signature(self.task if self.task is not None else self.name, tuple(args or ()) + self.args,
                      {**self.kwargs, **dict(kwargs or {})}, immutable=self.immutable)
        s.options = {**self.options, **_check_options(options)}
        return s

    def _partial(self, args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> "Signature":
        return self.clone(args, kwargs)

    def _node(self) -> Dict[str, Any]:
        global _client_options
        if _client_options is None:
            from ._client import _options as _client_options
        spec: Dict[str, Any] = {"kind": self.name, "args": list(self.args), "kwargs": dict(self.kwargs)}
        spec.update(_client_options(self.options))
        if self.immutable:
            return {"task": spec, "immutable": True}
        return {"task": spec}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task in this process (Celery's ``sig()``)."""
        if self.task is None:
            raise TypeError("signature %r names task %r, not a conq.Task of this process: use .delay()" % (self, self.name))
        return self.task(*(args + self.args), **{**self.kwargs, **kwargs})

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Enqueue this one call as a task (no workflow); returns its
        AsyncResult. Partial arguments are prepended, as Celery does."""
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Optional[Iterable[Any]] = None, kwargs: Optional[Mapping[str, Any]] = None, *,
                    queue: Optional[str] = None, retention: Any = None, client: "Optional[Client]" = None,
                    **options: Any) -> "AsyncResult":
        """Enqueue this one call as a task; returns its AsyncResult. Options
        are those of Task.apply_async, over the signature's."""
        from ._client import DEFAULT_RETENTION, default_client

        s = self.clone(args, kwargs)
        c = client if client is not None else default_client()
        opts = dict(s.options)
        opts.update({k: v for k, v in options.items() if v is not None})
        if queue is not None:
            opts["queue"] = queue
        opts["retention"] = retention if retention is not None else opts.get("retention", DEFAULT_RETENTION)
        return c.call(s.name, list(s.args), s.kwargs, **opts)


def signature(task: "Union[str, Task]", args: Optional[Iterable[Any]] = None,
              kwargs: Optional[Mapping[str, Any]] = None, immutable: bool = False, **options: Any) -> Signature:
    """A signature of a task by name (a task of another program) or of a
    conq.Task: ``conq.signature("add", args=(2, 2), queue="math")``;
    ``immutable=True`` is ``task.si(...)``."""
    return Signature(task, args, kwargs, immutable=immutable, **options)


def _nodes(what: str, tasks: Sequence[Any]) -> List[_Canvas]:
    # Celery's group(gen) and group(a, b) (and chain's) both work.
    if len(tasks) == 1 and not isinstance(tasks[0], _Canvas):
        if isinstance(tasks[0], (str, bytes, _abc.Mapping)) or not isinstance(tasks[0], _abc.Iterable):
            raise TypeError("%s takes signatures (task.s(...)), chains, groups or chords, not %r" % (what, tasks[0]))
        tasks = list(tasks[0])
    out = list(tasks)
    for t in out:
        if not isinstance(t, _Canvas):
            raise TypeError("%s takes signatures (task.s(...)), chains, groups or chords, not %r" % (what, t))
    if not out:
        raise ValueError("an empty %s: it needs at least one signature" % what)
    return out


class chain(_Canvas):  # noqa: N801 - Celery's name
    """Run the tasks one after the other, each getting the previous
    result prepended to its arguments: ``chain(add.s(2, 2), mul.s(4))``,
    or ``add.s(2, 2) | mul.s(4)``. Its result is the last one's."""

    def __init__(self, *tasks: Any) -> None:
        self.tasks: List[_Canvas] = _nodes("chain", tasks)

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks)

    def __or__(self, other: Any) -> "chain":
        if not isinstance(other, _Canvas):
            return NotImplemented
        more = other.tasks if isinstance(other, chain) else [other]
        return chain(*self.tasks, *more)

    def __ror__(self, other: Any) -> "chain":
        if not isinstance(other, _Canvas):
            return NotImplemented
        return chain(other, *self.tasks)

    def _partial(self, args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> "chain":
        return chain(self.tasks[0]._partial(args, kwargs), *self.tasks[1:])

    def _node(self) -> Dict[str, Any]:
        return {"chain": [t._node() for t in self.tasks]}


class group(_Canvas):  # noqa: N801 - Celery's name
    """Run the tasks in parallel; the result is the list of theirs, in
    member order: ``group(add.s(i, i) for i in range(10))``."""

    def __init__(self, *tasks: Any) -> None:
        self.tasks: List[_Canvas] = _nodes("group", tasks)

    def __repr__(self) -> str:
        return "group(%s)" % ", ".join(repr(t) for t in self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def _partial(self, args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> "group":
        return group(*[t._partial(args, kwargs) for t in self.tasks])

    def _node(self) -> Dict[str, Any]:
        return {"group": [t._node() for t in self.tasks]}


class chord(_Canvas):  # noqa: N801 - Celery's name
    """Run the header (a group, or signatures) in parallel, then the body
    with the list of their results: ``chord(header, tsum.s())``, or
    Celery's ``chord(header)(tsum.s())``. If a member fails the body does
    not run and the workflow fails, unless ``tolerate_failures=True``:
    then the body gets ``{"ok": True, "result": v}`` or ``{"ok": False,
    "error": {"type": "StepFailed", "message": m}}`` elements."""

    def __init__(self, header: Any, body: Optional[_Canvas] = None, tolerate_failures: bool = False) -> None:
        # A group's members, an iterable of signatures, or one canvas.
        tasks = header.tasks if isinstance(header, group) else _nodes("chord header", (header,))
        self.header: List[_Canvas] = list(tasks)
        if body is not None and not isinstance(body, _Canvas):
            raise TypeError("a chord's body is a signature (task.s(...)) or another canvas, not %r" % (body,))
        self.body = body
        self.tolerate_failures = bool(tolerate_failures)

    def __repr__(self) -> str:
        return "chord([%s], %r)" % (", ".join(repr(t) for t in self.header), self.body)

    def __call__(self, body: Optional[_Canvas] = None, **options: Any) -> Any:  # type: ignore[override]
        """Celery's ``chord(header)(body)``: set the body and send it."""
        c = self
        if body is not None:
            c = chord(group(*self.header), body, self.tolerate_failures)
        return c.apply_async(**options)

    def _partial(self, args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> "chord":
        return chord(group(*[t._partial(args, kwargs) for t in self.header]), self.body, self.tolerate_failures)

    def _node(self) -> Dict[str, Any]:
        if self.body is None:
            raise ValueError("a chord without a body: chord(header, body) or chord(header)(body)")
        return {"chord": {"header": [t._node() for t in self.header], "body": self.body._node(),
                          "tolerate_failures": self.tolerate_failures}}


class WorkflowFailed(TaskFailed):
    """A workflow failed: ``workflow_id``, ``workflow_state`` (failed or
    cancelled), ``step`` (the index of the failed step, or None) and, as a
    conq.TaskFailed, that step's task: ``task_id``, ``kind``, ``type``,
    ``message``, ``traceback``, ``errors``."""

    def __init__(self, workflow_id: str, workflow_state: str, workflow_error: str, step: Optional[int],
                 task_id: str, kind: Optional[str], queue: Optional[str], attempts: int,
                 errors: Optional[List[Dict[str, Any]]], state: str = "dead") -> None:
        super().__init__(task_id, kind, queue, attempts, errors, state)
        self.workflow_id = workflow_id
        self.workflow_state = workflow_state
        self.workflow_error = workflow_error
        self.step = step
        if step is None:
            msg = "workflow %s %s: %s" % (workflow_id, workflow_state, workflow_error)
        else:
            msg = "workflow %s %s: step %d (%s, task %s) failed after %d attempt(s): %s: %s" % (
                workflow_id, workflow_state, step, kind, task_id, attempts, self.type, self.message)
        Exception.__init__(self, msg)

    def __reduce__(self):
        return (type(self), (self.workflow_id, self.workflow_state, self.workflow_error, self.step, self.task_id,
                             self.kind, self.queue, self.attempts, self.errors, self.state))


class WorkflowCancelled(WorkflowFailed, TaskCancelled):
    """The workflow was cancelled (WorkflowResult.cancel, the HTTP API or
    the dashboard) before it completed."""


class WorkflowResult(object):
    """A workflow sent by ``delay``/``apply_async``; it answers like an
    AsyncResult. ``state`` is running, completed, failed or cancelled;
    ``get()`` returns the workflow's result (a chain's last step's, a
    group's list in member order, a chord's body's). ``state``,
    ``ready()`` and ``get()`` read the workflow's outcome (GET
    /api/v1/workflows/{id}/result: no steps, the same cost for any size);
    ``info()`` and ``steps`` read it whole."""

    __slots__ = ("id", "_client", "_done", "_outcome")

    def __init__(self, id: str, client: "Optional[Client]" = None) -> None:  # noqa: A002
        self.id = id
        self._client = client
        self._done: Optional[Dict[str, Any]] = None  # the finished workflow, whole (info)
        self._outcome: Optional[Dict[str, Any]] = None  # its finished outcome (no steps)

    @property
    def client(self) -> "Client":
        if self._client is None:
            from ._client import default_client

            self._client = default_client()
        return self._client

    def __repr__(self) -> str:
        return "<WorkflowResult %s>" % self.id

    def info(self, wait: float = 0.0) -> Dict[str, Any]:
        """The workflow as GET /api/v1/workflows/{id} shows it: ``state``,
        ``result``, ``error`` and ``steps`` (each with ``task_id``, ``kind``,
        ``state``, ``attempts``, ``result``, ``error``). ``wait`` seconds:
        wait that long at most for it to finish."""
        from ._client import Client

        if self._done is not None:
            return self._done
        query = {"wait": "%dms" % int(wait * 1000)} if wait > 0 else None
        _, body = self.client._request("GET", "/api/v1/workflows/" + Client._id(self.id), query=query,
                                       timeout=self.client.timeout + wait)
        if body.get("state") in _FINISHED:
            self._done = body
        return body

    def _result(self, wait: float = 0.0) -> Dict[str, Any]:
        """The workflow's outcome as GET /api/v1/workflows/{id}/result
        answers it: ``id``, ``state``, ``result`` (when completed),
        ``error``, no steps. ``wait`` as for info(). A finished outcome is
        kept (so is a finished info(), which answers too)."""
        from ._client import Client, NotFoundError

        if self._done is not None:
            return self._done
        if self._outcome is not None:
            return self._outcome
        query = {"wait": "%dms" % int(wait * 1000)} if wait > 0 else None
        try:
            _, body = self.client._request("GET", "/api/v1/workflows/%s/result" % Client._id(self.id), query=query,
                                           timeout=self.client.timeout + wait)
        except NotFoundError as e:
            if e.code != "not_found":
                raise
            # A server older than the result endpoint (no such route): the
            # whole workflow answers the same.
            return self.info(wait)
        if body.get("state") in _FINISHED:
            self._outcome = body
        return body

    def _retrying(self) -> str:
        """For a timeout's message: the steps waiting to retry, with their
        last error (a workflow that does not finish most often has one),
        from one read of its steps; "" when none or when that read fails."""
        from ._errors import ConqError

        try:
            steps = self.steps
        except (ConqError, OSError, ValueError):
            return ""
        out = []
        for i, st in enumerate(steps):
            if st.get("state") == "retry":
                out.append("step %d (%s) waits to retry after %s attempt(s): %s"
                           % (i, st.get("kind"), st.get("attempts"), st.get("error") or "no error recorded"))
        if not out:
            return ""
        more = " and %d more" % (len(out) - 3) if len(out) > 3 else ""
        return "; " + "; ".join(out[:3]) + more

    @property
    def state(self) -> str:
        return self._result().get("state", "unknown")

    @property
    def steps(self) -> List[Dict[str, Any]]:
        return list(self.info().get("steps") or [])

    def ready(self) -> bool:
        """Whether the workflow is finished (completed, failed or cancelled)."""
        return self._result().get("state") in _FINISHED

    def successful(self) -> bool:
        return self.ready() and self.state == "completed"

    def failed(self) -> bool:
        return self.ready() and self.state != "completed"

    def get(self, timeout: Optional[float] = None, propagate: bool = True) -> Any:
        """Wait for the workflow and return its result. Raises
        WorkflowFailed (a conq.TaskFailed: the failed step's remote
        exception type, message and traceback), or WorkflowCancelled, if
        it did not complete (``propagate=False``: returns it instead), and
        TimeoutError after ``timeout`` seconds (None: wait for ever)."""
        from ._client import NotFoundError

        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while True:
            wait = _WAIT_CHUNK
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            body = self._result(wait)
            if body.get("state") in _FINISHED:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("workflow %s not done after %ss (state %s)%s"
                                   % (self.id, timeout, body.get("state"), self._retrying()))
        if body.get("state") != "completed":
            if "steps" not in body:
                # The failed step (its remote exception) is in the steps:
                # read the workflow whole, in this case only.
                try:
                    body = self.info()
                except NotFoundError:
                    pass  # gone since (its retention ended): the outcome says what it can
            exc = self._failure(body)
            if propagate:
                raise exc
            return exc
        return body.get("result")

    def wait(self, timeout: Optional[float] = None) -> Any:
        return self.get(timeout=timeout)

    def _failure(self, body: Mapping[str, Any]) -> WorkflowFailed:
        from ._client import APIError

        state = body.get("state", "failed")
        cls = WorkflowCancelled if state == "cancelled" else WorkflowFailed
        wf_error = body.get("error") or state
        for i, st in enumerate(body.get("steps") or []):
            if st.get("state") != "failed":
                continue
            task_id = st.get("task_id") or st.get("id")
            errors = [{"kind": "error", "message": st.get("error") or ""}]
            attempts, queue = st.get("attempts", 0), st.get("queue")
            try:
                # The step's task has the remote exception's type and
                # traceback; it is kept as long as the workflow.
                t = self.client.task(task_id, queue)
                errors = t.get("errors") or errors
                attempts = t.get("attempts", attempts)
            except APIError:
                pass
            return cls(self.id, state, wf_error, i, task_id, st.get("kind"), queue, attempts, errors)
        return cls(self.id, state, wf_error, None, self.id, None, None, 0,
                   [{"kind": "cancelled" if state == "cancelled" else "error", "message": wf_error}], state)

    def cancel(self) -> Optional[str]:
        """Cancel the workflow: waiting steps are cancelled, running ones
        asked to stop. Returns "cancelled", or None if it had finished."""
        from ._client import Client, ConflictError

        try:
            _, body = self.client._request("POST", "/api/v1/workflows/%s/cancel" % Client._id(self.id))
        except ConflictError:
            return None
        self._done = self._outcome = None
        return (body or {}).get("state", "cancelled")

    revoke = cancel  # Celery's name
