"""Sub-interpreters: ``conq.run(interpreters=N)`` on Python >= 3.13 serves
CPU-bound tasks on N interpreters of one process, each with its own GIL
(PEP 684), the process announcing N slots: the main interpreter and N-1
isolated sub-interpreters. Calls go to the interpreters over one
interpreter queue (the channel design of PEP 554/734), results come back
over another: ``concurrent.interpreters`` queues on Python >= 3.14, the
low-level ``_interpqueues`` on 3.13.

Why the main interpreter takes calls too: it has imported the task module
already (it is the program), and it would otherwise only read frames and
write answers. An isolated sub-interpreter costs about 10 MiB of resident
memory here (its own copies of every module, its own allocator arenas),
so N-1 of them keep one N-interpreter process below N processes (measured
in docs/benchmarks.md). Its reader and result threads share the main
GIL with the call it runs: they get it at the switch interval (5 ms),
which CPU-bound calls do not notice.

Policy, written down:

- Below Python 3.13 ``run(interpreters=N)`` fails at start naming the
  version. Each interpreter imports the task module (the program's
  ``__main__`` file, under another name so its ``if __name__ ==
  "__main__"`` block does not run again) before the ready frame; a module
  that cannot be imported there (an extension without multi-phase init)
  fails the start naming the module.
- Arguments are copied into the interpreter (bytes are shared by value);
  results are copied back. Every interpreter takes the next call from the
  one queue, so a call never waits behind a busy interpreter while another
  is free.
- Cancelling: a call running on the main interpreter is interrupted as in
  the one-at-a-time mode (SIGINT, raising ``conq.Cancelled`` in it); in a
  sub-interpreter it is cooperative only: ``conq.cancelled()`` is not wired
  into sub-interpreters, a cancelled call runs to its end and the pool
  kills the process after its grace period.
- Calls wait in their queue, polled by each idle interpreter with a
  short, growing sleep (up to 2 ms): a call's latency gains at most that,
  which CPU-bound tasks do not notice. Results wake the main
  interpreter's collector through a pipe, so nothing polls on the main
  GIL while the main interpreter runs a call.
"""

import json
import os
import sys
import threading
import time

MIN_VERSION = (3, 13)


def check_version():
    if sys.version_info < MIN_VERSION:
        raise SystemExit(
            "conq: run(interpreters=N) needs Python 3.13 or newer (isolated sub-interpreters with their own GIL); "
            "this is Python %d.%d.%d" % sys.version_info[:3]
        )


_LOOP = r'''
import sys, time, json
sys.path[:] = list(_conq_path)
if _conq_hl:  # Python >= 3.14: concurrent.interpreters queue objects
    from concurrent.interpreters import QueueEmpty as _Empty
    def _get(q):
        return q.get_nowait()
    def _put(q, x):
        q.put_nowait(x)
else:  # Python 3.13: queue ids of the low-level module
    import _interpqueues as _q
    _Empty = _q.QueueError
    def _get(q):
        return _q.get(q)[0]
    def _put(q, x):
        _q.put(q, x, 0, 1)
import os as _os
import conq._task as _t
_mod = None
try:
    if _conq_modname:
        import importlib
        _mod = importlib.import_module(_conq_modname)
    else:
        import importlib.util
        _spec = importlib.util.spec_from_file_location("__conq_tasks__", _conq_file)
        _mod = importlib.util.module_from_spec(_spec)
        sys.modules["__conq_tasks__"] = _mod
        _spec.loader.exec_module(_mod)
except BaseException as _e:
    raise ImportError("task module %r cannot be imported in a sub-interpreter: %s: %s" % (_conq_modname or _conq_file, type(_e).__name__, _e)) from None
'''

_SERVE = r'''
from conq import _errors as _er
_delay = 0.0001
while True:
    try:
        _item = _get(_conq_req)
    except _Empty:
        time.sleep(_delay)
        _delay = min(_delay * 2, 0.002)
        continue
    _delay = 0.0001
    if _item is None:
        break
    _cid, _name, _payload, _meta = _item
    try:
        _task = _t.registry.get(_name)
        if _task is None and _name == _t.CHUNK_TASK:
            _task = _chunk = globals().get("_chunk") or _t.chunk_task(_t.registry)
        if _task is None:
            raise LookupError("no task named %r" % (_name,))
        _out, _enc = _task.invoke(_payload, json.loads(_meta))
        if _out is None:
            _out = b""
        elif isinstance(_out, str):
            _out = _out.encode()
        _put(_conq_res, (_cid, True, bytes(_out)))
    except BaseException as _e:
        _put(_conq_res, (_cid, False, json.dumps(_er.error_payload(_e), default=str)))
    _os.write(_conq_notify, b"\0")  # wakes the main interpreter's collector
'''


class _Failed(Exception):
    """Code raised in an interpreter; msg is its exception's message."""

    def __init__(self, msg, formatted=""):
        super().__init__(msg)
        self.msg, self.formatted = msg, formatted or msg


class _Low(object):
    """Python 3.13: the low-level _interpreters / _interpqueues modules
    (their signatures changed in 3.14)."""

    hl = False

    def __init__(self):
        import _interpqueues
        import _interpreters

        self.I, self.Q = _interpreters, _interpqueues
        self.Empty = _interpqueues.QueueError

    def queue(self):
        return self.Q.create(0, 0, 1)  # no bound, objects shared or pickled, unbound items removed

    def put(self, q, x):
        self.Q.put(q, x, 0, 1)

    def get(self, q):
        return self.Q.get(q)[0]

    def create(self, shared):
        iid = self.I.create(self.I.new_config("isolated"))
        self.I.set___main___attrs(iid, shared)
        return iid

    def exec(self, h, code):
        exc = self.I.exec(h, code)
        if exc is not None:
            raise _Failed(getattr(exc, "msg", None) or str(exc), getattr(exc, "formatted", ""))

    def destroy(self, h):
        self.I.destroy(h)


class _High(object):
    """Python >= 3.14: concurrent.interpreters (PEP 734)."""

    hl = True

    def __init__(self, mod):
        self.m = mod
        self.Empty = mod.QueueEmpty

    def queue(self):
        return self.m.create_queue()

    def put(self, q, x):
        q.put_nowait(x)

    def get(self, q):
        return q.get_nowait()

    def create(self, shared):
        interp = self.m.create()
        interp.prepare_main(shared)
        return interp

    def exec(self, h, code):
        try:
            h.exec(code)
        except self.m.ExecutionFailed as e:
            info = getattr(e, "excinfo", None)
            raise _Failed(getattr(info, "msg", None) or str(e), getattr(info, "formatted", "") or str(e)) from None

    def destroy(self, h):
        h.close()


def _backend():
    try:
        from concurrent import interpreters
    except ImportError:
        return _Low()
    return _High(interpreters)


class Interpreters(object):
    def __init__(self, server, n):
        check_version()
        b = self._b = _backend()
        self._srv = server
        self._calls = {}
        self._lock = threading.Lock()
        self._req = b.queue()
        self._res = b.queue()
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        modname = spec.name if spec is not None and spec.name != "__main__" else ""
        path = os.path.abspath(getattr(main, "__file__", "") or "")
        if not modname and not path:
            raise SystemExit("conq: run(interpreters=N) needs the tasks in a module file (the program's __main__ has none)")
        self._ids = []
        self._main_call = None  # the call the main interpreter runs
        # Results wake the collector through a pipe: it blocks in read()
        # without the main GIL instead of polling the queue, which would
        # take the GIL from a call the main interpreter runs every few ms
        # (measured: the primes 20-25% slower with a 2 ms poll).
        self._notify_r, self._notify_w = os.pipe()
        shared = {"_conq_path": tuple(sys.path), "_conq_modname": modname, "_conq_file": path,
                  "_conq_req": self._req, "_conq_res": self._res, "_conq_hl": b.hl, "_conq_notify": self._notify_w}
        for _ in range(n - 1):  # the main interpreter is the n-th
            h = b.create(shared)
            self._ids.append(h)
            try:
                b.exec(h, _LOOP)
            except _Failed as e:
                self.close()
                raise SystemExit("conq: %s" % e.msg) from None
        self._threads = [threading.Thread(target=self._run, args=(h,), name="conq-interp-%d" % i, daemon=True)
                         for i, h in enumerate(self._ids)]
        for t in self._threads:
            t.start()
        self._stop = False
        self._collector = threading.Thread(target=self._collect, name="conq-interp-results", daemon=True)
        self._collector.start()

    def _run(self, h):
        try:
            self._b.exec(h, _SERVE)
        except _Failed as e:
            print("conq: a sub-interpreter stopped: %s" % e.formatted, file=sys.stderr, flush=True)
            os._exit(3)

    def submit(self, c):
        with self._lock:
            self._calls[c.id] = c
        self._b.put(self._req, (c.id, c.name, bytes(c.arg), json.dumps(c.meta)))
        # The argument is copied into the queue: a shared-memory view is free again.
        if c.argmap is not None:
            try:
                c.arg.release()
            except BufferError:
                pass

    def cancel(self, c):
        """Interrupt c if the main interpreter runs it; a sub-interpreter's
        call is cooperative only (see the module documentation)."""
        if self._main_call is c:
            self._srv._interrupt_main(c)

    def serve_main(self, done):
        """Take calls from the queue on the main interpreter (the calling
        thread, the main one) until done is set."""
        srv = self._srv
        delay = 0.0001
        while not done.is_set():
            try:
                item = self._b.get(self._req)
            except self._b.Empty:
                time.sleep(delay)
                delay = min(delay * 2, 0.002)
                continue
            delay = 0.0001
            if item is None:  # a sub-interpreter's stop: not ours
                self._b.put(self._req, None)
                continue
            cid, _name, payload, meta = item
            with self._lock:
                c = self._calls.pop(cid, None)
            if c is None:
                continue
            c.arg = payload
            self._main_call = c
            try:
                srv._run_main_call(c)
            finally:
                self._main_call = None

    def _collect(self):
        while not self._stop:
            try:
                os.read(self._notify_r, 4096)  # one byte per result put, or close()'s
            except OSError:
                return
            while True:
                try:
                    cid, ok, body = self._b.get(self._res)
                except self._b.Empty:
                    break
                with self._lock:
                    c = self._calls.pop(cid, None)
                if c is None:
                    continue
                if ok:
                    self._srv._answer(c, body)
                else:
                    self._srv._answer_error(c, json.loads(body))

    def close(self):
        for _ in self._ids:
            try:
                self._b.put(self._req, None)
            except Exception:  # noqa: BLE001
                pass
        for t in getattr(self, "_threads", []):
            t.join(5)
        deadline = time.monotonic() + 5
        while getattr(self, "_threads", None) and self._calls and time.monotonic() < deadline:
            time.sleep(0.005)
        self._stop = True
        try:
            os.write(self._notify_w, b"\0")  # the collector sees _stop
        except (AttributeError, OSError):
            pass
        for h in self._ids:
            try:
                self._b.destroy(h)
            except Exception:  # noqa: BLE001 - still running: the process exit ends it
                pass
