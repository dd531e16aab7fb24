"""The client's HTTP/1.1 connection (conq._client._Conn) against scripted
answers from a local socket: every framing the server may use, and a kept
connection the server closed; and the requests a WorkflowResult makes."""

import socket
import threading
import unittest

import conq
from conq import _client


class Scripted(object):
    """A one-connection-at-a-time server answering each request with the
    next scripted bytes; None closes the connection instead."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.url = "http://127.0.0.1:%d" % self.ls.getsockname()[1]
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while self.answers:
            try:
                conn, _ = self.ls.accept()
            except OSError:
                return
            buf = b""
            with conn:
                while self.answers:
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    n = 0
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            n = int(v)
                    while len(rest) < n:
                        rest += conn.recv(65536)
                    self.requests.append((head, rest[:n]))
                    buf = rest[n:]
                    a = self.answers.pop(0)
                    if a is None:
                        break  # close without answering
                    conn.sendall(a)
                    if b"Connection: close" in a:
                        break

    def close(self):
        self.ls.close()


def answer(status, body, extra=b""):
    return b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (status, extra, len(body), body)


class ConnTest(unittest.TestCase):
    def client(self, answers):
        s = Scripted(answers)
        self.addCleanup(s.close)
        c = conq.Client(s.url, token="t0k")
        self.addCleanup(c.close)
        return c, s

    def test_framings(self):
        chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"4;ext=1\r\n{\"id\r\n6\r\n\": \"b\"\r\n1\r\n}\r\n0\r\nX-Trailer: 1\r\n\r\n")
        to_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"id\": \"c\"}"
        c, s = self.client([answer(200, b'{"id": "a"}'), b"HTTP/1.1 100 Continue\r\n\r\n" + chunked,
                            b"HTTP/1.1 204 No Content\r\n\r\n", to_close, answer(200, b'{"id": "d"}')])
        self.assertEqual(c._request("GET", "/x")[1], {"id": "a"})
        self.assertEqual(c._request("GET", "/x")[1], {"id": "b"})
        self.assertEqual(c._request("DELETE", "/x"), (204, None))
        self.assertEqual(c._request("GET", "/x")[1], {"id": "c"})  # then the connection is closed
        self.assertEqual(c._request("POST", "/x", {"k": 1})[1], {"id": "d"})  # on a new one
        head, body = s.requests[-1]
        self.assertTrue(head.startswith(b"POST /x HTTP/1.1\r\nHost: 127.0.0.1:"), head)
        self.assertIn(b"Authorization: Bearer t0k\r\n", head)
        self.assertEqual(body, b'{"k":1}')

    def test_kept_connection_closed_by_the_server(self):
        # The server drops the kept connection instead of answering: one
        # fresh try on a new connection answers.
        c, s = self.client([answer(200, b"{}"), None, answer(201, b'{"id": "again"}')])
        self.assertEqual(c._request("GET", "/x")[1], {})
        self.assertEqual(c._request("POST", "/x", {})[1], {"id": "again"})
        self.assertEqual(len(s.requests), 3)

    def test_garbage_is_an_error(self):
        c, _ = self.client([b"SMTP ready\r\n\r\n"])
        with self.assertRaises(conq.ConqError) as cm:
            c._request("GET", "/x")
        self.assertIn("cannot reach conq server", str(cm.exception))

    def test_error_answer(self):
        c, _ = self.client([answer(404, b'{"error": {"code": "not_found", "message": "no task x"}}')])
        with self.assertRaises(conq.ConqError) as cm:
            c._request("GET", "/api/v1/tasks/x")
        self.assertIn("no task x", str(cm.exception))

    def test_workflow_result_requests(self):
        # get() waits on the result endpoint; a failure reads the workflow
        # whole and the failed step's task once, then nothing more.
        outcome = b'{"id": "wf_x", "state": "failed", "error": "step 0 (boom) failed: ValueError: bad"}'
        full = (b'{"id": "wf_x", "state": "failed", "error": "step 0 (boom) failed: ValueError: bad", "steps": '
                b'[{"id": "wf_x.0", "task_id": "wf_x.0", "kind": "boom", "queue": "q", "state": "failed", "attempts": 1, '
                b'"error": "ValueError: bad"}]}')
        task = b'{"id": "wf_x.0", "attempts": 1, "errors": [{"kind": "error", "message": "ValueError: bad", "stack": "tb"}]}'
        c, s = self.client([answer(200, b'{"id": "wf_x", "state": "running"}'), answer(200, outcome), answer(200, full), answer(200, task)])
        r = conq.WorkflowResult("wf_x", client=c)
        self.assertFalse(r.ready())
        e = r.get(propagate=False)
        self.assertEqual((type(e), e.step, e.type, e.message, e.traceback), (conq.WorkflowFailed, 0, "ValueError", "bad", "tb"))
        self.assertEqual((r.state, r.failed(), [st["kind"] for st in r.steps]), ("failed", True, ["boom"]))
        paths = [head.split(b" ")[1] for head, _ in s.requests]
        self.assertEqual(paths, [b"/api/v1/workflows/wf_x/result", b"/api/v1/workflows/wf_x/result?wait=30000ms",
                                 b"/api/v1/workflows/wf_x", b"/api/v1/tasks/wf_x.0?queue=q"])
        # A completed workflow: the outcome alone; steps read on demand.
        c, s = self.client([answer(200, b'{"id": "wf_y", "state": "completed", "result": [1, 2]}'),
                            answer(200, b'{"id": "wf_y", "state": "completed", "result": [1, 2], "steps": []}')])
        r = conq.WorkflowResult("wf_y", client=c)
        self.assertEqual((r.get(), r.state, r.successful()), ([1, 2], "completed", True))
        self.assertEqual(len(s.requests), 1)
        self.assertEqual(r.info()["steps"], [])
        self.assertEqual(len(s.requests), 2)
        # A server without the result endpoint: the whole workflow answers.
        c, s = self.client([answer(404, b'{"error": {"code": "not_found", "message": "no API route"}}'),
                            answer(200, b'{"id": "wf_z", "state": "completed", "result": 3, "steps": []}')])
        self.assertEqual(conq.WorkflowResult("wf_z", client=c).get(), 3)
        self.assertEqual([head.split(b" ")[1] for head, _ in s.requests],
                         [b"/api/v1/workflows/wf_z/result?wait=30000ms", b"/api/v1/workflows/wf_z?wait=30000ms"])
        # An unknown workflow is not mistaken for an old server.
        c, _ = self.client([answer(404, b'{"error": {"code": "workflow_not_found", "message": "no workflow"}}')])
        with self.assertRaises(conq.NotFoundError):
            conq.WorkflowResult("wf_nope", client=c).state

    def test_ports(self):
        self.assertEqual((_client._Conn("https", "h.example", 1).port), 443)
        self.assertEqual((_client._Conn("https", "h.example:8443", 1).port), 8443)
        self.assertEqual((_client._Conn("http", "[::1]", 1).port), 80)
        self.assertEqual((_client._Conn("https", "[::1]:9", 1).host), "::1")


if __name__ == "__main__":
    unittest.main()
