"""Sub-interpreter Python worker: the primes of Fluent Python ch. 19."""
import os
import sys
import time

import conq

if os.environ.get("PYINTERP_BAD"):
    import _testsinglephase  # noqa: F401 - single-phase init: not importable in a sub-interpreter


def is_prime(n):
    if n < 2:
        return False
    if n == 2:
        return True
    if n % 2 == 0:
        return False
    root = int(n ** 0.5)
    for i in range(3, root + 1, 2):
        if n % i == 0:
            return False
    return True


@conq.task("prime")
def prime(n):
    start = time.time_ns()
    r = is_prime(n)
    return [r, start, time.time_ns(), os.getpid()]


if __name__ == "__main__":
    conq.run(interpreters=int(os.environ.get("PYINTERP_N", "2")))
