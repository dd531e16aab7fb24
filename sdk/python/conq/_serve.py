"""The worker side: serve the registered tasks to a conq process pool over
the pipe protocol (docs/protocol.md), versions 1 and 2 (META; one slot).

The protocol runs on two inherited file descriptors named by
CONQ_WORKER_FDS, never on stdout, so tasks may print freely; the pool logs
the worker's stdout and stderr line by line.

Cancellation is best effort: when the pool cancels the running task, the
SDK raises ``Cancelled`` in it (a SIGINT to the main thread, so blocking
calls such as ``time.sleep`` are interrupted too, but a long computation in
C code is not); ``cancelled()`` lets long loops check cooperatively. The pool
kills workers that do not stop within its grace period.

(Owned by the `pyexec` work: slots, threads, asyncio and SHM land here.)
"""

import asyncio
import json as _json
import os
import select
import signal
import struct
import sys
import threading
import time
import _thread

from . import _task as _task_mod
from ._errors import Cancelled, ProtocolError, error_payload

PROTOCOL_VERSION = 2

# Frame: u32 length (bytes after it), u8 kind, u8 flags, u16 name length,
# u64 id, name, payload. Big-endian.
_HEADER = struct.Struct(">IBBHQ")
_U32 = struct.Struct(">I")
_PREFIX_SIZE = 4
_HEADER_SIZE = 12
READY, CALL, RESULT, ERROR, CANCEL = 1, 2, 3, 4, 5
FLAG_META = 0x01

_SMALL_WRITE = 32 << 10  # frames up to this size are written with one write()
_INITIAL_BUFFER = 256 << 10
_KEEP_BUFFER = 8 << 20  # a larger receive buffer is dropped once it is empty
_DEFAULT_MAX_FRAME = (64 << 20) + _HEADER_SIZE + 0xFFFF


class _Reader(object):
    """Reads frames into one preallocated buffer with readinto."""

    def __init__(self, fd, max_frame, v2=False):
        self._v2 = v2
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
        """Return (kind, id, name, payload view, META dict or None) or None at end of stream.
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
        if kind not in (CALL, CANCEL) or (flags != 0 and not (self._v2 and kind == CALL and flags == FLAG_META)) or name_len > length - _HEADER_SIZE or (name_len == 0) == (kind == CALL):
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
        meta = None
        if flags & FLAG_META:
            if len(payload) < 4:
                raise ProtocolError("META payload of %d bytes has no length prefix" % len(payload))
            (mlen,) = _U32.unpack_from(payload, 0)
            if mlen > len(payload) - 4:
                raise ProtocolError("META length %d overruns the payload of %d bytes" % (mlen, len(payload)))
            try:
                meta = _json.loads(str(payload[4:4 + mlen], "utf-8"))
            except (ValueError, UnicodeDecodeError):
                meta = None
            if not isinstance(meta, dict):
                raise ProtocolError("META is not a JSON object")
            payload = payload[4 + mlen:]
        return kind, fid, name, payload, meta


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
    ``conq.task`` and ``conq.run`` use a default instance over
    ``conq._task.registry``."""

    def __init__(self, tasks=None):
        self._tasks = {} if tasks is None else tasks
        self._watcher = None
        self._running_id = 0
        self._v2 = False

    def task(self, name=None, **opts):
        """Register a task in this worker, as ``conq.task`` does."""
        return _task_mod.task(name, _registry=self._tasks, **opts)

    def cancelled(self):
        """Whether the running task has been asked to stop."""
        w = self._watcher
        return bool(w is not None and self._running_id and w.cancel_id == self._running_id)

    def run(self, slots=None, threads=None, interpreters=None):
        """Serve the pool on the descriptors named by CONQ_WORKER_FDS until
        it closes the request stream. (slots/threads/interpreters: one call
        at a time for now.)"""
        fds = os.environ.get("CONQ_WORKER_FDS")
        if not fds:
            raise SystemExit("conq: CONQ_WORKER_FDS is not set; start this program from a conq process pool "
                             "(conq worker --exec, conq server --exec, procpool)")
        rfd, wfd = (int(x) for x in fds.split(","))
        max_frame = int(os.environ.get("CONQ_MAX_FRAME") or _DEFAULT_MAX_FRAME)
        try:
            # Printed lines reach the pool's log as they are written.
            sys.stdout.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
        try:
            proto = int(os.environ.get("CONQ_PROTOCOL") or "1")
        except ValueError:
            proto = 1
        self.serve(rfd, wfd, max_frame, protocol=2 if proto >= 2 else 1)

    def serve(self, rfd, wfd, max_frame=_DEFAULT_MAX_FRAME, protocol=1):
        """Speak the protocol on raw file descriptors. Returns at the end of
        the request stream or when the pool stops reading responses."""
        self._v2 = protocol >= 2
        reader = _Reader(rfd, max_frame, v2=self._v2)
        self._wfd = wfd
        self._max_frame = max_frame
        in_main = threading.current_thread() is threading.main_thread()
        old_handler = None
        if in_main:
            self._watcher = _CancelWatcher(rfd)
            old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            ready = {"protocol": 2 if self._v2 else 1, "sdk": "conq-python", "pid": os.getpid(), "tasks": sorted(self._tasks)}
            if self._v2:
                ready["slots"] = 1
                ready["features"] = ["meta"]
            self._send(READY, 0, _json.dumps(ready).encode())
            while True:
                frame = reader.read()
                if frame is None:
                    return
                kind, fid, name, payload, meta = frame
                if kind == CANCEL:
                    continue  # for a task that already answered
                self._call(fid, name, payload, meta)
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

    def _call(self, fid, name, payload, meta=None):
        t = self._tasks.get(name)
        if t is None:
            self._send_error(fid, {"type": "UnknownTask", "message": "no task named %r" % (name,)})
            return
        w = self._watcher
        try:
            self._running_id = fid
            if w is not None:
                w.gen = fid
            if t.is_async:
                out, _enc = asyncio.run(t.ainvoke(payload, meta))
            else:
                out, _enc = t.invoke(payload, meta)
            self._running_id = 0
            if w is not None:
                w.gen = 0
        except Cancelled as e:
            self._running_id = 0
            if w is not None:
                w.gen = 0
            self._send_error(fid, {"type": "Cancelled", "message": str(e)})
            return
        except BaseException as e:  # noqa: B902 - every failure goes back to the caller
            self._running_id = 0
            if w is not None:
                w.gen = 0
            if isinstance(e, (SystemExit, KeyboardInterrupt)):
                raise
            self._send_error(fid, error_payload(e))
            return
        if _HEADER_SIZE + len(out) > self._max_frame:
            self._send_error(fid, {"type": "PayloadTooLarge", "message": "result of %d bytes exceeds the pool's frame limit of %d" % (len(out), self._max_frame)})
            return
        self._send(RESULT, fid, out)

    def _send_error(self, fid, body):
        if not self._v2:
            # Version 1 has no retry hints: SkipRetry is said by the type.
            body = {k: v for k, v in body.items() if k in ("type", "message", "traceback")}
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


def _write_all(fd, data):
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


default_worker = Worker(_task_mod.registry)


def run(slots=None, threads=None, interpreters=None):
    """Serve the tasks registered with ``@conq.task`` (see Worker.run)."""
    default_worker.run(slots=slots, threads=threads, interpreters=interpreters)


def cancelled():
    """Whether the running task has been asked to stop."""
    return default_worker.cancelled()
