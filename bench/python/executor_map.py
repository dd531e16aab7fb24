"""Executor.map over N no-op items with 2 worker processes: conq.Executor
(embedded engine) vs ProcessPoolExecutor.map (chunksize 1, 100) and
multiprocessing.Pool.imap (chunksize 1), in one run.

    PATH=$PWD/bin:$PATH python3 bench/python/executor_map.py 20000
(needs `pip install ./sdk/python` and `make build`)."""

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time

import conq


def noop(x):
    return x


def rate(label, n, fn):
    t = time.perf_counter()
    got = sum(1 for _ in fn())
    el = time.perf_counter() - t
    assert got == n
    print("%-40s %8.0f items/s  (%.2fs)" % (label, n / el, el), flush=True)
    return n / el


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    print("nproc %d, %d items, 2 worker processes, python %s" % (os.cpu_count(), n, sys.version.split()[0]))
    with conq.Executor(max_workers=2) as ex:
        list(ex.map(noop, range(200)))  # workers warm
        rate("conq.Executor.map (embedded)", n, lambda: ex.map(noop, range(n)))
        rate("conq.Executor.map chunksize=100", n, lambda: ex.map(noop, range(n), chunksize=100))
    with cf.ProcessPoolExecutor(2) as ex:
        rate("ProcessPoolExecutor.map chunksize=1", n, lambda: ex.map(noop, range(n)))
        rate("ProcessPoolExecutor.map chunksize=100", n, lambda: ex.map(noop, range(n), chunksize=100))
    with mp.Pool(2) as p:
        rate("multiprocessing.Pool.imap chunksize=1", n, lambda: p.imap(noop, range(n)))
