"""End to end through a real `conq server --exec` (embedded broker) and
real worker processes. Needs the conq binary: $CONQ_BIN or ./bin/conq
(make build); skipped without it unless CI is set."""

import concurrent.futures as cf
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import conq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIN = os.environ.get("CONQ_BIN") or os.path.join(ROOT, "bin", "conq")
sys.path.insert(0, os.path.join(HERE, "fixtures"))
import e2e_tasks as tasks  # noqa: E402


def start_server(dir, *args):
    """Start `conq server ARGS --listen 127.0.0.1:0` and return (process,
    its URL)."""
    url_file = os.path.join(dir, "url")
    proc = subprocess.Popen([BIN, "server", *args, "--listen", "127.0.0.1:0", "--url-file", url_file,
                             "--log-level", "error"])
    for _ in range(500):
        if os.path.exists(url_file):
            break
        if proc.poll() is not None:
            raise AssertionError("conq server %s exited with %s" % (" ".join(args), proc.returncode))
        time.sleep(0.02)
    with open(url_file) as f:
        return proc, f.read().strip()


@unittest.skipUnless(os.path.exists(BIN) or os.environ.get("CI"), "no conq binary at %s (make build, or set CONQ_BIN)" % BIN)
class EmbeddedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cmd = "%s %s" % (sys.executable, os.path.join(HERE, "fixtures", "e2e_tasks.py"))
        cls.proc, url = start_server(cls.dir, "--exec", cmd, "--concurrency", "2")
        cls.client = conq.connect(url)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(20)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_delay_get_positional_and_keyword(self):
        self.assertEqual(tasks.add.delay(2, 3).get(timeout=20), 5)
        self.assertEqual(tasks.add.delay(a=2, b=3).get(timeout=20), 5)
        self.assertEqual(conq.enqueue("add", 1, kwargs={"b": 2}).get(timeout=20), 3)

    def test_binding_error_fails_once_naming_signature(self):
        with self.assertRaises(conq.TaskFailed) as cm:
            tasks.add.delay(1).get(timeout=20)
        e = cm.exception
        self.assertEqual((e.type, e.attempts), ("TypeError", 1))
        self.assertIn("add(a, b)", e.message)

    def test_timeout_names_the_failed_attempt(self):
        # add(1, "x") raises TypeError in its body (it binds): retried with
        # backoff, so a short wait times out, and says why.
        r = tasks.add.apply_async((1, "x"), retries=3)
        for _ in range(300):
            if r.state == "retry":
                break
            time.sleep(0.05)
        else:
            self.fail("the task never waited to retry (state %s)" % r.state)
        with self.assertRaises(TimeoutError) as cm:
            r.get(timeout=0.1)
        self.assertIn("(state retry); attempt 1 failed: TypeError: unsupported operand", str(cm.exception))
        with self.assertRaises(TimeoutError) as cm:
            self.client.result(r.id, timeout=0.1)
        self.assertIn("attempt 1 failed: TypeError", str(cm.exception))
        r.cancel()

    def test_exception_type_and_traceback(self):
        with self.assertRaises(conq.TaskFailed) as cm:
            tasks.fail.delay("boom").get(timeout=20)
        self.assertEqual((cm.exception.type, cm.exception.message), ("ValueError", "boom"))
        self.assertIn("raise ValueError(msg)", cm.exception.traceback or "")

    def test_executor_map_order_and_crash(self):
        with conq.Executor(client=self.client) as ex:
            self.assertEqual(list(ex.map(tasks.add, range(300), range(300))), [2 * i for i in range(300)])
            fs = [ex.submit(tasks.add, 1, 1), ex.submit(tasks.die, 0), ex.submit(tasks.add, 2, 2)]
            done, _ = cf.wait(fs, timeout=30)
            self.assertEqual(len(done), 3)
            self.assertEqual(fs[0].result(), 2)
            self.assertIsInstance(fs[1].exception(), conq.WorkerCrashed)
            self.assertEqual(fs[2].result(), 4)
            self.assertEqual(ex.submit(tasks.add, 3, 3).result(20), 6)

    def test_as_completed_and_wait_first_exception(self):
        with conq.Executor(client=self.client) as ex:
            fs = [ex.submit(tasks.nap, 2), ex.submit(tasks.fail, "first")]
            done, not_done = cf.wait(fs, timeout=30, return_when=cf.FIRST_EXCEPTION)
            self.assertIn(fs[1], done)
            self.assertIn(fs[0], not_done)  # the nap is still running when the failure arrives
            self.assertIsInstance(fs[1].exception(), conq.TaskFailed)
            got = sorted(f.result() for f in cf.as_completed([ex.submit(tasks.add, i, i) for i in range(20)], timeout=30))
            self.assertEqual(got, [2 * i for i in range(20)])
            self.assertEqual(fs[0].result(30), 2)

    def test_shutdown_cancel_futures_removes_pending_tasks(self):
        ex = conq.Executor(client=self.client)
        busy = [ex.submit(tasks.nap, 1.5) for _ in range(2)]  # both worker slots busy
        for _ in range(200):
            if all(getattr(f, "conq_id", None) and self.client.task(f.conq_id).get("state") == "active" for f in busy):
                break
            time.sleep(0.02)
        pending = [ex.submit(tasks.add, i, i) for i in range(10)]
        for _ in range(200):
            if all(getattr(f, "conq_id", None) for f in pending):
                break
            time.sleep(0.02)
        # Tasks still in the queue at the cancel are removed at once; tasks a
        # worker has already leased (its prefetch) are flagged, and the
        # worker checks the flag before starting a task that waited.
        queued = {f.conq_id for f in pending if self.client.task(f.conq_id).get("state") == "pending"}
        self.assertTrue(queued, "no pending task left to cancel: the test did not keep the workers busy")
        ex.shutdown(wait=False, cancel_futures=True)
        self.assertTrue(all(f.cancelled() for f in pending))
        states = {}
        for f in pending:
            # A task the worker had already prefetched is active until the
            # cancel reaches it; none may complete.
            for _ in range(200):
                states[f.conq_id] = self.client.task(f.conq_id).get("state")
                if states[f.conq_id] != "active":
                    break
                time.sleep(0.05)
        # A cancelled task is dead with a cancellation error, never run,
        # whether it was still queued or already prefetched.
        self.assertEqual(set(states.values()), {"dead"}, "states of the cancelled futures' tasks: %s" % states)
        for f in busy:
            f.cancel()

    def test_map_chunksize_order_and_item_errors(self):
        with conq.Executor(client=self.client) as ex:
            self.assertEqual(list(ex.map(tasks.add, range(25), range(25), chunksize=4)), [2 * i for i in range(25)])
            got = []
            with self.assertRaises(conq.TaskFailed) as cm:
                for v in ex.map(tasks.fail_on, range(10), chunksize=3):
                    got.append(v)
            # Raised at the failing item's place; the items before it came back.
            self.assertEqual(got, [0, 1, 2, 3, 4, 5, 6])
            self.assertEqual((cm.exception.type, cm.exception.message), ("ValueError", "seven"))
            self.assertIn("fail_on", cm.exception.traceback or "")

    def test_retry_after_delays_the_next_attempt(self):
        start = time.monotonic()
        self.assertEqual(tasks.retry_once.delay(1.0).get(timeout=30), 2)
        self.assertGreaterEqual(time.monotonic() - start, 0.9)

    def test_task_enqueues_a_follow_up(self):
        follow_id = tasks.follow_up.delay(20, 22).get(timeout=30)
        self.assertEqual(self.client.result(follow_id, timeout=30), 42)


REDIS_URL = os.environ.get("CONQ_TEST_REDIS_URL")


@unittest.skipUnless(os.path.exists(BIN) or os.environ.get("CI"), "no conq binary at %s (make build, or set CONQ_BIN)" % BIN)
@unittest.skipUnless(REDIS_URL or os.environ.get("CI"), "CONQ_TEST_REDIS_URL is not set (source scripts/redis.sh; redis_start)")
class RedisTest(unittest.TestCase):
    """The same task module served by `conq worker --broker redis://...`
    (as on another machine) answers the same calls, made through a separate
    `conq server --broker` on the same Redis."""

    @classmethod
    def setUpClass(cls):
        if not REDIS_URL:
            raise AssertionError("CI is set but CONQ_TEST_REDIS_URL is not: make test starts a private redis-server")
        cls.dir = tempfile.mkdtemp()
        # A database of its own: the Go tests share this Redis.
        broker = REDIS_URL.rstrip("/").rsplit("/", 1)[0] + "/7" if REDIS_URL.count("/") > 2 else REDIS_URL + "/7"
        subprocess.run(["redis-cli", "-u", broker, "flushdb"], stdout=subprocess.DEVNULL, check=False)
        cmd = "%s %s" % (sys.executable, os.path.join(HERE, "fixtures", "e2e_tasks.py"))
        cls.worker = subprocess.Popen([BIN, "worker", "--broker", broker, "--exec", cmd, "--concurrency", "2",
                                       "--log-level", "error"])
        cls.server, url = start_server(cls.dir, "--broker", broker)
        cls.client = conq.Client(url)

    @classmethod
    def tearDownClass(cls):
        for p in (cls.server, cls.worker):
            p.terminate()
        for p in (cls.server, cls.worker):
            p.wait(20)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_delay_get_map_and_failure(self):
        self.assertEqual(tasks.add.apply_async((2, 3), client=self.client).get(timeout=30), 5)
        with conq.Executor(client=self.client) as ex:
            self.assertEqual(list(ex.map(tasks.add, range(50), range(50))), [2 * i for i in range(50)])
        with self.assertRaises(conq.TaskFailed) as cm:
            tasks.fail.apply_async(("boom",), client=self.client).get(timeout=30)
        self.assertEqual((cm.exception.type, cm.exception.message), ("ValueError", "boom"))


_CALLER = """
import os, sys, time
import conq

def double(x):
    return 2 * x

if __name__ == "__main__":
    ex = conq.Executor(max_workers=1)
    assert list(ex.map(double, [1, 2])) == [2, 4]
    print(ex._engine.proc.pid, flush=True)
    time.sleep(120)
"""


_IMPORTS_HELPER = """
def scale(x, factor=2):
    return x * factor


class Box:
    @staticmethod
    def twice(x):
        return 2 * x
"""

_IMPORTS_CALLER = """
import functools, json, math, operator, sys, urllib.error, urllib.request
import conq


def main():
    sys.path.insert(0, sys.argv[1])  # the helper module: found by the workers through the caller's sys.path
    import helpers
    run(helpers)


def run(helpers):
  with conq.Executor(max_workers=2) as ex:
    out = {
        "pow": ex.submit(pow, 323, 1235, 10007).result(30),
        "factorial": list(ex.map(math.factorial, [3, 4, 5], timeout=30)),
        "int_chunks": list(ex.map(int, ["1", "2", "3"], chunksize=2, timeout=30)),
        "partial": ex.submit(functools.partial(pow, 2), 10).result(30),
        "partial_kw": list(ex.map(functools.partial(helpers.scale, factor=10), [1, 2], timeout=30)),
        "partial_kw_chunks": list(ex.map(functools.partial(helpers.scale, factor=3), [1, 2, 3], chunksize=2, timeout=30)),
        "static": ex.submit(helpers.Box.twice, 5).result(30),
        "error": str(ex.submit(operator.truediv, 1, 0).exception(30)),
    }
    try:
        urllib.request.urlopen(ex.url + "/api/v1/queues", timeout=10)
        out["no_token"] = 200
    except urllib.error.HTTPError as e:
        out["no_token"] = e.code
  print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
"""

_UNGUARDED_CALLER = """
import conq
with conq.Executor(max_workers=1) as ex:
    print(ex.submit(pow, 2, 5).result(30))
"""


@unittest.skipUnless(os.path.exists(BIN) or os.environ.get("CI"), "no conq binary at %s (make build, or set CONQ_BIN)" % BIN)
class LocalEngineTest(unittest.TestCase):
    def write_caller(self, text):
        """Write text as caller.py in a directory of its own; return its path."""
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        script = os.path.join(d, "caller.py")
        with open(script, "w") as f:
            f.write(text)
        return script

    def test_runs_what_process_pool_executor_runs(self):
        # ProcessPoolExecutor runs what pickle can send by reference:
        # builtins (the concurrent.futures docs' submit(pow, 323, 1235)),
        # functions and classes of importable modules, partials of them.
        script = self.write_caller(_IMPORTS_CALLER)
        lib = os.path.join(os.path.dirname(script), "lib")
        os.mkdir(lib)
        with open(os.path.join(lib, "helpers.py"), "w") as f:
            f.write(_IMPORTS_HELPER)
        r = subprocess.run([sys.executable, script, lib], env=dict(os.environ, CONQ_BIN=BIN), capture_output=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        out = json.loads(r.stdout)
        self.assertEqual(out["pow"], pow(323, 1235, 10007))
        self.assertEqual(out["factorial"], [6, 24, 120])
        self.assertEqual(out["int_chunks"], [1, 2, 3])
        self.assertEqual(out["partial"], 1024)
        self.assertEqual(out["partial_kw"], [10, 20])
        self.assertEqual(out["partial_kw_chunks"], [3, 6, 9])
        self.assertEqual(out["static"], 10)
        self.assertIn("ZeroDivisionError: division by zero", out["error"])
        self.assertIn("py:_operator:truediv", out["error"])
        # The engine's API takes the token only its caller holds: another
        # local user could otherwise run any importable function there.
        self.assertEqual(out["no_token"], 401)

    def test_unguarded_main_module_is_named(self):
        # The workers import the caller's main module, as multiprocessing's
        # spawn does: an Executor() outside `if __name__ == "__main__":`
        # would start engines without end; it fails, saying so.
        script = self.write_caller(_UNGUARDED_CALLER)
        r = subprocess.run([sys.executable, script], env=dict(os.environ, CONQ_BIN=BIN), capture_output=True,
                           timeout=120)
        self.assertNotEqual(r.returncode, 0)
        err = r.stderr.decode(errors="replace")
        self.assertIn("start the Executor under `if __name__ ==", err)
        self.assertIn("as multiprocessing requires", err)

    def test_engine_stops_when_its_caller_is_killed(self):
        # conq.Executor() with no URL starts `conq server` as a child; a
        # caller killed by SIGKILL runs no cleanup, and the engine (and its
        # worker processes) must still go.
        script = self.write_caller(_CALLER)
        env = dict(os.environ, CONQ_BIN=BIN)
        caller = subprocess.Popen([sys.executable, script], stdout=subprocess.PIPE, env=env)
        line = caller.stdout.readline()
        self.assertTrue(line.strip().isdigit(), "the caller did not start its engine: %r" % line)
        engine = int(line)
        caller.kill()
        caller.wait(10)
        caller.stdout.close()
        for _ in range(200):
            try:
                os.kill(engine, 0)
            except ProcessLookupError:
                break
            try:
                if os.waitpid(engine, os.WNOHANG)[0] == engine:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.05)
        else:
            os.kill(engine, 9)
            self.fail("the local engine (pid %d) outlived its SIGKILLed caller by 10 s" % engine)


if __name__ == "__main__":
    unittest.main()
