"""The example worker answers like the book's is_prime."""

import json
import os
import unittest

from test_conq import WorkerProcess

import conq

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "primes_worker.py")


class PrimesWorkerTest(unittest.TestCase):
    def test_is_prime_and_check(self):
        with WorkerProcess(EXAMPLE) as pool:
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


if __name__ == "__main__":
    unittest.main()
