"""Shared-memory segments of the conq process protocol (docs/protocol.md,
"Shared memory"), Linux only, standard library only.

Two sides:

- ``Peers``: the pool's segments, mapped read-only here by opening
  ``/proc/<pid>/fd/<fd>``, kept by segment id across calls (the pool reuses
  its segments, so a steady stream of large arguments maps nothing), and
  forgotten when the pool sends ``release`` gone.
- ``Owner``: this process's own segments for results (memfd, sealed against
  resizing as the protocol requires, mapped with MAP_POPULATE), busy from
  the answer until the pool sends ``release`` done, then reused.

Every mapping and descriptor is closed when the process ends, so a worker
that dies leaks nothing here; the pool unmaps what it mapped of ours.
"""

import fcntl
import mmap
import os
import struct
import sys
import threading

HANDLE = struct.Struct(">IIQQQQ")  # pid, fd, id, size, offset, length
HANDLE_SIZE = HANDLE.size  # 40
DONE, GONE = 1, 2

_PAGE = mmap.PAGESIZE
_KEEP_SEGMENTS = 4  # free result segments kept for reuse
_KEEP_BYTES = 256 << 20


class ShmUnavailable(Exception):
    """The segment a handle names cannot be mapped."""


def supported():
    """Whether this process can create and map segments (Linux with memfd
    and /proc)."""
    return (
        sys.platform.startswith("linux")
        and hasattr(os, "memfd_create")
        and hasattr(fcntl, "F_ADD_SEALS")
        and os.path.isdir("/proc/self/fd")
    )


def page_round(n):
    if n <= 0:
        return _PAGE
    return (n + _PAGE - 1) // _PAGE * _PAGE


# ---- addresses of buffers, to recognise views into a mapping ----

_ctypes = None


def _buffer_address(obj):
    """The address of obj's buffer (any object with the buffer protocol,
    read-only ones too), or None if ctypes is unavailable."""
    global _ctypes
    if _ctypes is None:
        try:
            import ctypes

            class PyBuffer(ctypes.Structure):
                _fields_ = [
                    ("buf", ctypes.c_void_p),
                    ("obj", ctypes.c_void_p),
                    ("len", ctypes.c_ssize_t),
                    ("itemsize", ctypes.c_ssize_t),
                    ("readonly", ctypes.c_int),
                    ("ndim", ctypes.c_int),
                    ("format", ctypes.c_char_p),
                    ("shape", ctypes.c_void_p),
                    ("strides", ctypes.c_void_p),
                    ("suboffsets", ctypes.c_void_p),
                    ("internal", ctypes.c_void_p),
                ]

            get = ctypes.pythonapi.PyObject_GetBuffer
            get.argtypes = [ctypes.py_object, ctypes.POINTER(PyBuffer), ctypes.c_int]
            get.restype = ctypes.c_int
            rel = ctypes.pythonapi.PyBuffer_Release
            rel.argtypes = [ctypes.POINTER(PyBuffer)]
            rel.restype = None
            _ctypes = (ctypes, PyBuffer, get, rel)
        except Exception:  # noqa: BLE001 - no ctypes (or a sub-interpreter without it): copy instead
            _ctypes = False
    if not _ctypes:
        return None
    ctypes, PyBuffer, get, rel = _ctypes
    b = PyBuffer()
    if get(obj, ctypes.byref(b), 0) != 0:  # PyBUF_SIMPLE; raises on failure
        return None
    try:
        return b.buf
    finally:
        rel(ctypes.byref(b))


def offset_in(base, view):
    """Where the contiguous memoryview ``view`` starts within the buffer
    ``base`` (an mmap), or None when it does not lie inside it."""
    if not isinstance(view, memoryview) or not view.contiguous:
        return None
    try:
        if view.obj is not base:
            return None
        b = _buffer_address(base)
        v = _buffer_address(view)
    except (BufferError, ValueError, TypeError):
        return None
    if b is None or v is None:
        return None
    off = v - b
    if off < 0 or off + view.nbytes > len(base):
        return None
    return off


# ---- the pool's segments, mapped here ----


class Mapping(object):
    __slots__ = ("id", "pid", "fd", "size", "mm", "view")

    def __init__(self, sid, pid, fd, size, mm):
        self.id, self.pid, self.fd, self.size, self.mm = sid, pid, fd, size, mm
        self.view = memoryview(mm)  # read-only: the mmap is ACCESS_READ


def _close_mapping(m):
    """Unmap m; False while a task still holds a view of it."""
    try:
        m.view.release()
        m.mm.close()
        return True
    except BufferError:
        return False


class Peers(object):
    """The pool's segments mapped in this process, by segment id."""

    def __init__(self):
        self._lock = threading.Lock()
        self._maps = {}
        self._doomed = []  # released by the pool, still viewed by a task

    def view(self, handle):
        """Map (once) the segment ``handle`` (40 bytes) names and return
        ``(mapping, read-only memoryview of the bytes)``."""
        if len(handle) != HANDLE_SIZE:
            raise ShmUnavailable("a shared-memory handle is %d bytes, got %d" % (HANDLE_SIZE, len(handle)))
        pid, fd, sid, size, off, length = HANDLE.unpack(bytes(handle))
        if sid == 0 or size == 0 or off + length > size or size > 1 << 40:
            raise ShmUnavailable("bad handle: segment %d of %d bytes, bytes %d..%d" % (sid, size, off, off + length))
        with self._lock:
            m = self._maps.get(sid)
            if m is not None and (m.pid != pid or m.fd != fd or m.size != size):
                # The owner reused an id for another segment: protocol says
                # ids are unique, so treat it as a new one.
                self._drop_locked(m)
                m = None
            if m is None:
                m = self._map(pid, fd, sid, size)
                self._maps[sid] = m
        return m, m.view[off:off + length]

    @staticmethod
    def _map(pid, fd, sid, size):
        path = "/proc/%d/fd/%d" % (pid, fd)
        try:
            f = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise ShmUnavailable("opening %s: %s" % (path, e.strerror)) from None
        try:
            try:
                seals = fcntl.fcntl(f, fcntl.F_GET_SEALS)
            except OSError:
                seals = 0
            if not seals & fcntl.F_SEAL_SHRINK:
                raise ShmUnavailable("%s is not a memfd sealed against shrinking" % path)
            have = os.fstat(f).st_size
            if have < size:
                raise ShmUnavailable("%s holds %d bytes, the handle says %d" % (path, have, size))
            try:
                mm = mmap.mmap(f, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), prot=mmap.PROT_READ)
            except (OSError, ValueError) as e:
                raise ShmUnavailable("mapping %s: %s" % (path, e)) from None
        finally:
            os.close(f)  # the mapping keeps the segment
        return Mapping(sid, pid, fd, size, mm)

    def gone(self, sid):
        """The pool destroyed segment sid: unmap it (later, if a task still
        holds a view)."""
        with self._lock:
            m = self._maps.pop(sid, None)
            if m is not None:
                self._drop_locked(m)
            self._retry_locked()

    def _drop_locked(self, m):
        if not _close_mapping(m):
            self._doomed.append(m)

    def _retry_locked(self):
        if self._doomed:
            self._doomed = [m for m in self._doomed if not _close_mapping(m)]

    def tidy(self):
        with self._lock:
            self._retry_locked()

    def close(self):
        with self._lock:
            for m in self._maps.values():
                self._drop_locked(m)
            self._maps.clear()
            self._retry_locked()

    def count(self):
        with self._lock:
            return len(self._maps) + len(self._doomed)


# ---- this process's segments, for results ----


class Segment(object):
    __slots__ = ("id", "fd", "size", "mm", "sent", "busy")

    def __init__(self, sid, size):
        fd = os.memfd_create("conq-shm", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            self.mm = mmap.mmap(
                fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), prot=mmap.PROT_READ | mmap.PROT_WRITE
            )
        except BaseException:
            os.close(fd)
            raise
        self.id, self.fd, self.size = sid, fd, size
        self.sent = False  # the pool got a handle: it may have it mapped
        self.busy = False

    def handle(self, pid, off, length):
        return HANDLE.pack(pid, self.fd, self.id, self.size, off, length)

    def close(self):
        try:
            self.mm.close()
        except BufferError:
            return False  # a view is still exported; keep it
        os.close(self.fd)
        return True


class Owner(object):
    """Result segments of this process. ``send_release(id, byte)`` is
    called (without the lock) to tell the pool a segment it may have
    mapped is gone."""

    def __init__(self, send_release):
        self._lock = threading.Lock()
        self._ids = 0
        self._free = []
        self._busy = {}  # id -> Segment, from take() until release done
        self._send_release = send_release
        self.pid = os.getpid()

    def take(self, n):
        """A segment of at least n bytes, marked busy."""
        with self._lock:
            best = None
            for s in self._free:
                if s.size >= n and (best is None or s.size < best.size):
                    best = s
            if best is not None:
                self._free.remove(best)
                best.busy = True
                self._busy[best.id] = best
                return best
            self._ids += 1
            sid = self._ids
        s = Segment(sid, page_round(n))
        s.busy = True
        with self._lock:
            self._busy[sid] = s
        return s

    def find(self, view):
        """The busy segment whose mapping ``view`` lies in, and its offset."""
        if not isinstance(view, memoryview):
            return None, None
        obj = view.obj
        with self._lock:
            for s in self._busy.values():
                if s.mm is obj:
                    off = offset_in(s.mm, view)
                    if off is not None:
                        return s, off
        return None, None

    def done(self, sid):
        """The pool is done with segment sid (release 1, or the answer that
        would have used it was not sent): reuse it or destroy it."""
        gone = None
        with self._lock:
            s = self._busy.pop(sid, None)
            if s is None:
                return
            s.busy = False
            size = sum(x.size for x in self._free)
            if len(self._free) < _KEEP_SEGMENTS and size + s.size <= _KEEP_BYTES:
                self._free.append(s)
                return
            gone = s
        self._destroy(gone)

    def _destroy(self, s):
        sent = s.sent
        if s.close() and sent:
            try:
                self._send_release(s.id, GONE)
            except OSError:
                pass

    def close(self):
        with self._lock:
            segs = self._free + list(self._busy.values())
            self._free, self._busy = [], {}
        for s in segs:
            s.close()

    def count(self):
        with self._lock:
            return len(self._free) + len(self._busy)
