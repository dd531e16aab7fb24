"""CPU-bound conq worker for BenchmarkPythonPrimes: the book's is_prime,
served by INTERP sub-interpreters (Python >= 3.13) or one at a time."""
import math
import os

import conq


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


@conq.task("prime")
def prime(n):
    return is_prime(n)


@conq.task(raw=True)
def rss(data):
    """"PID RSS PSS" of this process, in KiB (PSS splits shared pages among
    the processes that map them)."""
    out = {"Rss:": "0", "Pss:": "0"}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            k = line.split()
            if k and k[0] in out:
                out[k[0]] = k[1]
    return "%d %s %s" % (os.getpid(), out["Rss:"], out["Pss:"])


if __name__ == "__main__":
    n = int(os.environ.get("INTERP", "0"))
    conq.run(interpreters=n) if n else conq.run()
