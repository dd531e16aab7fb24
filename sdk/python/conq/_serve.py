"""The worker serve loop: the process-pool protocol (docs/protocol.md,
versions 1 and 2) on the two descriptors named by CONQ_WORKER_FDS.

Execution models (docs/python.md, "Execution models"):

- **one at a time** (plain functions, the default): calls run on the main
  thread, one after the other, as in protocol 1. Cancelling a call raises
  ``Cancelled`` in it (a SIGINT to the main thread interrupts blocking
  calls such as ``time.sleep``; a long C call is not interrupted and the
  pool kills the worker after its grace period).
- **threads** (``run(threads=N)``): plain functions on a pool of N threads,
  N calls at once. Cancelling is cooperative: ``conq.cancelled()`` turns
  true in the cancelled call; the pool kills the worker if it does not
  answer within its grace period.
- **asyncio** (automatic when any task is ``async def``): one event loop
  per process, ``slots`` calls at once (default ``ASYNC_SLOTS`` = 100).
  Cancelling a call cancels its asyncio task. Plain functions of such a
  module run on ``threads`` threads (default 1) beside the loop. The SDK
  warns (logger ``conq``, which reaches stderr by default) when the loop
  is blocked for more than ``BLOCKED_AFTER`` seconds, with the loop
  thread's stack.
- **sub-interpreters** (``run(interpreters=N)``, Python >= 3.13): see
  ``conq._interp``.

In the one-at-a-time mode under a protocol 2 pool, served from the main
thread, the main thread reads each frame itself, runs the call and writes
the answer (no reader thread, no hand-off: two thread wake-ups less per
call); the pool follows each cancel frame with a SIGINT (ready feature
"sigcancel", docs/protocol.md "Cancelling by signal"). Otherwise a reader
thread reads every frame and dispatches it, so cancel and release frames
are seen while calls run; answers are written whole under one lock, from
whichever thread finishes the call.

Policy, written down:

- ``slots`` is the worker's decision: the argument of ``run``, else
  ``CONQ_SLOTS`` (what the pool asks), else 1 (plain functions), the
  thread count (``threads``), ``ASYNC_SLOTS`` (async tasks) or N
  (``interpreters``).
- Protocol 2 is announced only when the pool says it speaks it
  (``CONQ_PROTOCOL`` >= 2); a protocol 1 pool gets exactly protocol 1 (one
  slot, no flags, no release frames).
- "sigcancel" (one at a time, protocol 2, main thread): the SIGINT
  handler reads what the request pipe holds without blocking; a cancel
  frame for the running call raises ``Cancelled`` in it; calls and
  releases read there wait for the end of the call (the handler never
  writes a frame or takes a lock); if the signal lands while the main
  thread is inside the frame parser, a flag makes the loop look again
  before it starts the next call. A SIGINT with no cancel for the running
  call (one racing with the call's end, or a stray one) is ignored: the
  pool stops a worker by closing its request stream. End of stream while a
  call runs cancels it: a thread blocked in poll() on the request pipe
  with no event asked wakes only at hang-up and interrupts the main
  thread. Protocol 1, threads, asyncio, sub-interpreters and a Worker
  served from another thread keep the reader thread (and, for the main
  thread's call, today's SIGINT semantics: a SIGINT with no cancel pending
  is a KeyboardInterrupt).
- Arguments in shared memory reach raw tasks as a read-only memoryview
  over the mapping: no copy, valid until the call answers. A result that
  is (a slice of) that view is answered with the argument's own segment; a
  view from ``conq.result_buffer(n)`` with the SDK's segment; any other
  result of ``CONQ_SHM_THRESHOLD`` bytes or more is copied once into an
  SDK segment; smaller ones go through the pipe.
"""

import contextvars
import json
import os
import signal
import struct
import sys
import threading
import time

from . import _shm

PROTOCOL_VERSION = 2  # the newest this SDK speaks; it speaks 1 to a protocol 1 pool
ASYNC_SLOTS = 100  # default slots of a module with async def tasks
ORDERED_SLOTS = 64  # calls a one-at-a-time worker lets wait in its pipe (the pool takes fewer)
BLOCKED_AFTER = 1.0  # seconds: warn when the event loop is blocked longer
MAX_SLOTS = 65536

_HEADER = struct.Struct(">IBBHQ")  # length, kind, flags, name length, id
_U32 = struct.Struct(">I")
_HEADER_SIZE = 12  # after the length field
READY, CALL, RESULT, ERROR, CANCEL, RELEASE = 1, 2, 3, 4, 5, 6
F_META, F_SHM = 0x01, 0x02
_SMALL_WRITE = 32 << 10
_VIEW_THRESHOLD = 64 << 10  # pipe arguments from this size are memoryviews, not bytes
_DEFAULT_MAX_FRAME = (64 << 20) + _HEADER_SIZE + 0xFFFF



def _log():
    # The "conq" logger, imported on first use: logging (with traceback)
    # is about 2 MiB that a worker interpreter otherwise never needs.
    import logging

    return logging.getLogger("conq")

_current = contextvars.ContextVar("conq_call", default=None)


from ._errors import ProtocolError  # noqa: E402 - one class, raised here and exported by the package
from ._task import _json_value  # noqa: E402 - json.loads by the C scanner (conq imports _task anyway)


def _errors():
    from . import _errors as e

    return e


def _cancelled_type():
    return getattr(_errors(), "Cancelled", None) or _FallbackCancelled


class _FallbackCancelled(BaseException):
    pass


def cancelled():
    """Whether the pool asked the running call to stop. The way to stop a
    call cooperatively in thread mode (``run(threads=N)``), where nothing
    is interrupted; true in the other modes too once a cancel arrived."""
    c = _current.get()
    return bool(c is not None and c.cancelled)


def result_buffer(n):
    """A writable memoryview of n bytes to return from a raw task: when the
    pool takes results in shared memory and n reaches its threshold, the
    view is over one of the SDK's segments and returning it (or a prefix)
    sends the result without any copy; otherwise it is a plain bytearray's
    view. Call it inside a task; do not keep the view after returning."""
    c = _current.get()
    if n < 0:
        raise ValueError("result_buffer(%d): negative size" % n)
    srv = c.server if c is not None else None
    if srv is not None and srv.owner is not None and srv.shm_threshold and n >= srv.shm_threshold:
        seg = srv.owner.take(n)
        c.segments.append(seg)
        return memoryview(seg.mm)[:n]
    return memoryview(bytearray(n))


class _Call(object):
    __slots__ = ("id", "name", "task", "meta", "arg", "argmap", "cancelled", "atask", "segments", "server", "answered")

    def __init__(self, server, fid, name):
        self.server = server
        self.id = fid
        self.name = name
        self.task = None
        self.meta = {}
        self.arg = b""
        self.argmap = None  # the _shm.Mapping the argument lies in
        self.cancelled = False
        self.atask = None  # the asyncio task
        self.segments = []  # result segments taken by result_buffer
        self.answered = False


def _task_mod():
    from . import _task

    return _task


def _registry():
    from . import _task

    return _task.registry


def _env_int(name, default=0):
    v = os.environ.get(name)
    if not v:
        return default
    try:
        return int(v)
    except ValueError:
        raise SystemExit("conq: %s=%r is not an integer" % (name, v)) from None


def run(slots=None, threads=None, interpreters=None, tasks=None, imports=False):
    """Serve the pool on the descriptors named by CONQ_WORKER_FDS until it
    closes the request stream. See the module documentation for the
    execution models the arguments choose. ``imports``: also run names that
    are a function's import path (conq._task.IMPORT_PREFIX)."""
    for name, v in (("slots", slots), ("threads", threads), ("interpreters", interpreters)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1 or v > MAX_SLOTS):
            raise ValueError("conq.run(%s=%r): want an integer from 1 to %d" % (name, v, MAX_SLOTS))
    if interpreters is not None and threads is not None:
        raise ValueError("conq.run: interpreters and threads are separate execution models; give one")
    if imports and interpreters is not None:
        raise ValueError("conq.run: imports=True is not served by sub-interpreters (each imports its tasks' module "
                         "alone); use it with the other execution models")
    if interpreters is not None:
        from . import _interp

        _interp.check_version()
    fds = os.environ.get("CONQ_WORKER_FDS")
    if not fds:
        raise SystemExit("conq: CONQ_WORKER_FDS is not set; start this program from a conq process pool")
    try:
        rfd, wfd = (int(x) for x in fds.split(","))
    except ValueError:
        raise SystemExit("conq: CONQ_WORKER_FDS=%r is not two descriptors" % fds) from None
    try:
        sys.stdout.reconfigure(line_buffering=True)  # printed lines reach the pool's log as written
    except (AttributeError, ValueError):
        pass
    srv = Server(rfd, wfd, _env_int("CONQ_MAX_FRAME", _DEFAULT_MAX_FRAME), _env_int("CONQ_PROTOCOL", 1), tasks)
    srv.imports = bool(imports)
    srv.configure(slots, threads, interpreters)
    srv.serve()


class Worker(object):
    """A registry of tasks and the loop that serves them (the module-level
    ``conq.task``/``conq.run`` use ``conq._task.registry``)."""

    def __init__(self, tasks=None):
        self._tasks = {} if tasks is None else tasks

    def task(self, name=None, **opts):
        """Register a task in this worker, as ``conq.task`` does."""
        from . import _task

        return _task.task(name, _registry=self._tasks, **opts)

    def cancelled(self):
        return cancelled()

    def run(self, slots=None, threads=None, interpreters=None, imports=False):
        run(slots, threads, interpreters, tasks=self._tasks, imports=imports)

    def serve(self, rfd, wfd, max_frame=_DEFAULT_MAX_FRAME, protocol=1, slots=None, threads=None, imports=False):
        """Speak the protocol on raw file descriptors until the end of the
        request stream."""
        srv = Server(rfd, wfd, max_frame, protocol, self._tasks)
        srv.imports = bool(imports)
        srv.configure(slots, threads, None)
        srv.serve()


class Server(object):
    def __init__(self, rfd, wfd, max_frame, pool_protocol, tasks=None):
        self.rfd, self.wfd = rfd, wfd
        self.max_frame = max_frame
        self.version = 2 if pool_protocol >= 2 else 1
        self.tasks = _registry() if tasks is None else tasks
        self._chunk = None  # the built-in chunk task, made on first use
        self.imports = False  # serve import-path names (run(imports=True))
        self._imported = {}  # import-path name -> Task, resolved on first use
        self._wlock = threading.Lock()
        self._calls = {}  # id -> _Call in flight
        self._clock = threading.Lock()
        self.peers = None
        self.owner = None
        self.shm_threshold = 0
        self.mode = "sync"
        self.slots = 1
        self.threads = None
        self.interpreters = None
        self._running = None  # sync mode: the call on the main thread
        self._sync_in_main = False  # sync mode: serving on the main thread (SIGINT can interrupt a call)
        self._stop = False
        self._fatal = None
        self._direct = False  # sync mode, the main thread reading (feature "sigcancel")
        self._parsing = False  # direct: the main thread is inside the frame parser
        self._sig_pending = False  # direct: a SIGINT came while it was
        self._hup = False  # direct: the request pipe hung up (the watcher saw it)
        self._eof = False  # direct: the parser reached the end of the stream
        self._frames = None  # direct: the request stream's _Frames
        self._queue_slots = 1  # direct: the calls it holds, running and queued in the pipe

    # ---- setup ----

    def configure(self, slots, threads, interpreters):
        has_async = any(getattr(t, "is_async", False) for t in self.tasks.values())
        asked = _env_int("CONQ_SLOTS", 0)
        if interpreters is not None:
            self.mode, default = "interp", interpreters
        elif has_async:
            self.mode, default = "async", ASYNC_SLOTS
        elif threads is not None:
            self.mode, default = "threads", threads
        else:
            self.mode, default = "sync", 1
        n = slots or (asked if asked > 0 and self.mode in ("async", "threads") else 0) or default
        if self.mode == "sync":
            # One at a time. Served from the main thread under protocol 2,
            # the calls the pool sends ahead wait in the pipe, in order
            # (feature "ordered"): as many as asked, else ORDERED_SLOTS (the
            # pool keeps at most its Pipeline of them).
            self._queue_slots = max(1, min(MAX_SLOTS, slots or asked or ORDERED_SLOTS))
            n = 1
        if self.mode == "interp":
            n = interpreters  # one call per interpreter
        if self.mode == "threads":
            threads = threads or n
        self.slots = max(1, min(MAX_SLOTS, n))
        self.threads = threads
        self.interpreters = interpreters
        if self.version == 1:
            self.slots = 1
        if self.version >= 2 and _shm.supported():
            self.peers = _shm.Peers()
            self.shm_threshold = max(0, _env_int("CONQ_SHM_THRESHOLD", 0))
            if self.shm_threshold:
                self.owner = _shm.Owner(self._send_release)

    def ready_payload(self):
        body = {"protocol": self.version, "sdk": "conq-python", "pid": os.getpid(), "tasks": sorted(self.tasks)}
        if self.version >= 2:
            body["slots"] = self._queue_slots if self._direct else self.slots
            body["features"] = ["meta"] + (["shm"] if self.peers is not None else []) + (["sigcancel", "ordered"] if self._direct else [])
        return json.dumps(body).encode()

    # ---- frames ----

    def send(self, kind, fid, payload=b"", flags=0):
        n = len(payload)
        hdr = _HEADER.pack(_HEADER_SIZE + n, kind, flags, 0, fid)
        with self._wlock:
            if n <= _SMALL_WRITE:
                _write_all(self.wfd, hdr + bytes(payload))
            else:
                _write_all(self.wfd, hdr)
                _write_all(self.wfd, payload)

    def _send_release(self, sid, byte):
        self.send(RELEASE, sid, bytes((byte,)))

    def _read_frames(self):
        """Yield (kind, flags, id, name, payload) until end of stream."""
        fr = _Frames(self.rfd, self.max_frame, self.version >= 2)
        while True:
            f = fr.next(True)
            if f is _END:
                return
            yield f

    def _parse_call(self, fid, name, flags, payload):
        """A _Call, or None after answering an error."""
        c = _Call(self, fid, name)
        if flags & F_META:
            if len(payload) < 4:
                raise ProtocolError("META part shorter than its length")
            (ml,) = _U32.unpack_from(payload, 0)
            if 4 + ml > len(payload):
                raise ProtocolError("META length %d beyond the payload" % ml)
            raw = payload[4:4 + ml]
            try:
                meta = _json_value(str(raw, "utf-8"))
            except ValueError:
                try:
                    meta = json.loads(bytes(raw))  # what the fast path does not take (other UTFs), or the error
                except ValueError as e:
                    raise ProtocolError("META is not JSON: %s" % e) from None
            if not isinstance(meta, dict):
                raise ProtocolError("META is not a JSON object")
            c.meta = meta
            payload = payload[4 + ml:]
        if flags & F_SHM:
            if len(payload) != _shm.HANDLE_SIZE:
                raise ProtocolError("a SHM payload of %d bytes, not one %d-byte handle" % (len(payload), _shm.HANDLE_SIZE))
            if self.peers is None:
                self._answer_error(c, {"type": "ShmUnavailable", "message": "this worker did not announce shm"})
                return None
            try:
                c.argmap, c.arg = self.peers.view(payload)
            except _shm.ShmUnavailable as e:
                self._answer_error(c, {"type": "ShmUnavailable", "message": str(e)})
                return None
        else:
            c.arg = payload
        c.task = self.tasks.get(name)
        if c.task is None and name.startswith(_task_mod().IMPORT_PREFIX):
            try:
                c.task = self.import_task(name)
            except _errors().TaskNotFound as e:
                self._answer_error(c, _errors().error_payload(e))
                return None
        if c.task is None and name == _task_mod().CHUNK_TASK:
            if self._chunk is None:
                self._chunk = _task_mod().chunk_task(self.tasks, self.import_task)
            c.task = self._chunk
        if c.task is None:
            self._answer_error(c, {"type": "UnknownTask", "message": "no task named %r" % (name,)})
            return None
        return c

    def import_task(self, name):
        """The task of an import-path name (conq._task.IMPORT_PREFIX), found
        once and kept; TaskNotFound when it does not resolve or when this
        worker does not serve imports."""
        t = self._imported.get(name)
        if t is None:
            if not self.imports:
                raise _errors().TaskNotFound(
                    "task %r is a function's import path, which this worker does not run: it serves its registered "
                    "tasks only (conq.run(imports=True) also serves any importable function, for producers you trust; "
                    "conq.Executor() with no URL starts such a worker)" % (name,))
            t = _task_mod().import_task(name)
            self._imported[name] = t
        return t

    # ---- answers ----

    def _finish(self, c):
        if self._direct:
            self._calls.pop(c.id, None)  # one thread; and the SIGINT handler must not meet a held lock
        else:
            with self._clock:
                self._calls.pop(c.id, None)
        if c.argmap is not None and isinstance(c.arg, memoryview):
            try:
                c.arg.release()  # never keep a view past the answer
            except BufferError:
                pass
            c.argmap = None
        c.arg = b""
        for seg in c.segments:
            self.owner.done(seg.id)  # taken, not sent
        c.segments = []

    def _answer_error(self, c, body):
        if c.answered:
            return
        c.answered = True
        try:
            self.send(ERROR, c.id, json.dumps(body, default=str).encode())
        finally:
            self._finish(c)

    def _answer_exception(self, c, exc):
        if isinstance(exc, _cancelled_type()) or _is_asyncio_cancel(exc):
            body = {"type": "Cancelled", "message": str(exc) or "task cancelled by the pool"}
        else:
            try:
                body = _errors().error_payload(exc)
            except Exception:  # noqa: BLE001 - the error report itself must not fail
                body = {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "traceback": "".join(__import__("traceback").format_exception(type(exc), exc, exc.__traceback__)),
                }
        self._answer_error(c, body)

    def _answer(self, c, out):
        """Send the task's result (bytes or a buffer)."""
        if c.answered:
            return
        if type(out) is bytes and not c.segments:
            # The common case (a JSON task's encoded value, small raw
            # bytes): what the checks below decide for bytes, in two tests.
            n = len(out)
            if (self.owner is None or not self.shm_threshold or n < self.shm_threshold) and _HEADER_SIZE + n <= self.max_frame:
                c.answered = True
                try:
                    self.send(RESULT, c.id, out)
                finally:
                    self._finish(c)
                return
        if out is None:
            out = b""
        elif isinstance(out, str):
            out = out.encode("utf-8")
        if not isinstance(out, (bytes, bytearray, memoryview)):
            try:
                out = memoryview(out)
            except TypeError:
                self._answer_exception(c, TypeError("task %r returned %s, not bytes" % (c.name, type(out).__name__)))
                return
        if isinstance(out, memoryview) and (out.ndim != 1 or out.itemsize != 1 or not out.contiguous):
            out = out.cast("B") if out.contiguous else memoryview(out.tobytes())
        n = len(out)
        flags, body = 0, out
        sent_seg = None
        if self.version >= 2 and isinstance(out, memoryview):
            if c.argmap is not None:
                off = _shm.offset_in(c.argmap.mm, out)
                if off is not None:
                    m = c.argmap
                    flags = F_SHM
                    body = _shm.HANDLE.pack(m.pid, m.fd, m.id, m.size, off, n)
            if not flags and self.owner is not None and c.segments:
                seg, off = self.owner.find(out)
                if seg is not None and seg in c.segments:
                    flags, sent_seg = F_SHM, seg
                    body = seg.handle(self.owner.pid, off, n)
        if not flags and self.owner is not None and self.shm_threshold and n >= self.shm_threshold:
            try:
                seg = self.owner.take(n)
            except OSError:
                seg = None  # no memory for a segment: the pipe still works
            if seg is not None:
                seg.mm[:n] = out
                c.segments.append(seg)
                flags, sent_seg = F_SHM, seg
                body = seg.handle(self.owner.pid, 0, n)
        if not flags and _HEADER_SIZE + n > self.max_frame:
            self._answer_error(c, {
                "type": "PayloadTooLarge",
                "message": "result of %d bytes exceeds the pool's frame limit of %d" % (n, self.max_frame),
            })
            return
        if sent_seg is not None:
            sent_seg.sent = True
            c.segments.remove(sent_seg)  # busy until the pool's release done
        c.answered = True
        try:
            self.send(RESULT, c.id, body, flags)
        finally:
            self._finish(c)

    # ---- serving ----

    def serve(self):
        if self.mode == "interp":
            from . import _interp

            self._interp = _interp.Interpreters(self, self.interpreters)  # imports the task module: start errors here
        # Sync mode on the main thread of a protocol 2 pool: the main thread
        # reads the requests itself, and the pool sends SIGINT after each
        # cancel frame (feature "sigcancel"); the handler is in place
        # before the ready frame tells the pool so.
        self._direct = (self.mode == "sync" and self.version >= 2 and hasattr(signal, "pthread_kill")
                        and threading.current_thread() is threading.main_thread())
        old = signal.signal(signal.SIGINT, self._on_sigint_direct) if self._direct else None
        try:
            self.send(READY, 0, self.ready_payload())
            if self._direct:
                self._serve_direct()
            elif self.mode == "sync":
                self._serve_sync()
            elif self.mode == "threads":
                self._serve_threads()
            elif self.mode == "async":
                self._serve_async()
            else:
                self._serve_interp()
            if self._fatal is not None:
                raise self._fatal
        except BrokenPipeError:
            return  # the pool is gone
        finally:
            if self._direct:
                signal.signal(signal.SIGINT, old)
            if self.peers is not None:
                self.peers.close()
            if self.owner is not None:
                self.owner.close()

    # one at a time, the main thread reading the requests (feature "sigcancel")

    def _serve_direct(self):
        """Read a frame, run the call, answer, on this (the main) thread:
        no reader thread, no hand-off. A cancel of the running call comes
        as a cancel frame followed by a SIGINT from the pool, whose handler
        (_on_sigint_direct) reads what the pipe holds; a thread blocked in
        poll() until the pool closes the request stream interrupts a
        running call at end of stream."""
        import collections

        self._pending = pending = collections.deque()  # frames the handler read, in order
        self._early = set()  # ids of pending calls already cancelled
        self._frames = fr = _Frames(self.rfd, self.max_frame, True)  # last: the handler reads once it is set
        watcher = threading.Thread(target=self._watch_hup, name="conq-eof-watch", daemon=True)
        watcher.start()
        while True:
            # _parsing from taking a frame until its call is registered: a
            # SIGINT meanwhile only sets _sig_pending, and the call looks
            # at the pipe before it runs, so no cancel frame is read while
            # its call is in no table.
            c = None
            self._parsing = True
            try:
                if pending:
                    f = pending.popleft()
                else:
                    if self._eof or self._fatal is not None:
                        return
                    try:
                        f = fr.next(True)
                    except Exception as e:  # noqa: BLE001 - serve() raises it
                        self._fatal = e
                        continue
                    if f is _END:
                        self._at_eof()
                        continue
                kind = f[0]
                if kind == CALL:
                    c = self._take_direct_call(f)
                elif kind == CANCEL:
                    x = self._calls.get(f[2])
                    if x is not None:
                        x.cancelled = True  # a stale cancel: its call answered already
                else:
                    self._on_release(f[2], f[4])
            finally:
                self._parsing = False
            if c is not None:
                self._run_direct_call(c)

    def _take_direct_call(self, f):
        """The _Call of a call frame, registered (None if answered with an
        error already)."""
        _kind, flags, fid, name, payload = f
        if fid in self._calls:
            raise ProtocolError("call id %d is already in flight" % fid)
        c = self._parse_call(fid, name, flags, payload)
        if c is None:
            return None
        self._calls[fid] = c
        if self._early and fid in self._early:
            self._early.discard(fid)
            c.cancelled = True
        if self._eof:
            c.cancelled = True
        return c

    def _run_direct_call(self, c):
        try:
            self._running = c
            if self._sig_pending or self._hup:
                self._sig_pending = False
                self._pump()  # a SIGINT (or end of stream) came while this thread was reading
            if c.cancelled:
                raise _cancelled_type()("task cancelled by the pool")
            self._run_sync_call(c)
        except _cancelled_type() as e:  # raised by the handler outside the task, or before it
            self._answer_exception(c, e)
        finally:
            self._running = None

    def _pump(self):
        """Without blocking: take the frames the pipe holds. Cancels act
        now; calls and releases wait in _pending for the serving loop
        (the handler must not send, nor take a lock the interrupted code
        may hold). Errors are kept for serve() to raise."""
        self._parsing = True
        try:
            fr = self._frames
            while self._fatal is None and not self._eof:
                try:
                    f = fr.next(False)
                except Exception as e:  # noqa: BLE001
                    self._fatal = e
                    return
                if f is None:
                    return
                if f is _END:
                    self._at_eof()
                    return
                if f[0] == CANCEL:
                    fid = f[2]
                    c = self._calls.get(fid)
                    if c is not None:
                        c.cancelled = True
                    elif any(p[0] == CALL and p[2] == fid for p in self._pending):
                        self._early.add(fid)
                else:
                    self._pending.append(f)
        finally:
            self._parsing = False

    def _at_eof(self):
        # End of the request stream: the pool went away, and nobody will
        # read what the calls answer: cancel the running one and those
        # waiting (as the reader thread does).
        self._eof = True
        for c in list(self._calls.values()):
            c.cancelled = True

    def _on_sigint_direct(self, signum, frame):
        """SIGINT in the "sigcancel" sync mode: the pool's nudge after a
        cancel frame (or the end-of-stream watcher's). Read what the pipe
        holds; raise Cancelled only if the running call is now cancelled.
        Any other SIGINT (one racing with the end of its call, a stray
        one) is ignored: the worker lives in its own process group, and
        the pool stops it by closing the request stream."""
        if self._parsing or self._frames is None:
            self._sig_pending = True  # the serving loop is reading (or not started): it looks before the next call
            return
        self._pump()
        c = self._running
        if c is not None and c.cancelled and not c.answered:
            raise _cancelled_type()("task cancelled by the pool")

    def _watch_hup(self):
        """Block in poll() for the hang-up of the request pipe (no data
        event asked: it never wakes for a call), then interrupt the main
        thread if a call is running, so that end of stream cancels it."""
        import select

        p = select.poll()
        p.register(self.rfd, 0)  # POLLHUP, POLLERR and POLLNVAL are always reported
        try:
            while not p.poll():
                pass
        except (OSError, ValueError):
            return
        self._hup = True
        if self._running is not None:
            try:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            except (OSError, ValueError):
                pass

    def _on_release(self, fid, payload):
        if len(payload) != 1 or payload[0] not in (_shm.DONE, _shm.GONE):
            raise ProtocolError("a release frame's payload must be one byte, 1 or 2")
        if payload[0] == _shm.DONE:
            if self.owner is not None:
                self.owner.done(fid)
        elif self.peers is not None:
            self.peers.gone(fid)

    def _reader(self, dispatch):
        """Read frames, give calls to dispatch(c), handle cancel and
        release; dispatch(None) at the end."""
        try:
            for kind, flags, fid, name, payload in self._read_frames():
                if kind == CALL:
                    with self._clock:
                        if fid in self._calls:
                            raise ProtocolError("call id %d is already in flight" % fid)
                    c = self._parse_call(fid, name, flags, payload)
                    if c is not None:
                        with self._clock:
                            self._calls[fid] = c
                        dispatch(c)
                elif kind == CANCEL:
                    with self._clock:
                        c = self._calls.get(fid)
                    if c is not None and not c.cancelled:
                        c.cancelled = True
                        self._cancel(c)
                elif kind == RELEASE:
                    self._on_release(fid, payload)
            # End of the request stream: the pool went away, and nobody will
            # read what the calls in flight answer. Cancel them (interrupt
            # the sync call, cancel async ones, flag thread ones) so the
            # worker exits instead of finishing work for no one.
            with self._clock:
                inflight = [c for c in self._calls.values() if not c.cancelled and not c.answered]
            for c in inflight:
                c.cancelled = True
                self._cancel(c)
        except BrokenPipeError:
            pass
        except BaseException as e:  # noqa: B902 - a reader that dies silently would hang the worker
            self._fatal = e  # serve() raises it once the calls in flight are done
        finally:
            dispatch(None)

    def _cancel(self, c):
        if self.mode == "sync":
            # Only a call still running, and only when serving on the main
            # thread: SIGINT interrupts the main thread, which is not the
            # serving one otherwise (a Worker served from a thread cannot
            # interrupt its call; conq.cancelled() still says it).
            self._interrupt_main(c)
        elif self.mode == "async":
            loop = self._loop
            loop.call_soon_threadsafe(self._cancel_async, c)
        elif self.mode == "interp":
            self._interp.cancel(c)
        # threads: cooperative, c.cancelled is what conq.cancelled() reads

    def _run_sync_call(self, c):
        tok = _current.set(c)
        try:
            out, _enc = c.task.invoke(c.arg, c.meta)
            self._answer(c, out)
        except BaseException as e:  # noqa: B902 - every failure goes back to the caller
            if isinstance(e, (SystemExit, KeyboardInterrupt)) and not c.cancelled:
                self._answer_exception(c, e)
                raise
            self._answer_exception(c, e)
        finally:
            _current.reset(tok)

    # one at a time, on the main thread

    def _serve_sync(self):
        import queue

        q = queue.SimpleQueue()
        t = threading.Thread(target=self._reader, args=(q.put,), name="conq-reader", daemon=True)
        in_main = threading.current_thread() is threading.main_thread()
        self._sync_in_main = in_main
        old = signal.signal(signal.SIGINT, self._on_sigint) if in_main else None
        t.start()
        try:
            while True:
                c = q.get()
                if c is None:
                    return
                self._run_main_call(c)
        finally:
            if in_main:
                signal.signal(signal.SIGINT, old)

    def _on_sigint(self, signum, frame):
        c = self._running
        if c is not None and c.cancelled and not c.answered:
            raise _cancelled_type()("task cancelled by the pool")
        with self._clock:
            pending = any(x.cancelled for x in self._calls.values())
        if pending or (c is None and self._calls):
            return  # a cancel that arrived after its call finished
        raise KeyboardInterrupt

    # a thread pool

    def _serve_threads(self):
        from concurrent.futures import ThreadPoolExecutor

        ex = ThreadPoolExecutor(self.threads, thread_name_prefix="conq-task")
        done = threading.Event()

        def dispatch(c):
            if c is None:
                done.set()
            else:
                ex.submit(self._run_sync_call, c)

        t = threading.Thread(target=self._reader, args=(dispatch,), name="conq-reader", daemon=True)
        t.start()
        try:
            while not done.wait(0.5):  # a timeout keeps the main thread responsive to Ctrl-C
                pass
        finally:
            ex.shutdown(wait=True)

    # asyncio

    def _serve_async(self):
        import asyncio

        self._asyncio = asyncio
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._executor = None
        if any(not getattr(t, "is_async", False) for t in self.tasks.values()):
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(self.threads or 1, thread_name_prefix="conq-task")
        stopping = asyncio.Event()
        self._inflight = set()
        self._tick = time.monotonic()

        def dispatch(c):
            try:
                if c is None:
                    loop.call_soon_threadsafe(stopping.set)
                else:
                    loop.call_soon_threadsafe(self._start_async, c)
            except RuntimeError:
                pass  # the loop is closed

        def heartbeat():
            self._tick = time.monotonic()
            loop.call_later(0.25, heartbeat)

        async def main():
            heartbeat()
            t = threading.Thread(target=self._reader, args=(dispatch,), name="conq-reader", daemon=True)
            t.start()
            await stopping.wait()
            while self._inflight:
                await asyncio.gather(*list(self._inflight), return_exceptions=True)

        watchdog = threading.Thread(target=self._watch_loop, name="conq-loop-watchdog", daemon=True)
        watchdog.start()
        try:
            loop.run_until_complete(main())
        finally:
            self._stop = True
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def _start_async(self, c):
        c.atask = self._loop.create_task(self._run_async(c))
        self._inflight.add(c.atask)
        c.atask.add_done_callback(self._inflight.discard)
        if c.cancelled:
            c.atask.cancel()

    async def _run_async(self, c):
        _current.set(c)  # this task's own context
        try:
            if getattr(c.task, "is_async", False):
                out, _enc = await c.task.ainvoke(c.arg, c.meta)
            else:
                ctx = contextvars.copy_context()
                out, _enc = await self._loop.run_in_executor(self._executor, ctx.run, c.task.invoke, c.arg, c.meta)
            self._answer(c, out)
        except BaseException as e:  # noqa: B902 - every failure goes back to the caller
            self._answer_exception(c, e)
            if isinstance(e, (SystemExit, KeyboardInterrupt)):
                raise

    def _cancel_async(self, c):
        if c.atask is not None and not c.atask.done():
            c.atask.cancel()

    def _watch_loop(self):
        """Warn when the event loop has not run its heartbeat for longer
        than BLOCKED_AFTER: a blocking call inside an async def task."""
        main_id = threading.main_thread().ident
        warned = False
        while not self._stop:
            time.sleep(0.2)
            lag = time.monotonic() - self._tick
            if lag <= BLOCKED_AFTER:
                warned = False
                continue
            if warned:
                continue
            warned = True
            frame = sys._current_frames().get(main_id)
            import traceback  # only when warning (1.6 MiB a worker otherwise never loads)

            stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            with self._clock:
                names = sorted({c.name for c in self._calls.values()})
            _log().warning(
                "conq: the asyncio event loop has been blocked for %.1f s: a blocking call in an async def task "
                "(tasks in flight: %s)? Use await, or a plain function with conq.run(threads=N). Loop thread:\n%s",
                lag, ", ".join(names) or "none", stack,
            )

    # sub-interpreters

    def _serve_interp(self):
        done = threading.Event()

        def dispatch(c):
            if c is None:
                done.set()
            else:
                self._interp.submit(c)

        in_main = threading.current_thread() is threading.main_thread()
        self._sync_in_main = in_main
        old = signal.signal(signal.SIGINT, self._on_sigint) if in_main else None
        t = threading.Thread(target=self._reader, args=(dispatch,), name="conq-reader", daemon=True)
        t.start()
        try:
            self._interp.serve_main(done)  # the main interpreter takes calls too
        finally:
            if in_main:
                signal.signal(signal.SIGINT, old)
            self._interp.close()

    def _run_main_call(self, c):
        """Run c as the one-at-a-time mode does (on this thread, SIGINT
        interrupting it when cancelled)."""
        self._running = c
        try:
            try:
                if c.cancelled:
                    raise _cancelled_type()("task cancelled by the pool")
                self._run_sync_call(c)
            finally:
                self._running = None
        except _cancelled_type() as e:  # a late SIGINT, raised between the task and here
            self._answer_exception(c, e)

    def _interrupt_main(self, c):
        if self._running is c and not c.answered and self._sync_in_main:
            try:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            except (AttributeError, OSError):
                import _thread

                _thread.interrupt_main()

_END = object()  # _Frames.next: the request stream ended cleanly
_READ_SIZE = 1 << 16


class _Frames(object):
    """The request stream's frame parser: buffers what it read, so that it
    can be asked for a frame blocking (the serving loop) or without
    blocking (the sync mode's SIGINT handler, which takes only what the
    pipe already holds, possibly part of a frame, and keeps the rest)."""

    __slots__ = ("fd", "max_frame", "v2", "buf", "pos", "eof", "_poll")

    def __init__(self, fd, max_frame, v2):
        self.fd = fd
        self.max_frame = max_frame
        self.v2 = v2
        self.buf = b""
        self.pos = 0
        self.eof = False
        self._poll = None

    def _read(self, block):
        """Read once into the buffer; False when nothing came (not
        blocking and the pipe was empty)."""
        if not block:
            if self._poll is None:
                import select

                self._poll = select.poll()
                self._poll.register(self.fd, select.POLLIN)
            if not self._poll.poll(0):
                return False
        data = os.read(self.fd, _READ_SIZE)
        if not data:
            self.eof = True
            return True
        if self.pos < len(self.buf):
            self.buf = self.buf[self.pos:] + data
        else:
            self.buf = data
        self.pos = 0
        return True

    def next(self, block):
        """(kind, flags, id, name, payload), _END at a clean end of
        stream, or None (not blocking) when no whole frame is buffered."""
        while True:
            buf, pos = self.buf, self.pos
            have = len(buf) - pos
            if have >= 16:
                length, kind, flags, nlen, fid = _HEADER.unpack_from(buf, pos)
                _check_header(length, kind, flags, nlen, self.max_frame, self.v2)
                body_len = length - _HEADER_SIZE
                if have >= 16 + body_len:
                    a = pos + 16
                    self.pos = b = a + body_len
                    if nlen:
                        try:
                            name = str(buf[a:a + nlen], "utf-8")
                        except UnicodeDecodeError:
                            raise ProtocolError("task name is not valid UTF-8") from None
                        a += nlen
                    else:
                        name = ""
                    if body_len >= _VIEW_THRESHOLD:
                        payload = memoryview(bytearray(buf[a:b])).toreadonly()
                    else:
                        payload = buf[a:b]
                    return kind, flags, fid, name, payload
                if block and body_len >= _VIEW_THRESHOLD:
                    return self._read_big(kind, flags, fid, nlen, body_len)
            if self.eof:
                if have == 0:
                    return _END
                if have < 16:
                    raise ProtocolError("request stream ended inside a frame header")
                raise ProtocolError("request stream ended inside a frame")
            if not self._read(block):
                return None

    def _read_big(self, kind, flags, fid, nlen, body_len):
        """A large frame, blocking: its body read straight into its own
        buffer, as a read-only memoryview."""
        body = bytearray(body_len)
        view = memoryview(body)
        got = len(self.buf) - self.pos - 16
        view[:got] = memoryview(self.buf)[self.pos + 16:]
        self.buf, self.pos = b"", 0
        while got < body_len:
            k = os.readv(self.fd, [view[got:]])
            if not k:
                raise ProtocolError("request stream ended inside a frame")
            got += k
        try:
            name = str(view[:nlen], "utf-8") if nlen else ""
        except UnicodeDecodeError:
            raise ProtocolError("task name is not valid UTF-8") from None
        return kind, flags, fid, name, view[nlen:].toreadonly()


def _check_header(length, kind, flags, nlen, max_frame, v2):
    if length < _HEADER_SIZE or length > max_frame:
        raise ProtocolError("bad frame length %d (limit %d)" % (length, max_frame))
    if nlen > length - _HEADER_SIZE:
        raise ProtocolError("name length %d beyond the frame" % nlen)
    if kind == CALL:
        ok_flags = (F_META | F_SHM) if v2 else 0
        if nlen == 0:
            raise ProtocolError("a call without a task name")
    elif kind == CANCEL or (kind == RELEASE and v2):
        ok_flags = 0
        if nlen:
            raise ProtocolError("a frame of kind %d with a name" % kind)
    else:
        raise ProtocolError("unexpected frame kind %d" % kind)
    if flags & ~ok_flags:
        raise ProtocolError("flags 0x%02x not allowed on kind %d" % (flags, kind))



def _is_asyncio_cancel(exc):
    mod = sys.modules.get("asyncio")
    return mod is not None and isinstance(exc, mod.CancelledError)


def _write_all(fd, data):
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
