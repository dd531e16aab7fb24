"""@conq.task: the decorator, the task options, and how a payload binds to
the function's parameters.

Binding rules (the payload's encoding comes with the call, META
``encoding``, so nothing is guessed from the bytes):

- ``args``: the payload is ``{"args": [...], "kwargs": {...}}`` (what
  ``delay()``, ``queue.NewCallTask`` and ``conq enqueue --args`` send); the
  function runs as ``fn(*args, **kwargs)``.
- ``json`` (and ``raw`` or no encoding, for a task that is not raw): the
  payload is one JSON value, given whole as the only argument
  (``def record(payload)``); a JSON ``null`` to a function without
  parameters calls it with none.
- ``@conq.task(raw=True)``: the payload's bytes (``bytes`` under 64 KiB, a
  read-only ``memoryview`` above, valid while the task runs) are the only
  argument, unless the call is an ``args`` call.

Arguments that do not bind raise ``conq.BindError`` (a ``TypeError``) naming
the task and its signature; the queue does not retry it. A task's return
value is sent JSON-encoded (raw tasks: bytes, bytearray, memoryview, str as
UTF-8, or None for empty).
"""

from __future__ import annotations

import datetime
import functools
import json as _json
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union, overload

from . import _context
from ._errors import BindError, TaskNotFound

if TYPE_CHECKING:
    import inspect

__all__ = ["Task", "task", "registry", "make_task", "VIEW_THRESHOLD", "IMPORT_PREFIX", "import_name", "import_task"]

VIEW_THRESHOLD = 64 << 10  # raw arguments at least this large are passed as memoryview

Seconds = Union[int, float, datetime.timedelta, str]
Payload = Union[bytes, bytearray, memoryview]

#: Every task registered with the module-level ``@conq.task``, by name.
registry: Dict[str, "Task"] = {}

_dumps = _json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_scan_once = _json.JSONDecoder().scan_once


def _json_value(text: str) -> Any:
    """json.loads(text) by the decoder's C scanner when text is one JSON
    value without surrounding space (json.loads adds a regular expression
    per call); anything else goes to json.loads: same values, same errors."""
    try:
        obj, end = _scan_once(text, 0)
    except StopIteration:
        return _json.loads(text)
    if end != len(text):
        return _json.loads(text)
    return obj



_SIGNATURE_CLASS = None


def _signature_class() -> Any:
    """conq.Signature, imported on first use (_canvas is loaded only by
    producers): a function-level import in s() cost an import-system
    lookup per signature."""
    global _SIGNATURE_CLASS
    if _SIGNATURE_CLASS is None:
        from ._canvas import Signature

        _SIGNATURE_CLASS = Signature
    return _SIGNATURE_CLASS

class Task(object):
    """A function registered as a conq task. Calling it runs the function
    here; ``delay``/``apply_async`` enqueue it."""

    def __init__(self, fn: Callable[..., Any], name: Optional[str] = None, raw: bool = False,
                 queue: Optional[str] = None, retries: Optional[int] = None, timeout: Optional[Seconds] = None,
                 retention: Optional[Seconds] = None, unique: Any = None) -> None:
        if not callable(fn):
            raise TypeError("@conq.task needs a function, got %r" % (fn,))
        n = getattr(fn, "__name__", None) if name is None else name
        if not isinstance(n, str) or not n or len(n.encode("utf-8")) > 0xFFFF:
            raise ValueError("invalid task name %r" % (n,))
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
            raise ValueError("task %r: retries must be an int >= 0, got %r" % (n, retries))
        self.name = n
        self.fn = fn
        self.raw = bool(raw)
        self.is_async = _is_coroutine_function(fn)
        self.queue = queue
        self.retries = retries
        self.timeout = timeout
        self.retention = retention
        self.unique = unique
        self._sig: Any = _UNSET
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    # -- running -----------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function in this process, like calling it undecorated."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return "<conq.Task %s%s>" % (self.name, self.describe_signature())

    @property
    def signature(self) -> "Optional[inspect.Signature]":
        """The function's signature (None if it has none to read), computed
        on first use: ``inspect`` costs a worker interpreter about 3 MiB,
        and a call that binds never needs it."""
        if self._sig is _UNSET:
            import inspect

            try:
                self._sig = inspect.signature(self.fn)
            except (TypeError, ValueError):
                self._sig = None
        return self._sig

    def describe_signature(self) -> str:
        return str(self.signature) if self.signature is not None else "(...)"

    def _bind_error(self, why: str) -> BindError:
        return BindError("task %r %s%s: %s" % (self.name, getattr(self.fn, "__name__", self.name),
                                               self.describe_signature(), why))

    def bind(self, payload: Payload, meta: Optional[Mapping[str, Any]]) -> Tuple[tuple, dict]:
        """The positional and keyword arguments a payload binds to. Raises
        BindError for a payload that cannot bind to any call of the task."""
        enc = meta.get("encoding") if meta else None
        if enc == "args":
            try:
                obj = _json_value(str(payload, "utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise self._bind_error("the call's arguments are not JSON: %s" % e) from None
            if not isinstance(obj, dict):
                raise self._bind_error("the call's arguments are not an object {\"args\": [...], \"kwargs\": {...}}")
            args = obj.get("args") or []
            kwargs = obj.get("kwargs") or {}
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise self._bind_error("the call's \"args\" must be a list and \"kwargs\" an object")
            return tuple(args), kwargs
        if self.raw:
            if len(payload) < VIEW_THRESHOLD:
                return (bytes(payload),), {}
            if isinstance(payload, memoryview):
                return (payload.toreadonly(),), {}
            return (memoryview(payload).toreadonly(),), {}
        # One JSON value, whole. A payload stored raw (no encoding, an old
        # producer) is read as JSON text too: a JSON task has no other use
        # for bytes.
        try:
            value = _json_value(str(payload, "utf-8")) if len(payload) else None
        except (ValueError, UnicodeDecodeError) as e:
            raise self._bind_error("the payload (encoding %s) is not JSON: %s; declare @conq.task(raw=True) to take bytes"
                                   % (enc or "none", e)) from None
        if value is None and self.signature is not None and _takes_none(self.signature):
            return (), {}
        return (value,), {}

    def _check_bind(self, e: TypeError, args: tuple, kwargs: dict) -> None:
        """After fn(*args, **kwargs) raised TypeError: if the arguments do
        not bind, it was raised by the call itself (Python checks before the
        body runs), so it is a binding error."""
        if self.signature is None:
            return
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as be:
            raise self._bind_error(str(be)) from None

    def _encode(self, result: Any) -> Tuple[Payload, str]:
        if self.raw:
            return _raw(result), "raw"
        try:
            return _dumps(result).encode("utf-8"), "json"
        except (TypeError, ValueError) as e:
            raise TypeError("task %r returned a %s that is not JSON-encodable (%s); return JSON values, or declare @conq.task(raw=True) and return bytes"
                            % (self.name, type(result).__name__, e)) from None

    def invoke(self, payload: Payload, meta: Optional[Mapping[str, Any]] = None) -> Tuple[Payload, str]:
        """Run a sync task on a call's payload: bind it (META ``encoding``),
        set conq.current() for the call, and return (result bytes, encoding)."""
        args, kwargs = self.bind(payload, meta)
        token = _context._current.set(_context.TaskContext.from_meta(meta, self.name))
        try:
            try:
                result = self.fn(*args, **kwargs)
            except TypeError as e:
                self._check_bind(e, args, kwargs)
                raise
        finally:
            _context._current.reset(token)
        return self._encode(result)

    async def ainvoke(self, payload: Payload, meta: Optional[Mapping[str, Any]] = None) -> Tuple[Payload, str]:
        """invoke() for ``async def`` tasks (and sync ones, run inline)."""
        args, kwargs = self.bind(payload, meta)
        token = _context._current.set(_context.TaskContext.from_meta(meta, self.name))
        try:
            try:
                result = self.fn(*args, **kwargs)
            except TypeError as e:
                self._check_bind(e, args, kwargs)
                raise
            if hasattr(result, "__await__"):  # inspect.isawaitable for what a task returns
                result = await result
        finally:
            _context._current.reset(token)
        return self._encode(result)

    # -- calling through a queue -------------------------------------------

    def delay(self, *args: Any, **kwargs: Any) -> "Any":
        """Enqueue a call of this task with these arguments; returns an
        AsyncResult. Shortcut for ``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Optional[Iterable[Any]] = None, kwargs: Optional[Mapping[str, Any]] = None, *,
                    queue: Optional[str] = None, countdown: Optional[Seconds] = None,
                    eta: Optional[Union[datetime.datetime, str]] = None, task_id: Optional[str] = None,
                    retries: Optional[int] = None, unique: Any = None, retention: Optional[Seconds] = None,
                    timeout: Optional[Seconds] = None, deadline: Optional[Union[datetime.datetime, str]] = None,
                    client: Any = None) -> "Any":
        """Enqueue a call with options (the task's own options are the
        defaults): ``countdown`` seconds or ``eta`` (aware datetime) to run
        later, ``task_id`` to choose the id, ``retries`` after the first
        attempt, ``unique`` (seconds, or a dict of the API's unique
        object), ``retention`` of the result (default: conq.DEFAULT_RETENTION
        so ``get()`` works). Returns an AsyncResult."""
        from . import _client

        c = client if client is not None else _client.default_client()
        return c.enqueue_call(self.name, args, kwargs, **self.options(
            queue=queue, countdown=countdown, eta=eta, task_id=task_id, retries=retries,
            unique=unique, retention=retention, timeout=timeout, deadline=deadline))

    def s(self, *args: Any, **kwargs: Any) -> "Any":
        """A signature of a call of this task, for workflows (Celery's
        ``task.s``): ``conq.chain(add.s(2, 2), mul.s(4))``. With step options:
        ``conq.signature(task, args, kwargs, queue=...)`` or ``.set()``
        (``task.signature`` is the function's inspect.Signature). See
        conq._canvas."""
        return _signature_class()(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> "Any":
        """An immutable signature (Celery's ``task.si``): in a workflow it
        runs with exactly these arguments, never the previous result
        (``chain(a.s(1), b.si(5))`` runs ``b(5)`` once ``a`` completed).
        See conq._canvas."""
        return _signature_class()(self, args, kwargs, immutable=True)

    def options(self, **override: Any) -> Dict[str, Any]:
        """The enqueue options of a call: the given ones over the task's."""
        opts = {"queue": self.queue, "retries": self.retries, "timeout": self.timeout,
                "retention": self.retention, "unique": self.unique}
        for k, v in override.items():
            if v is not None:
                opts[k] = v
        return opts


_UNSET = object()
_CO_COROUTINE = 0x80

#: The kind of the chunk calls of ``Executor.map(..., chunksize=N)``: one
#: task runs a whole chunk of items, as ProcessPoolExecutor's chunks do.
#: The prefix of a task name that is a function's import path,
#: ``py:<module>:<qualname>`` (``py:math:factorial``, ``py:builtins:pow``):
#: what conq.Executor sends for a function that is neither a registered
#: task nor one of ``__main__``, as pickle refers to a function by module
#: and name. Only a worker that serves imports (``conq.run(imports=True)``;
#: conq.Executor()'s local engine) runs such a name.
IMPORT_PREFIX = "py:"


def _lookup(module: Any, qualname: str) -> Any:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def import_name(fn: Any) -> Optional[str]:
    """``py:<module>:<qualname>`` for a function or class that can be found
    again by importing its module and walking its qualified name (as
    pickle requires of what it sends by reference), else None: a lambda, a
    nested function, a bound method, a function of ``__main__``."""
    import sys

    mod = getattr(fn, "__module__", None)
    qn = getattr(fn, "__qualname__", None)
    if not isinstance(mod, str) or not isinstance(qn, str) or not mod or not qn:
        return None
    if mod in ("__main__", "__mp_main__") or "<" in qn or ":" in mod:
        return None
    m = sys.modules.get(mod)
    if m is None:
        return None
    try:
        found = _lookup(m, qn)
    except AttributeError:
        return None
    if found is not fn:
        return None
    return IMPORT_PREFIX + mod + ":" + qn


def import_task(name: str) -> "Task":
    """The task for an import-path name (``py:<module>:<qualname>``):
    imports the module, finds the function, and wraps it. Raises
    TaskNotFound with a message naming what is missing."""
    import importlib

    rest = name[len(IMPORT_PREFIX):] if name.startswith(IMPORT_PREFIX) else ""
    mod, sep, qn = rest.partition(":")
    if not sep or not mod or not qn or "<" in qn or mod in ("__main__", "__mp_main__"):
        raise TaskNotFound("task %r: not an import path (want %s<module>:<qualified name>)" % (name, IMPORT_PREFIX))
    try:
        m = importlib.import_module(mod)
    except Exception as e:  # noqa: BLE001 - whatever the module raises on import is why the name cannot run
        raise TaskNotFound("task %r: cannot import module %r in the worker: %s: %s"
                           % (name, mod, type(e).__name__, e)) from None
    try:
        fn = _lookup(m, qn)
    except AttributeError:
        raise TaskNotFound("task %r: module %r has no %r" % (name, mod, qn)) from None
    if not callable(fn):
        raise TaskNotFound("task %r: %s.%s is a %s, not a function" % (name, mod, qn, type(fn).__name__))
    if _is_coroutine_function(fn):
        raise TaskNotFound("task %r: %s.%s is an async def function; register it with @conq.task to run it"
                          % (name, mod, qn))
    return Task(fn, name=name)


CHUNK_TASK = "conq.chunk"


def chunk_task(tasks: Mapping[str, "Task"], lookup: Optional[Callable[[str], "Task"]] = None) -> "Task":
    """The built-in task behind CHUNK_TASK, running tasks of ``tasks``:
    ``chunk(name, items[, kwargs])`` calls task ``name`` with each item's
    positional arguments (and the same keyword arguments, when given: a
    functools.partial's), in order, and returns ``[[true, value] | [false,
    error], ...]``: one item's exception (or unencodable value) is that
    item's error, the next items still run, as an exception inside a
    ProcessPoolExecutor chunk is raised at its item. ``lookup`` finds a
    name ``tasks`` lacks (an import path, when the worker serves them); its
    error fails the chunk."""

    def chunk(name: str, items: list, kwargs: Optional[dict] = None) -> list:
        t = tasks.get(name)
        if t is None and lookup is not None and name.startswith(IMPORT_PREFIX):
            t = lookup(name)
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise BindError("task %r: kwargs must be an object" % (CHUNK_TASK,))
        if t is None or isinstance(t, _ChunkTask):
            raise BindError("task %r: no task named %r in this worker for map(chunksize=...)" % (CHUNK_TASK, name))
        if t.raw or t.is_async:
            raise BindError("task %r: map(chunksize > 1) runs plain JSON tasks; %r is %s"
                            % (CHUNK_TASK, name, "raw" if t.raw else "async def"))
        if not isinstance(items, list) or not all(isinstance(a, list) for a in items):
            raise BindError("task %r: items must be a list of argument lists" % (CHUNK_TASK,))
        from ._errors import error_payload

        out = []
        for a in items:
            try:
                try:
                    v = t.fn(*a, **kwargs)
                except TypeError as e:
                    t._check_bind(e, tuple(a), kwargs)
                    raise
                _dumps(v)  # an unencodable value is this item's error, not the chunk's
                out.append([True, v])
            except Exception as e:  # noqa: BLE001 - each item's failure goes back with it
                body = error_payload(e)
                body.pop("skip_retry", None)
                out.append([False, body])
        return out

    return _ChunkTask(chunk, name=CHUNK_TASK)


class _ChunkTask(Task):
    pass


def _is_coroutine_function(fn: Any) -> bool:
    """inspect.iscoroutinefunction without importing inspect (about 3 MiB
    per interpreter): plain functions and methods by their code flags,
    partials unwrapped; anything else asks inspect."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    f = getattr(fn, "__func__", fn)
    code = getattr(f, "__code__", None)
    if code is not None and type(f).__name__ == "function":
        if code.co_flags & _CO_COROUTINE:
            return True
        if getattr(f, "_is_coroutine_marker", None) is None:
            return False
    import inspect

    return inspect.iscoroutinefunction(fn)


def _takes_none(sig: "inspect.Signature") -> bool:
    try:
        sig.bind()
        return True
    except TypeError:
        return False


def _raw(result: Any) -> Payload:
    if result is None:
        return b""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return result
    if isinstance(result, str):
        return result.encode("utf-8")
    raise TypeError("a raw task must return bytes, bytearray, memoryview, str or None, not %s" % type(result).__name__)


def make_task(fn: Callable[..., Any], name: Optional[str] = None, **opts: Any) -> Task:
    return Task(fn, name=name, **opts)


@overload
def task(fn: Callable[..., Any]) -> Task: ...
@overload
def task(name: Optional[str] = None, *, raw: bool = False, json: Optional[bool] = None, queue: Optional[str] = None,
         retries: Optional[int] = None, timeout: Optional[Seconds] = None, retention: Optional[Seconds] = None,
         unique: Any = None) -> Callable[[Callable[..., Any]], Task]: ...


def task(name: Any = None, *, raw: bool = False, json: Optional[bool] = None, queue: Optional[str] = None,  # noqa: A002
         retries: Optional[int] = None, timeout: Optional[Seconds] = None, retention: Optional[Seconds] = None,
         unique: Any = None, _registry: Optional[Dict[str, Task]] = None) -> Any:
    """Register a task: ``@conq.task``, ``@conq.task("name")`` or
    ``@conq.task(name=..., raw=..., queue=..., retries=..., timeout=...,
    retention=..., unique=...)``. The name defaults to the function's
    ``__name__``. The options apply when the task is enqueued from Python
    (``delay``/``apply_async``/``conq.Executor``); other producers set their
    own. ``json=True`` is the default now and accepted for older code;
    ``json=False`` means ``raw=True``."""
    reg = registry if _registry is None else _registry
    if json is False:
        raw = True
    opts = dict(raw=raw, queue=queue, retries=retries, timeout=timeout, retention=retention, unique=unique)
    if callable(name):
        t = Task(name, **opts)
        reg[t.name] = t
        return t

    def register(fn: Callable[..., Any]) -> Task:
        t = Task(fn, name=name, **opts)
        reg[t.name] = t
        return t

    return register
