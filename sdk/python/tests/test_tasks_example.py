"""The Celery-style example module answers its tasks."""

import json
import os
import subprocess
import sys
import unittest

from tests.test_conq import Pool

import conq

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "tasks.py")


class TasksExampleTest(unittest.TestCase):
    def test_tasks(self):
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        env = dict(os.environ, CONQ_WORKER_FDS="%d,%d" % (req_r, resp_w))
        proc = subprocess.Popen([sys.executable, EXAMPLE], env=env, pass_fds=(req_r, resp_w))
        os.close(req_r)
        os.close(resp_w)
        try:
            pool = Pool(req_w, resp_r)
            kind, _, body = pool.recv()
            self.assertEqual(kind, conq.READY)
            self.assertEqual(json.loads(body)["tasks"], ["add", "fail", "sha256", "sleep"])
            self.assertEqual(pool.call(1, "add", b'{"a": 2, "b": 3}'), (conq.RESULT, 1, b"5"))
            kind, _, body = pool.call(2, "sha256", b"abc")
            self.assertEqual((kind, body[:8]), (conq.RESULT, b"ba7816bf"))
            kind, _, body = pool.call(3, "fail", b'"no"')
            err = json.loads(body)
            self.assertEqual((kind, err["type"], err["message"]), (conq.ERROR, "ValueError", "no"))
        finally:
            os.close(req_w)
            self.assertEqual(proc.wait(5), 0)


if __name__ == "__main__":
    unittest.main()
