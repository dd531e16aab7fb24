"""Sub-interpreters: ``conq.run(interpreters=N)`` on Python >= 3.13 serves
CPU-bound tasks on N interpreters of one process, each with its own GIL
(PEP 684), the process announcing N slots: the main interpreter and N-1
isolated sub-interpreters. Calls go to the interpreters over one
interpreter queue (``_interpqueues``, the channel design of PEP 554/734),
results come back over another.

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
- Queues are polled with a short, growing sleep (up to 2 ms): a call's
  latency gains at most that, which CPU-bound tasks do not notice.
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
import _interpqueues as _q
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
        _item = _q.get(_conq_req)[0]
    except _q.QueueError:
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
        _q.put(_conq_res, (_cid, True, bytes(_out)), 0, 1)
    except BaseException as _e:
        _q.put(_conq_res, (_cid, False, json.dumps(_er.error_payload(_e), default=str)), 0, 1)
'''


class Interpreters(object):
    def __init__(self, server, n):
        check_version()
        import _interpreters
        import _interpqueues

        self._I, self._Q = _interpreters, _interpqueues
        self._srv = server
        self._calls = {}
        self._lock = threading.Lock()
        self._req = _interpqueues.create(0, 0, 1)
        self._res = _interpqueues.create(0, 0, 1)
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        modname = spec.name if spec is not None and spec.name != "__main__" else ""
        path = os.path.abspath(getattr(main, "__file__", "") or "")
        if not modname and not path:
            raise SystemExit("conq: run(interpreters=N) needs the tasks in a module file (the program's __main__ has none)")
        self._ids = []
        self._main_call = None  # the call the main interpreter runs
        shared = {"_conq_path": tuple(sys.path), "_conq_modname": modname, "_conq_file": path,
                  "_conq_req": self._req, "_conq_res": self._res}
        for _ in range(n - 1):  # the main interpreter is the n-th
            iid = _interpreters.create(_interpreters.new_config("isolated"))
            self._ids.append(iid)
            _interpreters.set___main___attrs(iid, shared)
            exc = _interpreters.exec(iid, _LOOP)
            if exc is not None:
                self.close()
                msg = getattr(exc, "msg", None) or str(exc)
                raise SystemExit("conq: %s" % msg)
        self._threads = [threading.Thread(target=self._run, args=(iid,), name="conq-interp-%d" % iid, daemon=True)
                         for iid in self._ids]
        for t in self._threads:
            t.start()
        self._stop = False
        self._collector = threading.Thread(target=self._collect, name="conq-interp-results", daemon=True)
        self._collector.start()

    def _run(self, iid):
        exc = self._I.exec(iid, _SERVE)
        if exc is not None:
            print("conq: sub-interpreter %d stopped: %s" % (iid, getattr(exc, "formatted", exc)), file=sys.stderr, flush=True)
            os._exit(3)

    def submit(self, c):
        with self._lock:
            self._calls[c.id] = c
        self._Q.put(self._req, (c.id, c.name, bytes(c.arg), json.dumps(c.meta)), 0, 1)
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
                item = self._Q.get(self._req)[0]
            except self._Q.QueueError:
                time.sleep(delay)
                delay = min(delay * 2, 0.002)
                continue
            delay = 0.0001
            if item is None:  # a sub-interpreter's stop: not ours
                self._Q.put(self._req, None, 0, 1)
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
        delay = 0.0001
        while not self._stop:
            try:
                cid, ok, body = self._Q.get(self._res)[0]
            except self._Q.QueueError:
                time.sleep(delay)
                delay = min(delay * 2, 0.002)
                continue
            delay = 0.0001
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
                self._Q.put(self._req, None, 0, 1)
            except Exception:  # noqa: BLE001
                pass
        for t in getattr(self, "_threads", []):
            t.join(5)
        deadline = time.monotonic() + 5
        while getattr(self, "_threads", None) and self._calls and time.monotonic() < deadline:
            time.sleep(0.005)
        self._stop = True
        for iid in self._ids:
            try:
                self._I.destroy(iid)
            except Exception:  # noqa: BLE001 - still running: the process exit ends it
                pass
