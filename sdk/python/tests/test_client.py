"""Unit tests of conq_client against a fake API server (http.server in a
thread). The end-to-end test against a real conq server is on the Go side
(server/e2e_python_test.go)."""

import base64
import datetime
import gc
import json
import threading
import unittest
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import conq_client
from conq_client import (AuthError, BatchError, Client, ConflictError, NotFoundError, PayloadTooLargeError,
                         ServerUnavailable, TaskFailed)


class FakeAPI(object):
    """Records requests; answers come from ``routes``: (method, path) ->
    function(query, body) returning (status, json body)."""

    def __init__(self):
        self.requests = []
        self.routes = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self):
                u = urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                body = json.loads(raw) if raw else None
                api.requests.append({"method": self.command, "path": u.path, "query": parse_qs(u.query),
                                     "body": body, "headers": dict(self.headers)})
                fn = api.routes.get((self.command, u.path))
                if fn is None:
                    status, out = 404, {"error": {"code": "not_found", "message": "no route"}}
                else:
                    status, out = fn(parse_qs(u.query), body)
                data = json.dumps(out).encode() if out is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def task(id_, **kw):
    t = {"id": id_, "kind": "k", "queue": "default", "state": "pending", "max_retries": 5, "attempts": 0}
    t.update(kw)
    return t


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.api = FakeAPI()
        self.addCleanup(self.api.close)
        self.c = Client(self.api.url, token="s3cret-token-0123456789")
        self.addCleanup(self.c.close)  # its kept-alive connection

    def test_enqueue_sends_json_options_and_token(self):
        self.api.routes[("POST", "/api/v1/tasks")] = lambda q, b: (201, task("T1"))
        tid = self.c.enqueue("email.send", {"to": "a@b"}, queue="mail", max_retries=2, timeout=1.5,
                             process_in=datetime.timedelta(minutes=1), retention="1h", id="T1")
        self.assertEqual(tid, "T1")
        req = self.api.requests[0]
        self.assertEqual(req["headers"]["Authorization"], "Bearer s3cret-token-0123456789")
        self.assertEqual(req["headers"]["Content-Type"], "application/json")
        self.assertEqual(req["body"], {"kind": "email.send", "payload": {"to": "a@b"}, "queue": "mail",
                                       "max_retries": 2, "timeout": 1.5, "process_in": 60.0,
                                       "retention": "1h", "id": "T1"})

    def test_a_threads_connection_is_closed_when_the_thread_ends(self):
        # Each thread has a kept-alive connection of its own; it goes when
        # its thread ends, closed, not left for the garbage collector.
        self.api.routes[("POST", "/api/v1/tasks")] = lambda q, b: (201, task("T1"))
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            t = threading.Thread(target=lambda: self.c.enqueue("k", 1))
            t.start()
            t.join()
            del t
            gc.collect()
        self.assertEqual(len(self.api.requests), 1)
        self.assertEqual([w for w in got if issubclass(w.category, ResourceWarning)], [])

    def test_enqueue_bytes_payload_is_base64(self):
        self.api.routes[("POST", "/api/v1/tasks")] = lambda q, b: (201, task("T2"))
        self.c.enqueue("raw", b"\x00\xffbin")
        self.assertEqual(self.api.requests[0]["body"]["payload_base64"], base64.b64encode(b"\x00\xffbin").decode())

    def test_unknown_option_is_a_type_error(self):
        with self.assertRaises(TypeError):
            self.c.enqueue("k", 1, retriez=3)
        with self.assertRaises(ValueError):
            self.c.enqueue("", 1)

    def test_error_statuses_map_to_exceptions(self):
        cases = [(409, "duplicate_id", ConflictError), (404, "task_not_found", NotFoundError),
                 (401, "unauthorized", AuthError), (413, "payload_too_large", PayloadTooLargeError),
                 (503, "broker_unavailable", ServerUnavailable)]
        for status, code, exc in cases:
            self.api.routes[("POST", "/api/v1/tasks")] = (
                lambda s, c: lambda q, b: (s, {"error": {"code": c, "message": "boom " + c}}))(status, code)
            with self.assertRaises(exc) as cm:
                self.c.enqueue("k", 1)
            self.assertEqual(cm.exception.status, status)
            self.assertEqual(cm.exception.code, code)
            self.assertIn("boom " + code, str(cm.exception))

    def test_enqueue_many(self):
        self.api.routes[("POST", "/api/v1/tasks")] = lambda q, b: (201, {"tasks": [task("A"), task("B")]})
        ids = self.c.enqueue_many([("k", 1), {"kind": "k", "payload": 2, "id": "B"}], queue="q", retention=10)
        self.assertEqual(ids, ["A", "B"])
        body = self.api.requests[0]["body"]
        self.assertEqual(body["queue"], "q")
        self.assertEqual(body["retention"], 10)
        self.assertEqual(body["tasks"], [{"kind": "k", "payload": 1}, {"kind": "k", "payload": 2, "id": "B"}])
        self.assertEqual(self.c.enqueue_many([]), [])

    def test_enqueue_many_partial_failure(self):
        self.api.routes[("POST", "/api/v1/tasks")] = lambda q, b: (409, {
            "error": {"code": "duplicate_id", "message": "1 of 2 tasks failed"},
            "tasks": [task("A"), None],
            "errors": [None, {"code": "duplicate_id", "message": "task ID already exists"}]})
        with self.assertRaises(BatchError) as cm:
            self.c.enqueue_many([("k", 1), ("k", 2)])
        e = cm.exception
        self.assertEqual(e.ids, ["A", None])
        self.assertIsNone(e.errors[0])
        self.assertIsInstance(e.errors[1], ConflictError)

    def test_result_completed(self):
        self.api.routes[("GET", "/api/v1/tasks/T%2F1/result")] = lambda q, b: (200, {
            "id": "T/1", "state": "completed", "done": True, "result": {"sum": 3}})
        self.assertEqual(self.c.result("T/1", timeout=5), {"sum": 3})
        self.assertEqual(self.api.requests[0]["query"]["wait"], ["5.000s"])

    def test_result_binary(self):
        self.api.routes[("GET", "/api/v1/tasks/T/result")] = lambda q, b: (200, {
            "id": "T", "state": "completed", "done": True, "result_base64": base64.b64encode(b"\x01\x02").decode()})
        self.assertEqual(self.c.result("T", timeout=1), b"\x01\x02")

    def test_result_dead_raises_task_failed(self):
        errors = [{"attempt": 1, "kind": "error", "message": "first"},
                  {"attempt": 2, "kind": "panic", "message": "division by zero", "stack": "trace"}]
        self.api.routes[("GET", "/api/v1/tasks/T/result")] = lambda q, b: (200, {
            "id": "T", "kind": "div", "queue": "math", "state": "dead", "done": True, "attempts": 2,
            "last_error": errors[-1], "errors": errors})
        with self.assertRaises(TaskFailed) as cm:
            self.c.result("T", timeout=1)
        e = cm.exception
        self.assertEqual(e.last_error["message"], "division by zero")
        self.assertEqual(e.attempts, 2)
        self.assertEqual(len(e.errors), 2)
        self.assertIn("division by zero", str(e))

    def test_result_timeout(self):
        self.api.routes[("GET", "/api/v1/tasks/T/result")] = lambda q, b: (202, {
            "id": "T", "state": "pending", "done": False})
        with self.assertRaises(TimeoutError):
            self.c.result("T", timeout=0.2)

    def test_result_waits_in_chunks_until_done(self):
        calls = []

        def answer(q, b):
            calls.append(q["wait"][0])
            if len(calls) < 3:
                return 202, {"id": "T", "state": "active", "done": False}
            return 200, {"id": "T", "state": "completed", "done": True, "result": "ok"}
        self.api.routes[("GET", "/api/v1/tasks/T/result")] = answer
        self.assertEqual(self.c.result("T"), "ok")
        self.assertEqual(len(calls), 3)

    def test_result_not_found(self):
        with self.assertRaises(NotFoundError):
            self.c.result("nope", timeout=1)

    def test_queue_calls(self):
        self.api.routes[("GET", "/api/v1/queues")] = lambda q, b: (200, {"queues": [{"name": "q", "paused": False, "counts": {}}]})
        self.api.routes[("GET", "/api/v1/queues/q/tasks")] = lambda q, b: (200, {"tasks": [task("A")]})
        self.api.routes[("POST", "/api/v1/queues/q/pause")] = lambda q, b: (200, {"name": "q", "paused": True})
        self.api.routes[("POST", "/api/v1/queues/q/resume")] = lambda q, b: (200, {"name": "q", "paused": False})
        self.api.routes[("POST", "/api/v1/tasks/A/retry")] = lambda q, b: (200, task("A"))
        self.api.routes[("DELETE", "/api/v1/tasks/A")] = lambda q, b: (204, None)
        self.api.routes[("GET", "/api/v1/tasks/A")] = lambda q, b: (200, task("A"))
        self.assertEqual(self.c.queues()[0]["name"], "q")
        self.assertEqual(self.c.tasks("q", state="dead")[0]["id"], "A")
        self.assertEqual(self.api.requests[-1]["query"]["state"], ["dead"])
        self.assertTrue(self.c.pause("q")["paused"])
        self.assertFalse(self.c.resume("q")["paused"])
        self.assertEqual(self.c.retry("A")["id"], "A")
        self.assertEqual(self.c.task("A", queue="default")["id"], "A")
        self.assertEqual(self.api.requests[-1]["query"]["queue"], ["default"])
        self.assertIsNone(self.c.delete("A"))

    def test_cancel_workers_schedules(self):
        self.api.routes[("POST", "/api/v1/tasks/A/cancel")] = lambda q, b: (200, {"was": "pending", "task": task("A")})
        self.api.routes[("GET", "/api/v1/workers")] = lambda q, b: (200, {"workers": [{"id": "h:1:x", "concurrency": 4, "running": []}]})
        self.api.routes[("GET", "/api/v1/schedules")] = lambda q, b: (200, {"schedules": [{"name": "nightly", "spec": "0 3 * * *"}]})
        was, t = self.c.cancel("A", queue="default")
        self.assertEqual((was, t["id"]), ("pending", "A"))
        self.assertEqual(self.api.requests[-1]["query"]["queue"], ["default"])
        self.assertEqual(self.c.workers()[0]["concurrency"], 4)
        self.assertEqual(self.c.schedules()[0]["name"], "nightly")

    def test_unreachable_server(self):
        c = Client("http://127.0.0.1:1", timeout=2)
        with self.assertRaises(ServerUnavailable) as cm:
            c.queues()
        self.assertIsInstance(cm.exception, ConnectionError)

    def test_bad_url(self):
        with self.assertRaises(ValueError):
            Client("localhost:8080")

    def test_module_exports(self):
        for name in conq_client.__all__:
            self.assertTrue(hasattr(conq_client, name), name)


if __name__ == "__main__":
    unittest.main()
