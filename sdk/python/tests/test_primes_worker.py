"""The example worker answers like the book's is_prime."""

import json
import os
import subprocess
import sys
import unittest

from tests.test_conq import Pool

import conq

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "primes_worker.py")


class PrimesWorkerTest(unittest.TestCase):
    def test_is_prime_and_check(self):
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
            self.assertEqual(json.loads(body)["tasks"], ["check", "is_prime"])
            cases = [(2, True), (1, False), (9, False), (142702110479723, True), (4444444444444444, False)]
            for i, (n, want) in enumerate(cases, 1):
                self.assertEqual(pool.call(i, "is_prime", str(n).encode()), (conq.RESULT, i, json.dumps(want).encode()))
            kind, _, body = pool.call(99, "check", b"97")
            got = json.loads(body)
            self.assertEqual((kind, got["n"], got["prime"]), (conq.RESULT, 97, True))
            self.assertGreaterEqual(got["elapsed"], 0)
            kind, _, body = pool.call(100, "is_prime", b'"seven"')
            self.assertEqual((kind, json.loads(body)["type"]), (conq.ERROR, "TypeError"))
        finally:
            os.close(req_w)
            self.assertEqual(proc.wait(5), 0)
            os.close(resp_r)


if __name__ == "__main__":
    unittest.main()
