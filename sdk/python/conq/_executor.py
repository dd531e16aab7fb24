"""conq.Executor: concurrent.futures over a conq queue.

``submit``/``map`` enqueue calls; their results come back over streams
(POST /api/v1/results:stream) that complete the standard
``concurrent.futures.Future`` objects, so ``as_completed``, ``wait`` and
``with`` blocks behave as the standard library documents. ``map`` enqueues
its items 256 calls per request, each item its own task (one failure or
crash touches one item); with ``chunksize=N > 1`` each chunk of N items is
one task, as in ProcessPoolExecutor.

``fn`` is what ProcessPoolExecutor can send by reference: a @conq.task, a
task name, a top-level function of ``__main__``, a function or class found
by importing its module (``pow``, ``math.factorial``: sent as
``py:<module>:<qualname>``, run by workers that serve imports, as the
local engine's do), or a functools.partial of these.

Tasks submitted through an Executor are not retried by default
(``retries=0``, as ProcessPoolExecutor runs a call once): a worker process
that dies fails only its own futures, with conq.WorkerCrashed, and the
executor keeps working (a replacement process is started).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import itertools
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from . import _client
from ._errors import ConqError, TaskFailed
from ._task import CHUNK_TASK, Task, import_name

__all__ = ["Executor"]

_MAP_CHUNK = 256
_MAP_CHUNK_ITEMS = 4096  # items per enqueue request when map sends chunks
_STREAM_IDS = 10000  # the server's MaxBatchIDs
_MAX_STREAMS = 4
_STREAM_WAIT = 30.0


def _resolve(fn: Any) -> Tuple[str, tuple, Dict[str, Any]]:
    """The task name of fn and the arguments a functools.partial binds
    (prepended to each call's, its keywords under the call's), as
    ProcessPoolExecutor runs whatever pickle can send by reference."""
    args: tuple = ()
    kwargs: Dict[str, Any] = {}
    while isinstance(fn, functools.partial):
        args = tuple(fn.args) + args
        kwargs = {**fn.keywords, **kwargs}
        fn = fn.func
    return _task_name(fn), args, kwargs


def _task_name(fn: Any) -> str:
    if isinstance(fn, Task):
        return fn.name
    if isinstance(fn, str):
        return fn
    if callable(fn) and getattr(fn, "__module__", None) == "__main__" and "<" not in getattr(fn, "__qualname__", "<"):
        return "__main__:" + fn.__qualname__
    name = import_name(fn) if callable(fn) else None
    if name is not None:
        return name
    raise TypeError("conq.Executor runs @conq.task functions, task names, top-level functions of the __main__ module, "
                    "functions and classes found by importing their module (pow, math.factorial: run by the local "
                    "engine of conq.Executor(), or a worker with conq.run(imports=True)) and functools.partial of "
                    "these; %r is none of these (a lambda, a nested function or a bound method cannot be found by "
                    "name: make it a top-level function, or decorate it with @conq.task)" % (fn,))


def _item_failure(f: cf.Future, name: str, err: Dict[str, Any]) -> TaskFailed:
    """The TaskFailed of one item of a chunk: its error, as the worker
    records a task's ("Type: message", the traceback as its stack)."""
    msg = "%s: %s" % (err.get("type") or "Exception", err.get("message") or "")
    e = {"attempt": 1, "kind": "error", "message": msg}
    if err.get("traceback"):
        e["stack"] = err["traceback"]
    return TaskFailed(getattr(f, "conq_id", ""), name, None, 1, [e])


class Executor(cf.Executor):
    """A concurrent.futures.Executor whose calls run as conq tasks.

    ``Executor(url)`` (or ``client=``) uses a running conq server;
    ``Executor()`` starts a local engine (``conq server --exec`` on the
    embedded broker, serving the caller's ``__main__`` module with
    ``max_workers`` worker processes) and stops it at shutdown. ``queue``,
    ``retries`` (default 0), ``timeout`` and ``retention`` (default 600 s)
    apply to every call.
    """

    def __init__(self, url: Optional[str] = None, max_workers: Optional[int] = None, *, token: Optional[str] = None,
                 client: Optional[_client.Client] = None, queue: Optional[str] = None, retries: int = 0,
                 timeout: Any = None, retention: Any = 600) -> None:
        self._engine = None
        if client is None:
            if url is None:
                from ._local import LocalEngine

                self._engine = LocalEngine(concurrency=max_workers)
                url, token = self._engine.url, self._engine.token
            client = _client.Client(url, token=token)
        self.client = client
        self.url = client.url
        self._opts = {"queue": queue, "retries": retries, "timeout": timeout, "retention": retention}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._futures: Dict[str, cf.Future] = {}
        self._to_cancel: List[str] = []
        self._unwatched: List[str] = []
        self._streams = 0
        self._shutdown = False
        self._stop = False
        self._collector = threading.Thread(target=self._collect, name="conq-executor-results", daemon=True)
        self._collector.start()

    # -- submitting ---------------------------------------------------------

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future:
        """Enqueue ``fn(*args, **kwargs)``; returns a Future of its result."""
        name, pargs, pkw = _resolve(fn)
        return self._submit_many(name, [(pargs + args, {**pkw, **kwargs})])[0]

    def _submit_many(self, name: str, calls: List[Tuple[tuple, dict]]) -> List[cf.Future]:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        ids = self.client.call_many(name, calls, **self._opts)
        futs = []
        with self._lock:
            for tid in ids:
                f = _TaskFuture(self, tid)
                self._futures[tid] = f
                self._unwatched.append(tid)
                futs.append(f)
            self._wake.notify()
        return futs

    def _cancelled(self, f: "_TaskFuture") -> None:
        with self._lock:
            if self._futures.pop(f.conq_id, None) is not None:
                self._to_cancel.append(f.conq_id)
                self._wake.notify()

    def map(self, fn: Any, *iterables: Iterable[Any], timeout: Optional[float] = None,
            chunksize: int = 1) -> Iterator[Any]:
        """Like ``Executor.map``: results in order, ``timeout`` counted from
        the call.

        ``chunksize=1`` (the default): each item is its own task, so one
        failure or crash touches one item; items are enqueued 256 per
        request. ``chunksize=N > 1``: as ProcessPoolExecutor does, the items
        are cut into chunks of N and each chunk is one task (the built-in
        ``conq.chunk``, run by the Python worker SDK), far faster for many
        small items: an exception is raised at its item's place in the
        results (as ``conq.TaskFailed``), and a worker that dies fails every
        item of its chunk (``conq.WorkerCrashed``). The task must be a plain
        JSON task (not ``raw``, not ``async def``)."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        name, pargs, pkw = _resolve(fn)
        end = None if timeout is None else time.monotonic() + timeout
        it = zip(*iterables)
        futs: List[cf.Future] = []
        if chunksize == 1:
            while True:
                batch = [(pargs + tuple(a), dict(pkw)) for a in itertools.islice(it, _MAP_CHUNK)]
                if not batch:
                    break
                futs.extend(self._submit_many(name, batch))
        else:
            per = max(1, _MAP_CHUNK_ITEMS // chunksize)  # chunks per enqueue request
            while True:
                calls = []
                for _ in range(per):
                    items = [list(pargs + tuple(a)) for a in itertools.islice(it, chunksize)]
                    if not items:
                        break
                    # A partial's keywords go once a chunk (a third
                    # argument, left out without them).
                    calls.append(((name, items, pkw) if pkw else (name, items), {}))
                if not calls:
                    break
                futs.extend(self._submit_many(CHUNK_TASK, calls))

        def left() -> Optional[float]:
            return None if end is None else max(0.0, end - time.monotonic())

        def results() -> Iterator[Any]:
            try:
                futs.reverse()
                while futs:
                    f = futs.pop()
                    if chunksize == 1:
                        yield f.result(left())
                        continue
                    for ok, v in f.result(left()):
                        if not ok:
                            raise _item_failure(f, name, v)
                        yield v
            finally:
                for f in futs:
                    f.cancel()

        return results()

    # -- collecting ---------------------------------------------------------

    # Results come back over streams (POST /api/v1/results:stream): the
    # collector thread hands the IDs of new futures, up to _STREAM_IDS at
    # a time, to a stream thread that completes each future as its line
    # arrives. A stream reads each task once on the server however many
    # are outstanding (a polled batch wait re-reads every unfinished one
    # per answer), and at most _MAX_STREAMS run at once: while they are
    # busy, new IDs pile up and the next stream takes them all.

    def _collect(self) -> None:
        c = self.client
        while True:
            with self._lock:
                while not (self._to_cancel or (self._unwatched and self._streams < _MAX_STREAMS)
                           or (self._stop and not self._futures and self._streams == 0)):
                    self._wake.wait()
                cancel, self._to_cancel = self._to_cancel, []
                batch: List[str] = []
                if self._unwatched and self._streams < _MAX_STREAMS:
                    take, self._unwatched = self._unwatched[:_STREAM_IDS], self._unwatched[_STREAM_IDS:]
                    batch = [i for i in take if i in self._futures]
                    if batch:
                        self._streams += 1
                elif self._stop and not self._futures and self._streams == 0 and not cancel:
                    return
            if cancel:
                try:
                    c.cancel_many(cancel)
                except ConqError:
                    pass
            if batch:
                threading.Thread(target=self._stream, args=(batch,), name="conq-executor-stream", daemon=True).start()

    def _stream(self, ids: List[str]) -> None:
        again: List[str] = ids
        try:
            for msg in self.client.stream_results(ids, wait=_STREAM_WAIT):
                if msg.get("end"):
                    again = msg.get("pending") or []
                    if msg.get("error"):
                        time.sleep(0.2)  # a broker error: do not spin
                    break
                tid = msg.get("id")
                with self._lock:
                    f = self._futures.pop(tid, None)
                if f is None:
                    continue  # cancelled (its task with it)
                # Straight from pending to done (a future here is never
                # "running": it may be cancelled until its result comes); a
                # cancel racing with this line wins, as with
                # set_running_or_notify_cancel.
                try:
                    if msg.get("not_found"):
                        f.set_exception(ConqError("task %s vanished from the queue (deleted, or its result was not kept)" % tid))
                    elif msg.get("state") == "completed":
                        f.set_result(_client._decode_result(msg))
                    else:
                        f.set_exception(_client.failure(msg))
                except cf.InvalidStateError:
                    pass
            else:
                again = ids
        except ConqError as e:
            self._fail_all(e)
            time.sleep(0.2)
            again = ids
        finally:
            with self._lock:
                self._unwatched.extend(i for i in again if i in self._futures)
                self._streams -= 1
                self._wake.notify()

    def _fail_all(self, e: Exception) -> None:
        if self._engine is not None and self._engine.proc.poll() is not None:
            with self._lock:
                futs, self._futures = list(self._futures.values()), {}
            for f in futs:
                if f.set_running_or_notify_cancel():
                    f.set_exception(ConqError("the local conq engine died: %s" % self._engine.log_tail()))

    # -- shutting down ------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """As Executor.shutdown; cancel_futures also cancels their tasks in
        the queue (pending ones are removed, running ones asked to stop)."""
        with self._lock:
            self._shutdown = True
            futs = list(self._futures.values())
        if cancel_futures:
            for f in futs:
                f.cancel()
        if wait:
            for f in futs:
                try:
                    f.exception()
                except cf.CancelledError:
                    pass
        with self._lock:
            self._stop = True
            self._wake.notify()
        if wait:
            self._collector.join()
        if self._engine is not None and wait:
            self._engine.stop()
            self._engine = None

    def __del__(self) -> None:
        eng = getattr(self, "_engine", None)
        if eng is not None:
            try:
                eng.stop(timeout=2)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass


class _TaskFuture(cf.Future):
    """A concurrent.futures.Future of one conq task (``conq_id``): a
    successful cancel() also removes the task from the queue (or asks it to
    stop), without a done callback on every future."""

    def __init__(self, executor: Executor, task_id: str) -> None:
        super().__init__()
        self.conq_id = task_id
        self._conq_executor = executor

    def cancel(self) -> bool:
        if not super().cancel():
            return False
        self._conq_executor._cancelled(self)
        return True
