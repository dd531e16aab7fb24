#!/usr/bin/env python3
"""A conq worker with the prime check of Fluent Python, 2nd ed., chapter 19.

Run it through conq, for instance:

    conq primes --mode proc --worker-cmd "python3 sdk/python/examples/primes_worker.py"
    echo 9999999999999917 | conq map --task is_prime \\
        --worker-cmd "python3 sdk/python/examples/primes_worker.py"

Tasks (both JSON, so they also work with `conq map`):

    is_prime   argument: an integer          result: true or false
    check      argument: an integer          result: {"n": n, "prime": bool, "elapsed": seconds}
               (the book's check(): the time is measured in the worker)
"""

import math
import os
import sys
import time

# Import the SDK from the repository when this file runs from a checkout.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import conq  # noqa: E402


def is_prime(n):
    if n < 2:
        return False
    if n == 2:
        return True
    if n % 2 == 0:
        return False
    root = math.isqrt(n)
    for i in range(3, root + 1, 2):
        if n % i == 0:
            return False
    return True


@conq.task("is_prime", json=True)
def is_prime_task(n):
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError("is_prime wants an integer, got %r" % (n,))
    return is_prime(n)


@conq.task("check", json=True)
def check(n):
    t0 = time.perf_counter()
    res = is_prime_task(n)
    return {"n": n, "prime": res, "elapsed": time.perf_counter() - t0}


if __name__ == "__main__":
    conq.run()
