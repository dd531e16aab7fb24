"""Celery's canvas (signatures, chain, group, chord) end to end through a
real `conq server --exec` (embedded broker, which has workflows) and real
Python worker processes. Needs the conq binary: $CONQ_BIN or ./bin/conq
(make build); skipped without it unless CI is set."""

import os
import pickle
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
import canvas_tasks as tasks  # noqa: E402
from canvas_tasks import add, boom, mul, nap, pair, tsum  # noqa: E402


class SignatureTest(unittest.TestCase):
    """What builds without a server: the JSON a canvas sends."""

    def test_signature_and_options(self):
        s = add.s(2, 2)
        self.assertIsInstance(s, conq.Signature)
        self.assertEqual((s.name, s.args, s.kwargs), ("add", (2, 2), {}))
        self.assertEqual(s(), 4)  # called: runs here, like Celery's
        self.assertEqual(repr(mul.s(4)), "mul.s(4)")
        self.assertIs(s.set(queue="math", retries=2), s)
        self.assertEqual(s.flow(), {"flow": {"task": {"kind": "add", "args": [2, 2], "kwargs": {}, "queue": "math", "max_retries": 2}}})
        self.assertEqual(conq.signature(add, (1,), {"b": 2}, timeout=30).flow()["flow"]["task"],
                         {"kind": "add", "args": [1], "kwargs": {"b": 2}, "timeout": 30})
        self.assertEqual(conq.signature("other.kind", args=[1]).flow()["flow"]["task"]["kind"], "other.kind")
        self.assertEqual(s.clone((1,)).args, (1, 2, 2))
        for bad in ("task_id", "unique", "countdown"):
            with self.assertRaises(ValueError):
                add.s(1, 1).set(**{bad: 1})
        with self.assertRaises(TypeError):
            add.s(1, 1).set(colour="red")

    def test_shapes(self):
        c = conq.chain(add.s(2, 2), mul.s(4))
        self.assertEqual(c.flow(), (add.s(2, 2) | mul.s(4)).flow())
        self.assertEqual(c.flow()["flow"], {"chain": [{"task": {"kind": "add", "args": [2, 2], "kwargs": {}}},
                                                      {"task": {"kind": "mul", "args": [4], "kwargs": {}}}]})
        self.assertEqual(len((c | add.s(1) | (mul.s(2) | mul.s(3))).tasks), 5)
        g = conq.group(add.s(i, i) for i in range(3))
        self.assertEqual(len(g), 3)
        self.assertEqual(g.flow(queue="q", retention=60), {"flow": {"group": [add.s(i, i)._node() for i in range(3)]},
                                                           "queue": "q", "retention": 60})
        self.assertEqual(conq.group(add.s(1, 1), add.s(2, 2)).flow(), conq.group([add.s(1, 1), add.s(2, 2)]).flow())
        ch = conq.chord(g, tsum.s(), tolerate_failures=True).flow()["flow"]["chord"]
        self.assertEqual((len(ch["header"]), ch["body"]["task"]["kind"], ch["tolerate_failures"]), (3, "tsum", True))
        self.assertEqual(conq.chord([add.s(1, 1)], tsum.s()).flow(), conq.chord(conq.group(add.s(1, 1)), tsum.s()).flow())
        # Partial arguments go to the first steps (prepended).
        self.assertEqual(c._partial((1,), {})._node()["chain"][0]["task"]["args"], [1, 2, 2])
        with self.assertRaises(ValueError):
            conq.group([])
        with self.assertRaises(ValueError):
            conq.chain()
        with self.assertRaises(TypeError):
            conq.group(add)  # a task, not a signature
        with self.assertRaises(ValueError):
            conq.chord([add.s(1, 1)]).flow()  # no body

    def test_immutable(self):
        s = mul.si(5)
        self.assertEqual((s.immutable, repr(s)), (True, "mul.si(5)"))
        self.assertEqual(s.flow()["flow"], {"task": {"kind": "mul", "args": [5], "kwargs": {}}, "immutable": True})
        self.assertNotIn("immutable", mul.s(5)._node())
        self.assertEqual(conq.signature(mul, (5,), immutable=True), s)
        self.assertNotEqual(mul.s(5), s)
        self.assertEqual(mul.s(5).set(immutable=True, queue="q")._node()["immutable"], True)
        self.assertNotIn("immutable", mul.si(5).set(immutable=False)._node())
        # Partial arguments do not reach an immutable signature (Celery's rule).
        self.assertEqual(s.clone((1,), {"k": 2}).args, (5,))
        self.assertTrue(s.clone().immutable)
        self.assertEqual(conq.chain(s, add.s(1))._partial((9,), {})._node()["chain"][0]["task"]["args"], [5])
        ch = conq.chord([add.s(1, 1)], tsum.si([7])).flow()["flow"]["chord"]
        self.assertTrue(ch["body"]["immutable"])

    def test_failure_pickles(self):
        e = conq.WorkflowFailed("wf_1", "failed", "step 1 failed", 1, "wf_1.1", "boom", "default", 1,
                                [{"kind": "error", "message": "ValueError: x"}])
        e2 = pickle.loads(pickle.dumps(e))
        self.assertEqual((type(e2), str(e2), e2.step, e2.type), (conq.WorkflowFailed, str(e), 1, "ValueError"))
        self.assertIsInstance(e2, conq.TaskFailed)
        self.assertTrue(issubclass(conq.WorkflowCancelled, conq.TaskCancelled))


@unittest.skipUnless(os.path.exists(BIN) or os.environ.get("CI"), "no conq binary at %s (make build, or set CONQ_BIN)" % BIN)
class CanvasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        url_file = os.path.join(cls.dir, "url")
        cmd = "%s %s" % (sys.executable, os.path.join(HERE, "fixtures", "canvas_tasks.py"))
        cls.proc = subprocess.Popen([BIN, "server", "--exec", cmd, "--concurrency", "4", "--listen", "127.0.0.1:0",
                                     "--url-file", url_file, "--log-level", "error"])
        for _ in range(500):
            if os.path.exists(url_file):
                break
            time.sleep(0.02)
        with open(url_file) as f:
            cls.client = conq.connect(f.read().strip())
        # The worker publishes the kinds its processes serve with its first
        # heartbeat; until then a flow's kinds cannot be checked.
        for _ in range(500):
            ws = cls.client.workers()
            if ws and ws[0].get("kinds"):
                break
            time.sleep(0.02)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(20)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_worker_publishes_kinds(self):
        kinds = self.client.workers()[0]["kinds"]
        for k in ("add", "mul", "tsum", "boom", "nap"):
            self.assertIn(k, kinds)

    def test_chain(self):
        r = conq.chain(add.s(2, 2), mul.s(4)).delay()
        self.assertIsInstance(r, conq.WorkflowResult)
        self.assertTrue(r.id.startswith("wf_"))
        self.assertEqual(r.get(timeout=30), 16)
        self.assertEqual((r.state, r.ready(), r.successful(), r.failed()), ("completed", True, True, False))
        self.assertEqual([s["kind"] for s in r.steps], ["add", "mul"])
        self.assertEqual([s["result"] for s in r.steps], [4, 16])
        self.assertEqual((add.s(2, 2) | mul.s(4) | add.s(1)).delay().get(timeout=30), 17)
        # Partial arguments are prepended to the first step's: (2 + 4) * 2.
        self.assertEqual(conq.chain(add.s(4), mul.s(2)).delay(2).get(timeout=30), 12)
        self.assertEqual(conq.chain(add.s(4), mul.s(2))(3).get(timeout=30), 14)

    def test_immutable(self):
        # Celery's chain(a.s(1), b.si(5)): b runs b(5), not b(result, 5).
        r = conq.chain(add.s(2, 2), mul.si(5, 3), add.s(1)).delay()
        self.assertEqual(r.get(timeout=30), 16)
        self.assertEqual([s["result"] for s in r.steps], [4, 15, 16])
        # An immutable chord body runs once every member completed, without their results.
        self.assertEqual(conq.chord([add.s(1, 1), add.s(2, 2)], tsum.si([10, 20])).delay().get(timeout=30), 30)
        # A failed member still cancels a non-tolerant immutable body.
        with self.assertRaises(conq.WorkflowFailed):
            conq.chord([add.s(1, 1), boom.s()], tsum.si([1])).delay().get(timeout=30)

    def test_list_workflows(self):
        r = conq.chain(add.s(1, 1), boom.s()).delay()
        with self.assertRaises(conq.WorkflowFailed):
            r.get(timeout=30)
        page = self.client.workflows(state="failed", limit=1000)
        self.assertIn(r.id, [w["id"] for w in page["workflows"]])
        self.assertTrue(all(w["state"] == "failed" for w in page["workflows"]))
        first = self.client.workflows(limit=1)
        self.assertEqual(len(first["workflows"]), 1)
        second = self.client.workflows(limit=1, cursor=first["next"])
        self.assertNotEqual(first["workflows"][0]["id"], second["workflows"][0]["id"])

    def test_result_endpoint(self):
        # get(), state and ready() read GET /api/v1/workflows/{id}/result
        # (no steps); info() and steps still read the steps after them.
        r = conq.chord((add.s(i, i) for i in range(3)), tsum.s()).delay()
        self.assertEqual(r.get(timeout=30), 6)
        _, body = self.client._request("GET", "/api/v1/workflows/%s/result" % r.id, query={"wait": "5s"})
        self.assertEqual(body, {"id": r.id, "state": "completed", "result": 6})
        self.assertEqual((r.state, r.ready()), ("completed", True))
        self.assertEqual([s["kind"] for s in r.info()["steps"]], ["add", "add", "add", "tsum"])
        # A new handle of a failed workflow raises as the first did.
        f = conq.chain(add.s(1, 1), boom.s()).delay()
        with self.assertRaises(conq.WorkflowFailed):
            f.get(timeout=30)
        again = conq.WorkflowResult(f.id, client=self.client)
        self.assertTrue(again.failed())
        e = again.get(timeout=5, propagate=False)
        self.assertEqual((e.step, e.type, e.message), (1, "ValueError", "boom 2"))
        _, body = self.client._request("GET", "/api/v1/workflows/%s/result" % f.id)
        self.assertEqual((body["state"], "result" in body, "steps" in body), ("failed", False, False))
        self.assertIn("boom 2", body["error"])

    def test_group_keeps_member_order(self):
        r = conq.group(add.s(i, i) for i in range(10)).delay()
        self.assertEqual(r.get(timeout=30), [2 * i for i in range(10)])
        # Nap first: the first member finishes last, and stays first.
        self.assertEqual(conq.group(conq.chain(nap.s(0.3), add.s(1)), add.s(0, 0)).delay().get(timeout=30), [1.3, 0])

    def test_chord(self):
        self.assertEqual(conq.chord(conq.group(add.s(i, i) for i in range(10)), tsum.s()).delay().get(timeout=30), 90)
        self.assertEqual(conq.chord((add.s(i, i) for i in range(3)), tsum.s()).delay().get(timeout=30), 6)
        # Celery's chord(header)(body).
        self.assertEqual(conq.chord([add.s(1, 1), add.s(2, 2)])(tsum.s()).get(timeout=30), 6)

    def test_nesting(self):
        # A chord whose header holds chains, in a chain, with a step after.
        flow = conq.chain(
            add.s(1, 1),                                                  # 2
            conq.chord([conq.chain(add.s(10), mul.s(2)), mul.s(3)], tsum.s()),  # (2+10)*2 + 2*3 = 30
            pair.s("done"),
        )
        self.assertEqual(flow.delay().get(timeout=30), ["done", 30])
        # A group of chains; a chain after a group gets the list.
        g = conq.group(conq.chain(add.s(i, 1), mul.s(10)) for i in range(3))
        self.assertEqual(g.delay().get(timeout=30), [10, 20, 30])
        self.assertEqual((g | tsum.s()).delay().get(timeout=30), 60)

    def test_single_signature_is_a_task(self):
        r = add.s(2, 3).delay()
        self.assertIsInstance(r, conq.AsyncResult)
        self.assertEqual(r.get(timeout=30), 5)
        self.assertEqual(add.s(3).delay(1).get(timeout=30), 4)

    def test_failure_names_the_step_and_its_exception(self):
        r = conq.chain(add.s(1, 1), boom.s(), add.s(1)).delay()
        with self.assertRaises(conq.TaskFailed) as cm:
            r.get(timeout=30)
        e = cm.exception
        self.assertIsInstance(e, conq.WorkflowFailed)
        self.assertNotIsInstance(e, conq.TaskCancelled)
        self.assertEqual((e.workflow_id, e.workflow_state, e.step, e.kind, e.task_id), (r.id, "failed", 1, "boom", r.id + ".1"))
        self.assertEqual((e.type, e.message), ("ValueError", "boom 2"))
        self.assertIn("raise ValueError", e.traceback or "")
        self.assertIn("step 1 (boom", str(e))
        self.assertEqual((r.state, r.failed()), ("failed", True))
        self.assertEqual([s["state"] for s in r.steps], ["completed", "failed", "cancelled"])
        self.assertIsInstance(r.get(timeout=5, propagate=False), conq.WorkflowFailed)
        # A failing chord member: the body does not run.
        with self.assertRaises(conq.WorkflowFailed) as cm:
            conq.chord([add.s(1, 1), boom.s(7)], tsum.s()).delay().get(timeout=30)
        self.assertEqual((cm.exception.step, cm.exception.message), (1, "boom 7"))

    def test_tolerant_chord(self):
        res = conq.chord([add.s(1, 1), boom.s(7)], pair.s("body"), tolerate_failures=True).delay().get(timeout=30)
        self.assertEqual(res[0], "body")
        ok, failed = res[1]
        self.assertEqual(ok, {"ok": True, "result": 2})
        self.assertEqual((failed["ok"], failed["error"]["type"]), (False, "StepFailed"))

    def test_cancel_and_timeout(self):
        r = conq.chain(nap.s(30), add.s(1)).delay()
        with self.assertRaises(TimeoutError):
            r.get(timeout=0.3)
        self.assertEqual(r.state, "running")
        self.assertFalse(r.ready())
        self.assertEqual(r.cancel(), "cancelled")
        with self.assertRaises(conq.WorkflowCancelled) as cm:
            r.get(timeout=30)
        self.assertIsInstance(cm.exception, conq.TaskCancelled)
        self.assertEqual(r.state, "cancelled")
        self.assertIsNone(r.cancel())  # already finished
        self.assertIsNone(r.revoke())

    def test_timeout_names_a_step_waiting_to_retry(self):
        # add(2, "x") fails and retries with backoff: the chain neither
        # finishes nor fails for a while, and the timeout says why.
        r = conq.chain(add.s(1, 1), add.s("x").set(retries=5)).delay()
        for _ in range(300):
            if [st.get("state") for st in r.steps] == ["completed", "retry"]:
                break
            time.sleep(0.1)
        else:
            self.fail("step 1 never waited to retry: %r" % (r.steps,))
        with self.assertRaises(TimeoutError) as cm:
            r.get(timeout=0.2)
        msg = str(cm.exception)
        self.assertIn("step 1 (add) waits to retry after 1 attempt(s): TypeError: unsupported operand", msg)
        r.cancel()

    def test_refused_before_anything_runs(self):
        with self.assertRaises(conq.BadRequestError) as cm:
            conq.chain(add.s(1, 1), conq.signature("no_such_task")).delay()
        self.assertEqual(cm.exception.code, "unknown_kind")
        self.assertIn('flow.chain[1].task: unknown task kind "no_such_task" on queue "default"', cm.exception.message)
        with self.assertRaises(conq.NotFoundError):
            conq.WorkflowResult("wf_nope", client=self.client).state


REDIS_URL = os.environ.get("CONQ_TEST_REDIS_URL")


@unittest.skipUnless(os.path.exists(BIN) or os.environ.get("CI"), "no conq binary at %s (make build, or set CONQ_BIN)" % BIN)
@unittest.skipUnless(REDIS_URL or os.environ.get("CI"), "CONQ_TEST_REDIS_URL is not set (source scripts/redis.sh; redis_start)")
class CanvasRedisTest(unittest.TestCase):
    """The canvas on the Redis broker: the tasks served by `conq worker
    --broker redis://... --exec` (as on another machine), the workflows
    sent through a separate `conq server --broker` on the same Redis."""

    @classmethod
    def setUpClass(cls):
        if not REDIS_URL:
            raise AssertionError("CI is set but CONQ_TEST_REDIS_URL is not: make test starts a private redis-server")
        cls.dir = tempfile.mkdtemp()
        url_file = os.path.join(cls.dir, "url")
        # A database of its own: the Go tests and test_embedded share this Redis.
        base = REDIS_URL.rstrip("/")
        broker = (base.rsplit("/", 1)[0] if base.count("/") > 2 else base) + "/8"
        subprocess.run(["redis-cli", "-u", broker, "flushdb"], stdout=subprocess.DEVNULL, check=False)
        cmd = "%s %s" % (sys.executable, os.path.join(HERE, "fixtures", "canvas_tasks.py"))
        cls.worker = subprocess.Popen([BIN, "worker", "--broker", broker, "--exec", cmd, "--concurrency", "4",
                                       # A short lease: a cancelled running step hears of it within 1s.
                                       "--lease", "3s", "--shutdown-timeout", "2s", "--log-level", "error"])
        cls.server = subprocess.Popen([BIN, "server", "--broker", broker, "--listen", "127.0.0.1:0",
                                       "--url-file", url_file, "--log-level", "error"])
        for _ in range(500):
            if os.path.exists(url_file):
                break
            time.sleep(0.02)
        with open(url_file) as f:
            cls.client = conq.Client(f.read().strip())
        for _ in range(500):  # the worker's first heartbeat, with its kinds
            ws = cls.client.workers()
            if ws and ws[0].get("kinds"):
                break
            time.sleep(0.02)

    @classmethod
    def tearDownClass(cls):
        for p in (cls.server, cls.worker):
            p.terminate()
        for p in (cls.server, cls.worker):
            p.wait(20)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_shapes_failure_and_kinds(self):
        c = self.client
        self.assertEqual(conq.chain(add.s(2, 2), mul.s(4)).apply_async(client=c).get(timeout=30), 16)
        self.assertEqual(conq.group(add.s(i, i) for i in range(10)).apply_async(client=c).get(timeout=30),
                         [2 * i for i in range(10)])
        self.assertEqual(conq.chord(conq.group(add.s(i, i) for i in range(10)), tsum.s()).apply_async(client=c).get(timeout=30), 90)
        with self.assertRaises(conq.WorkflowFailed) as cm:
            conq.chain(add.s(1, 1), boom.s()).apply_async(client=c).get(timeout=30)
        self.assertEqual((cm.exception.step, cm.exception.type, cm.exception.message), (1, "ValueError", "boom 2"))
        with self.assertRaises(conq.BadRequestError) as cm:
            conq.chain(add.s(1, 1), conq.signature("no_such_task")).apply_async(client=c)
        self.assertEqual(cm.exception.code, "unknown_kind")
        self.assertEqual(conq.chain(add.s(2, 2), mul.si(5, 3)).apply_async(client=c).get(timeout=30), 15)
        self.assertEqual(conq.chord([add.s(1, 1)], tsum.si([4, 5])).apply_async(client=c).get(timeout=30), 9)
        r = conq.chain(nap.s(30), add.s(1)).apply_async(client=c)
        self.assertEqual(r.cancel(), "cancelled")
        with self.assertRaises(conq.WorkflowCancelled):
            r.get(timeout=30)


if __name__ == "__main__":
    unittest.main()
