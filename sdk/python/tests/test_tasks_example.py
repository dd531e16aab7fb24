"""The Celery-style example module answers its tasks."""

import json
import os
import unittest

from test_conq import WorkerProcess

import conq

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "tasks.py")


class TasksExampleTest(unittest.TestCase):
    def test_tasks(self):
        with WorkerProcess(EXAMPLE) as pool:
            kind, _, body = pool.recv()
            self.assertEqual(kind, conq.READY)
            self.assertEqual(json.loads(body)["tasks"], ["add", "fail", "sha256", "sleep"])
            self.assertEqual(pool.call(1, "add", b'{"a": 2, "b": 3}'), (conq.RESULT, 1, b"5"))
            kind, _, body = pool.call(2, "sha256", b"abc")
            self.assertEqual((kind, body[:8]), (conq.RESULT, b"ba7816bf"))
            kind, _, body = pool.call(3, "fail", b'"no"')
            err = json.loads(body)
            self.assertEqual((kind, err["type"], err["message"]), (conq.ERROR, "ValueError", "no"))


if __name__ == "__main__":
    unittest.main()
