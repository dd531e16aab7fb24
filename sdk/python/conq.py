"""conq worker SDK for Python: serve tasks to a conq process pool.

One module, standard library only, Python >= 3.9. Register tasks, then run::

    import conq

    @conq.task
    def shout(data):                    # raw: bytes-like in, bytes out
        return bytes(data).upper()

    @conq.task("is_prime", json=True)   # JSON value in, JSON value out
    def is_prime(n):
        ...

    if __name__ == "__main__":
        conq.run()

Raw tasks receive ``bytes`` for arguments under 64 KiB and a read-only
``memoryview`` into the SDK's receive buffer above that, so large arguments
are never copied. The view is valid only while the task runs: copy it
(``bytes(view)``) to keep it. A raw task returns ``bytes``, ``bytearray``,
``memoryview``, ``str`` (sent as UTF-8) or ``None`` (empty).

An exception in a task goes back to the caller as an error with its type
name, message and traceback; raise ``TaskError`` to choose the type.

Cancellation is best effort: when the pool cancels the running task, the
SDK raises ``Cancelled`` in it (a SIGINT to the main thread, so blocking
calls such as ``time.sleep`` are interrupted too, but a long computation in
C code is not); ``cancelled()`` lets long loops check cooperatively. The pool
kills workers that do not stop within its grace period.

The protocol (docs/protocol.md) runs on two inherited file descriptors named
by CONQ_WORKER_FDS, never on stdout, so tasks may print freely; the pool
logs the worker's stdout and stderr line by line.
"""

import json as _json
import os
import select
import signal
import struct
import sys
import threading
import time
import traceback
import _thread

__all__ = [
    "task",
    "run",
    "cancelled",
    "Worker",
    "TaskError",
    "Cancelled",
    "ProtocolError",
    "PROTOCOL_VERSION",
]

PROTOCOL_VERSION = 1

# Frame: u32 length (bytes after it), u8 kind, u8 flags (0), u16 name length,
# u64 id, name, payload. Big-endian.
_HEADER = struct.Struct(">IBBHQ")
_PREFIX_SIZE = 4
_HEADER_SIZE = 12
READY, CALL, RESULT, ERROR, CANCEL = 1, 2, 3, 4, 5

_VIEW_THRESHOLD = 64 << 10  # arguments at least this large are passed as memoryview
_SMALL_WRITE = 32 << 10  # frames up to this size are written with one write()
_INITIAL_BUFFER = 256 << 10
_KEEP_BUFFER = 8 << 20  # a larger receive buffer is dropped once it is empty
_DEFAULT_MAX_FRAME = (64 << 20) + _HEADER_SIZE + 0xFFFF


class TaskError(Exception):
    """Raise in a task to report an error with a chosen type name."""

    def __init__(self, type, message, traceback=None):  # noqa: A002 - mirrors the wire field
        super().__init__(message)
        self.type = type
        self.message = message
        self.traceback = traceback


class Cancelled(BaseException):
    """Raised inside a task the pool cancelled. A BaseException, so that
    ``except Exception`` in task code does not swallow it."""


class ProtocolError(Exception):
    """The pool sent something this SDK does not understand."""


class _Task(object):
    __slots__ = ("name", "fn", "json")

    def __init__(self, name, fn, json):
        self.name = name
        self.fn = fn
        self.json = json


class _Reader(object):
    """Reads frames into one preallocated buffer with readinto."""

    def __init__(self, fd, max_frame):
        self._f = os.fdopen(fd, "rb", buffering=0, closefd=False)
        self._max = max_frame
        self._buf = bytearray(_INITIAL_BUFFER)
        self._view = memoryview(self._buf)
        self._small = 0  # consecutive frames much smaller than the buffer
        self._start = 0  # unconsumed data is _buf[_start:_end]
        self._end = 0

    def _ensure(self, n):
        """Make n unconsumed bytes available; False at a clean EOF."""
        have = self._end - self._start
        if have >= n:
            return True
        if self._start + n > len(self._buf):
            if n > len(self._buf):
                buf = bytearray(max(n, 2 * len(self._buf)))
                buf[:have] = self._view[self._start:self._end]
                self._buf, self._view = buf, memoryview(buf)
            else:
                self._view[:have] = self._view[self._start:self._end]
            self._start, self._end = 0, have
        while self._end - self._start < n:
            k = self._f.readinto(self._view[self._end:])
            if not k:
                if self._end == self._start:
                    return False
                raise ProtocolError("request stream ended inside a frame")
            self._end += k
        return True

    def read(self):
        """Return (kind, id, name, payload view) or None at end of stream.
        The payload view is valid until the next read."""
        if self._small >= 64 and self._start == self._end and len(self._buf) > _KEEP_BUFFER:
            # A run of small frames: drop the memory of an earlier huge one.
            self._buf = bytearray(_INITIAL_BUFFER)
            self._view = memoryview(self._buf)
            self._start = self._end = 0
        if not self._ensure(_PREFIX_SIZE + _HEADER_SIZE):
            return None
        length, kind, flags, name_len, fid = _HEADER.unpack_from(self._buf, self._start)
        if length < _HEADER_SIZE or length > self._max:
            raise ProtocolError("bad frame length %d (limit %d)" % (length, self._max))
        if kind not in (CALL, CANCEL) or flags != 0 or name_len > length - _HEADER_SIZE or (name_len == 0) == (kind == CALL):
            raise ProtocolError("bad frame header: kind %d flags %d name length %d" % (kind, flags, name_len))
        if not self._ensure(_PREFIX_SIZE + length):
            raise ProtocolError("request stream ended inside a frame")
        self._small = self._small + 1 if 4 * length < len(self._buf) else 0
        body = self._start + _PREFIX_SIZE + _HEADER_SIZE
        end = self._start + _PREFIX_SIZE + length
        try:
            name = str(self._view[body:body + name_len], "utf-8") if name_len else ""
        except UnicodeDecodeError:
            raise ProtocolError("task name is not valid UTF-8") from None
        payload = self._view[body + name_len:end]
        self._start = end
        if self._start == self._end:
            self._start = self._end = 0
        return kind, fid, name, payload


class _CancelWatcher(object):
    """Turns a cancel frame into a Cancelled exception in the running task.

    While a task runs the pool sends nothing but a cancel frame (or closes
    the stream), so the request fd becoming readable then means "stop". A
    daemon thread checks every TICK seconds; once a task has been running
    for a tick it waits for readability with select() (without reading) and
    interrupts the main thread. The SIGINT handler raises Cancelled only if
    that task is still running, so a late interrupt never lands in the SDK's
    own code. The hot path pays only two attribute stores per task; tasks
    shorter than a tick cannot be cancelled, which costs nothing as they end
    before the pool's grace period anyway.
    """

    TICK = 0.05

    def __init__(self, fd):
        self._fd = fd
        self._main = threading.main_thread().ident
        self.gen = 0  # id of the running task, 0 when idle; written by the main thread
        self.cancel_id = 0
        t = threading.Thread(target=self._loop, name="conq-cancel-watcher", daemon=True)
        t.start()

    def _loop(self):
        prev = 0
        while True:
            time.sleep(self.TICK)
            fid = self.gen
            if not fid or fid != prev:
                prev = fid
                continue
            try:
                while self.gen == fid:
                    readable, _, _ = select.select([self._fd], [], [], self.TICK)
                    if readable and self.gen == fid:
                        self.cancel_id = fid
                        # A real signal also breaks a blocking call such as
                        # time.sleep(); interrupt_main() would not.
                        try:
                            signal.pthread_kill(self._main, signal.SIGINT)
                        except (AttributeError, OSError):
                            _thread.interrupt_main()
                        break
            except (OSError, ValueError):
                return
            while self.gen == fid:  # the fd stays readable until main reads the cancel
                time.sleep(self.TICK)
            prev = 0


class Worker(object):
    """A registry of tasks and the loop that serves them. The module-level
    ``task`` and ``run`` use a default instance."""

    def __init__(self):
        self._tasks = {}
        self._watcher = None
        self._running_id = 0

    def task(self, name=None, json=False):
        """Register a task, as ``@task``, ``@task("name")`` or
        ``@task(name="name", json=True)``. The name defaults to the
        function's ``__name__``; ``json=True`` decodes the argument and
        encodes the result as JSON."""
        if callable(name):
            fn = name
            self._tasks[fn.__name__] = _Task(fn.__name__, fn, False)
            return fn

        def register(fn):
            n = fn.__name__ if name is None else name
            if not isinstance(n, str) or not n or len(n.encode("utf-8")) > 0xFFFF:
                raise ValueError("invalid task name %r" % (n,))
            self._tasks[n] = _Task(n, fn, json)
            return fn

        return register

    def cancelled(self):
        """Whether the running task has been asked to stop."""
        w = self._watcher
        return bool(w is not None and self._running_id and w.cancel_id == self._running_id)

    def run(self):
        """Serve the pool on the descriptors named by CONQ_WORKER_FDS until
        it closes the request stream."""
        fds = os.environ.get("CONQ_WORKER_FDS")
        if not fds:
            raise SystemExit("conq: CONQ_WORKER_FDS is not set; start this program from a conq process pool")
        rfd, wfd = (int(x) for x in fds.split(","))
        max_frame = int(os.environ.get("CONQ_MAX_FRAME") or _DEFAULT_MAX_FRAME)
        try:
            # Printed lines reach the pool's log as they are written.
            sys.stdout.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
        self.serve(rfd, wfd, max_frame)

    def serve(self, rfd, wfd, max_frame=_DEFAULT_MAX_FRAME):
        """Speak the protocol on raw file descriptors. Returns at the end of
        the request stream or when the pool stops reading responses."""
        reader = _Reader(rfd, max_frame)
        self._wfd = wfd
        self._max_frame = max_frame
        in_main = threading.current_thread() is threading.main_thread()
        old_handler = None
        if in_main:
            self._watcher = _CancelWatcher(rfd)
            old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            ready = {"protocol": PROTOCOL_VERSION, "sdk": "conq-python", "pid": os.getpid(), "tasks": sorted(self._tasks)}
            self._send(READY, 0, _json.dumps(ready).encode())
            while True:
                frame = reader.read()
                if frame is None:
                    return
                kind, fid, name, payload = frame
                if kind == CANCEL:
                    continue  # for a task that already answered
                self._call(fid, name, payload)
        except BrokenPipeError:
            return  # the pool is gone
        finally:
            if in_main:
                signal.signal(signal.SIGINT, old_handler)

    def _on_sigint(self, signum, frame):
        w = self._watcher
        if w is not None and w.cancel_id:
            if self._running_id and w.cancel_id == self._running_id:
                w.cancel_id = 0
                raise Cancelled("task cancelled by the pool")
            return  # a cancel that arrived after its task finished
        raise KeyboardInterrupt

    def _call(self, fid, name, payload):
        t = self._tasks.get(name)
        if t is None:
            self._send_error(fid, "UnknownTask", "no task named %r" % (name,), "")
            return
        w = self._watcher
        try:
            if t.json:
                arg = _json.loads(str(payload, "utf-8"))
            elif len(payload) < _VIEW_THRESHOLD:
                arg = bytes(payload)
            else:
                arg = payload.toreadonly()
        except ValueError as e:
            self._send_error(fid, "BadArguments", str(e), "")
            return
        try:
            self._running_id = fid
            if w is not None:
                w.gen = fid
            result = t.fn(arg)
            self._running_id = 0
            if w is not None:
                w.gen = 0
            out = _json.dumps(result).encode() if t.json else _raw(result)
        except Cancelled as e:
            self._running_id = 0
            if w is not None:
                w.gen = 0
            self._send_error(fid, "Cancelled", str(e), "")
            return
        except BaseException as e:  # noqa: B902 - every failure goes back to the caller
            self._running_id = 0
            if w is not None:
                w.gen = 0
            if isinstance(e, (SystemExit, KeyboardInterrupt)):
                raise
            self._send_exception(fid, e)
            return
        if _HEADER_SIZE + len(out) > self._max_frame:
            self._send_error(fid, "PayloadTooLarge", "result of %d bytes exceeds the pool's frame limit of %d" % (len(out), self._max_frame), "")
            return
        self._send(RESULT, fid, out)

    def _send_exception(self, fid, e):
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        if isinstance(e, TaskError):
            self._send_error(fid, e.type, e.message, e.traceback or tb)
        else:
            self._send_error(fid, type(e).__name__, str(e), tb)

    def _send_error(self, fid, typ, message, tb):
        body = {"type": typ, "message": message}
        if tb:
            body["traceback"] = tb
        self._send(ERROR, fid, _json.dumps(body).encode())

    def _send(self, kind, fid, payload):
        n = len(payload)
        hdr = _HEADER.pack(_HEADER_SIZE + n, kind, 0, 0, fid)
        if n <= _SMALL_WRITE:
            data = hdr + payload
            k = os.write(self._wfd, data)
            if k != len(data):
                _write_all(self._wfd, data[k:])
            return
        _write_all(self._wfd, hdr)
        _write_all(self._wfd, payload)


def _raw(result):
    if result is None:
        return b""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return result
    if isinstance(result, str):
        return result.encode("utf-8")
    raise TypeError("a raw task must return bytes, bytearray, memoryview, str or None, not %s" % type(result).__name__)


def _write_all(fd, data):
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


_default = Worker()
task = _default.task
run = _default.run
cancelled = _default.cancelled
