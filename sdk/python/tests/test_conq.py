"""Unit tests of the conq worker SDK, driving it over real pipes."""

import json
import os
import select
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import unittest

import conq

HEADER = struct.Struct(">IBBHQ")
SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Pool(object):
    """The pool's side of the protocol, for tests."""

    def __init__(self, wfd, rfd):
        self.wfd, self.rfd = wfd, rfd
        self.f = os.fdopen(rfd, "rb", buffering=0, closefd=False)

    def send(self, kind, fid, name="", payload=b""):
        name_b = name.encode()
        data = HEADER.pack(12 + len(name_b) + len(payload), kind, 0, len(name_b), fid) + name_b + payload
        view = memoryview(data)
        while view:
            view = view[os.write(self.wfd, view):]

    # A worker that stops answering fails its test instead of hanging the
    # suite (make test runs it unattended).
    RECV_TIMEOUT = 60.0

    def _exactly(self, n):
        buf = bytearray()
        deadline = time.monotonic() + self.RECV_TIMEOUT
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.rfd], [], [], left)[0]:
                raise AssertionError("the worker sent no frame within %.0f s" % self.RECV_TIMEOUT)
            chunk = self.f.read(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def recv(self):
        hdr = self._exactly(16)
        if hdr is None:
            return None
        length, kind, flags, name_len, fid = HEADER.unpack(hdr)
        body = self._exactly(length - 12) if length > 12 else b""
        return kind, fid, body

    def call(self, fid, name, payload=b""):
        self.send(conq.CALL, fid, name, payload)
        return self.recv()


class WorkerProcess(object):
    """A worker script run as the pool runs it (frames on two pipes), for
    tests of the example modules. Use it as a context manager."""

    def __init__(self, script):
        req_r, self._req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        env = dict(os.environ, CONQ_WORKER_FDS="%d,%d" % (req_r, resp_w))
        self.proc = subprocess.Popen([sys.executable, script], env=env, pass_fds=(req_r, resp_w))
        os.close(req_r)
        os.close(resp_w)
        self.pool = Pool(self._req_w, resp_r)

    def __enter__(self):
        return self.pool

    def __exit__(self, *exc):
        os.close(self._req_w)  # end of input: the worker exits 0
        code = self.proc.wait(5)
        if exc[0] is None and code != 0:
            raise AssertionError("worker exited with %d" % code)
        return False


class ThreadedWorkerTest(unittest.TestCase):
    """Serve on a thread: everything but cancellation, which needs the main
    thread's signal handling (see SubprocessWorkerTest)."""

    def setUp(self):
        self.w = conq.Worker()
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        self.fds = [req_r, req_w, resp_r, resp_w]
        self.pool = Pool(req_w, resp_r)
        self.req_w = req_w
        self.max_frame = 1 << 20
        self.imports = False
        self.thread = None
        self._serve_args = (req_r, resp_w)

    def start(self):
        self.errors = []

        def serve():
            try:
                self.w.serve(*self._serve_args, max_frame=self.max_frame, imports=self.imports)
            except Exception as e:  # noqa: BLE001
                self.errors.append(e)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        kind, fid, body = self.pool.recv()
        self.assertEqual(kind, conq.READY)
        return json.loads(body)

    def tearDown(self):
        try:
            os.close(self.req_w)
        except OSError:
            pass
        if self.thread is not None:
            self.thread.join(5)
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def test_ready_lists_tasks(self):
        @self.w.task(raw=True)
        def b(x):
            return x

        @self.w.task("a", json=True)
        def whatever(x):
            return x

        ready = self.start()
        self.assertEqual(ready["protocol"], 1)  # the test pool speaks protocol 1, and the worker answers in kind
        self.assertEqual(ready["tasks"], ["a", "b"])
        self.assertEqual(ready["sdk"], "conq-python")
        self.assertEqual(ready["pid"], os.getpid())

    def test_raw_small_and_large_arguments(self):
        seen = []

        @self.w.task(raw=True)
        def echo(data):
            seen.append(type(data))
            return data

        self.start()
        self.assertEqual(self.pool.call(1, "echo", b"hello"), (conq.RESULT, 1, b"hello"))
        big = bytes(range(256)) * 1024  # 256 KiB: handed over as a view, echoed without a copy
        self.assertEqual(self.pool.call(2, "echo", big), (conq.RESULT, 2, big))
        self.assertEqual(self.pool.call(3, "echo", b""), (conq.RESULT, 3, b""))
        self.assertEqual(seen, [bytes, memoryview, bytes])

    def test_large_view_is_read_only(self):
        @self.w.task(raw=True)
        def poke(data):
            data[0] = 1
            return b"poked"

        self.start()
        kind, _, body = self.pool.call(1, "poke", b"\0" * (1 << 17))
        self.assertEqual(kind, conq.ERROR)
        self.assertEqual(json.loads(body)["type"], "TypeError")

    def test_results_of_every_raw_type(self):
        @self.w.task(raw=True)
        def conv(data):
            return {b"s": "text", b"n": None, b"b": bytearray(b"ba"), b"m": memoryview(b"mv")}[data]

        @self.w.task(raw=True)
        def bad(data):
            return 42

        self.start()
        self.assertEqual(self.pool.call(1, "conv", b"s")[2], b"text")
        self.assertEqual(self.pool.call(2, "conv", b"n")[2], b"")
        self.assertEqual(self.pool.call(3, "conv", b"b")[2], b"ba")
        self.assertEqual(self.pool.call(4, "conv", b"m")[2], b"mv")
        kind, _, body = self.pool.call(5, "bad")
        self.assertEqual((kind, json.loads(body)["type"]), (conq.ERROR, "TypeError"))

    def test_json_task(self):
        @self.w.task("sum", json=True)
        def total(xs):
            return {"sum": sum(xs)}

        self.start()
        self.assertEqual(self.pool.call(1, "sum", b"[1, 2, 3]"), (conq.RESULT, 1, b'{"sum":6}'))
        kind, _, body = self.pool.call(2, "sum", b"not json")
        self.assertEqual((kind, json.loads(body)["type"]), (conq.ERROR, "TypeError"))  # a binding error, not retried

    def test_import_path_refused_unless_served(self):
        # A name that is a function's import path runs only in a worker
        # that serves imports: anyone who can enqueue could otherwise run
        # any importable function (os.system) in every worker.
        self.start()
        kind, _, body = self.pool.call(1, "py:math:factorial", b"5")
        e = json.loads(body)
        self.assertEqual((kind, e["type"], e.get("skip_retry")), (conq.ERROR, "TaskNotFound", True))
        self.assertIn("imports=True", e["message"])

    def test_import_paths_served(self):
        self.imports = True
        self.start()
        self.assertEqual(self.pool.call(1, "py:math:factorial", b"5"), (conq.RESULT, 1, b"120"))
        self.assertEqual(self.pool.call(2, "py:builtins:abs", b"-3"), (conq.RESULT, 2, b"3"))
        self.assertEqual(self.pool.call(3, "py:os.path:basename", b'"/a/b.txt"'), (conq.RESULT, 3, b'"b.txt"'))
        for fid, (name, why) in enumerate([
            ("py:conq_no_such_module_x:f", "cannot import module 'conq_no_such_module_x'"),
            ("py:math:no_such_function", "module 'math' has no 'no_such_function'"),
            ("py:math:pi", "is a float, not a function"),
            ("py:asyncio:sleep", "async def"),
            ("py:__main__:f", "not an import path"),
            ("py:math", "not an import path"),
        ], start=10):
            kind, _, body = self.pool.call(fid, name, b"1")
            e = json.loads(body)
            self.assertEqual((kind, e["type"], e.get("skip_retry")), (conq.ERROR, "TaskNotFound", True), name)
            self.assertIn(why, e["message"], name)
        # A task's own exception is the task's, not a lookup error.
        kind, _, body = self.pool.call(20, "py:math:factorial", b"-1")
        self.assertEqual((kind, json.loads(body)["type"]), (conq.ERROR, "ValueError"))

    def test_exceptions_carry_type_message_traceback(self):
        @self.w.task(raw=True)
        def boom(data):
            raise ValueError("bad %s" % data.decode())

        @self.w.task(raw=True)
        def typed(data):
            raise conq.TaskError("Custom", "chosen")

        self.start()
        kind, fid, body = self.pool.call(7, "boom", b"input")
        err = json.loads(body)
        self.assertEqual((kind, fid, err["type"], err["message"]), (conq.ERROR, 7, "ValueError", "bad input"))
        self.assertIn("in boom", err["traceback"])
        err = json.loads(self.pool.call(8, "typed")[2])
        self.assertEqual((err["type"], err["message"]), ("Custom", "chosen"))
        err = json.loads(self.pool.call(9, "nope")[2])
        self.assertEqual(err["type"], "UnknownTask")
        # The worker is still serving.
        self.assertEqual(self.pool.call(10, "boom", b"x")[0], conq.ERROR)

    def test_result_over_the_frame_limit(self):
        self.max_frame = 1000

        @self.w.task(raw=True)
        def big(data):
            return b"x" * 2000

        self.start()
        kind, _, body = self.pool.call(1, "big")
        self.assertEqual((kind, json.loads(body)["type"]), (conq.ERROR, "PayloadTooLarge"))

    def test_stale_cancel_is_ignored(self):
        @self.w.task(raw=True)
        def echo(data):
            return data

        self.start()
        self.pool.send(conq.CANCEL, 99)
        self.assertEqual(self.pool.call(100, "echo", b"ok"), (conq.RESULT, 100, b"ok"))

    def test_end_of_stream_returns(self):
        self.start()
        os.close(self.req_w)
        self.thread.join(5)
        self.assertFalse(self.thread.is_alive())
        self.assertEqual(self.errors, [])

    def test_malformed_request_raises(self):
        self.start()
        os.write(self.req_w, b"\xff\xff\xff\xff" + b"\0" * 12)
        self.thread.join(5)
        self.assertFalse(self.thread.is_alive())
        self.assertEqual(len(self.errors), 1)
        self.assertIsInstance(self.errors[0], conq.ProtocolError)

    def test_frame_split_across_reads(self):
        @self.w.task(raw=True)
        def echo(data):
            return data

        self.start()
        frame = HEADER.pack(12 + 4 + 3, conq.CALL, 0, 4, 5) + b"echo" + b"abc"
        for i in range(len(frame)):
            os.write(self.req_w, frame[i:i + 1])
            time.sleep(0.001)
        self.assertEqual(self.pool.recv(), (conq.RESULT, 5, b"abc"))


WORKER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import conq

    @conq.task(raw=True)
    def spin(data):
        while True:  # pure Python: interruptible
            pass

    @conq.task(raw=True)
    def coop(data):
        while not conq.cancelled():
            time.sleep(0.001)
        return b"noticed"

    @conq.task(raw=True)
    def echo(data):
        print("printed to stdout", flush=True)
        return data

    conq.run()
    """
)


class SubprocessWorkerTest(unittest.TestCase):
    """A real worker process running conq.run() in its main thread."""

    EXTRA_ENV = {}  # what the pool adds to the worker's environment

    def setUp(self):
        self.ready = self.start_worker()

    def start_worker(self):
        """Start WORKER_SCRIPT as the pool does; returns its ready frame."""
        req_r, self.req_w = os.pipe()
        self.resp_r, resp_w = os.pipe()
        env = dict(os.environ, CONQ_WORKER_FDS="%d,%d" % (req_r, resp_w), PYTHONPATH=SDK_DIR, **self.EXTRA_ENV)
        env.pop("CONQ_SHM_THRESHOLD", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT], env=env, pass_fds=(req_r, resp_w),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        os.close(req_r)
        os.close(resp_w)
        self.pool = Pool(self.req_w, self.resp_r)
        kind, _, body = self.pool.recv()
        self.assertEqual(kind, conq.READY)
        return json.loads(body)

    def tearDown(self):
        try:
            os.close(self.req_w)
        except OSError:
            pass
        try:
            self.proc.wait(5)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.proc.stderr.close()
            os.close(self.resp_r)

    def test_cancel_interrupts_a_running_task(self):
        self.pool.send(conq.CALL, 1, "spin")
        time.sleep(0.2)
        self.pool.send(conq.CANCEL, 1)
        kind, fid, body = self.pool.recv()
        self.assertEqual((kind, fid, json.loads(body)["type"]), (conq.ERROR, 1, "Cancelled"))
        # Still serving, and the stray cancel did not leak into the next task.
        self.assertEqual(self.pool.call(2, "echo", b"after"), (conq.RESULT, 2, b"after"))

    def test_cooperative_cancel(self):
        self.pool.send(conq.CALL, 1, "coop")
        time.sleep(0.1)
        self.pool.send(conq.CANCEL, 1)
        kind, fid, body = self.pool.recv()
        # Either the check or the interrupt wins; both end the task.
        self.assertEqual(fid, 1)
        self.assertIn((kind, body[:9]), [(conq.RESULT, b"noticed"), (conq.ERROR, b'{"type": ')])

    def test_many_calls_and_stdout_untouched(self):
        for i in range(1, 200):
            self.assertEqual(self.pool.call(i, "echo", b"%d" % i), (conq.RESULT, i, b"%d" % i))
        self.assertTrue(self.proc.stdout.readline().startswith(b"printed to stdout"))

    def test_exit_at_end_of_stream(self):
        os.close(self.req_w)
        self.assertEqual(self.proc.wait(5), 0)

    def test_exit_when_pool_dies_mid_task(self):
        self.pool.send(conq.CALL, 1, "spin")
        time.sleep(0.1)
        os.close(self.req_w)  # the pool went away: the task is interrupted, the worker exits
        self.assertEqual(self.proc.wait(5), 0)


class SigCancelWorkerTest(SubprocessWorkerTest):
    """The same worker under a protocol 2 pool: the main thread reads the
    requests itself (feature "sigcancel") and the pool follows each cancel
    frame with a SIGINT; the tests of SubprocessWorkerTest hold with it."""

    EXTRA_ENV = {"CONQ_PROTOCOL": "2"}

    def setUp(self):
        ready = self.start_worker()
        self.assertEqual(ready["protocol"], 2)
        self.assertIn("sigcancel", ready["features"])
        self.orig_send = self.pool.send
        self.pool.send = self.send_then_signal

    def send_then_signal(self, kind, fid, name="", payload=b""):
        self.orig_send(kind, fid, name, payload)
        if kind == conq.CANCEL:
            os.kill(self.proc.pid, signal.SIGINT)  # what procpool does for a "sigcancel" worker

    def test_cancel_frame_and_signal_together(self):
        # The call and its cancel in one write, the SIGINT right after: the
        # signal may land while the worker is still reading the call.
        for i in range(1, 40, 2):
            call = HEADER.pack(12 + 4, conq.CALL, 0, 4, i) + b"spin"
            cancel = HEADER.pack(12, conq.CANCEL, 0, 0, i)
            os.write(self.req_w, call + cancel)
            os.kill(self.proc.pid, signal.SIGINT)
            kind, fid, body = self.pool.recv()
            self.assertEqual((kind, fid, json.loads(body)["type"]), (conq.ERROR, i, "Cancelled"))
            self.assertEqual(self.pool.call(i + 1, "echo", b"x"), (conq.RESULT, i + 1, b"x"))

    def test_stray_sigint_is_ignored(self):
        os.kill(self.proc.pid, signal.SIGINT)
        time.sleep(0.05)
        self.pool.send(conq.CALL, 1, "coop")
        time.sleep(0.1)
        os.kill(self.proc.pid, signal.SIGINT)  # no cancel frame: the call goes on
        time.sleep(0.1)
        self.assertIsNone(self.proc.poll())
        self.pool.send(conq.CANCEL, 1)
        kind, fid, body = self.pool.recv()
        self.assertEqual(fid, 1)
        self.assertIn((kind, body[:9]), [(conq.RESULT, b"noticed"), (conq.ERROR, b'{"type": ')])
        self.assertEqual(self.pool.call(2, "echo", b"alive"), (conq.RESULT, 2, b"alive"))

    def test_stale_cancel_does_not_touch_the_next_call(self):
        self.assertEqual(self.pool.call(1, "echo", b"a"), (conq.RESULT, 1, b"a"))
        self.pool.send(conq.CANCEL, 1)  # and its SIGINT: call 1 answered already
        self.assertEqual(self.pool.call(2, "echo", b"b"), (conq.RESULT, 2, b"b"))


class DecoratorTest(unittest.TestCase):
    def test_forms(self):
        w = conq.Worker()

        @w.task
        def plain(x):
            return x

        @w.task()
        def empty_call(x):
            return x

        @w.task(name="named", json=True)
        def f(x):
            return x

        self.assertEqual(sorted(w._tasks), ["empty_call", "named", "plain"])
        self.assertFalse(w._tasks["named"].raw)
        self.assertIs(plain(1), 1)  # the function itself is unchanged
        with self.assertRaises(ValueError):
            w.task("")(plain)

    def test_import_names(self):
        import functools
        import math
        import os.path

        from conq import _executor, _task

        def nested(x):
            return x

        self.assertEqual(_task.import_name(math.factorial), "py:math:factorial")
        self.assertEqual(_task.import_name(pow), "py:builtins:pow")
        self.assertEqual(_task.import_name(int), "py:builtins:int")
        self.assertEqual(_task.import_name(os.path.join), "py:%s:join" % os.path.join.__module__)
        self.assertEqual(_task.import_name(conq.Executor.submit), "py:conq._executor:Executor.submit")
        for fn in (lambda x: x, nested, "abc".upper, [].append, functools.partial(pow, 2)):
            self.assertIsNone(_task.import_name(fn), fn)
        # partials: their arguments go first, their keywords under the call's
        p = functools.partial(functools.partial(pow, 2, k=1), 10, k=2, m=3)
        self.assertEqual(_executor._resolve(p), ("py:builtins:pow", (2, 10), {"k": 2, "m": 3}))
        with self.assertRaises(TypeError) as cm:
            _executor._resolve(lambda: 1)
        self.assertIn("lambda", str(cm.exception))

    def test_run_outside_a_pool(self):
        env = dict(os.environ, PYTHONPATH=SDK_DIR)
        env.pop("CONQ_WORKER_FDS", None)
        r = subprocess.run([sys.executable, "-c", "import conq; conq.run()"], env=env, capture_output=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"CONQ_WORKER_FDS", r.stderr)


if __name__ == "__main__":
    unittest.main()


class ReaderFuzzTest(unittest.TestCase):
    """Random and mutated input never escapes as anything but a frame, a
    clean end of stream or ProtocolError (the Go side has FuzzDecodeFrame)."""

    def frames_of(self, data):
        r, w = os.pipe()
        try:
            os.write(w, data)
            os.close(w)
            w = -1
            server = conq._serve.Server(r, -1, 1 << 16, 1, {})  # protocol 1: no flags allowed
            out = []
            try:
                for kind, _flags, fid, name, payload in server._read_frames():
                    out.append((kind, fid, name, bytes(payload)))
            except conq.ProtocolError:
                return out, True
            return out, False
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    def test_random_and_mutated_input(self):
        import random

        rng = random.Random(1)
        good = HEADER.pack(12 + 4 + 3, conq.CALL, 0, 4, 9) + b"echo" + b"abc"
        self.assertEqual(self.frames_of(good), ([(conq.CALL, 9, "echo", b"abc")], False))
        for i in range(2000):
            if i % 2:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
            else:
                data = bytearray(good * 2)
                for _ in range(rng.randrange(1, 4)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                data = bytes(data)
            frames, _ = self.frames_of(data)
            for kind, fid, name, payload in frames:
                self.assertIn(kind, (conq.CALL, conq.CANCEL))
                self.assertEqual(kind == conq.CALL, bool(name))
