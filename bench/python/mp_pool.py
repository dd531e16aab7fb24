#!/usr/bin/env python3
"""Baseline for conq's process pool: multiprocessing.Pool.imap, chunksize 1.

Per-item cost of a no-op task with persistent workers (one per CPU), the
Python counterpart of `BenchmarkRoundTrip/python` in bench/procpool. The
pool is started and warmed up before timing.

    python3 bench/python/mp_pool.py [--items N] [--repeat R] [--workers W]
"""
import argparse
import multiprocessing
import os
import statistics
import time


def noop(x):
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    with multiprocessing.Pool(args.workers) as pool:
        for _ in pool.imap(noop, range(1000), chunksize=1):  # warm up
            pass
        per_item = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for _ in pool.imap(noop, range(args.items), chunksize=1):
                pass
            per_item.append((time.perf_counter() - t0) / args.items * 1e6)
    print("multiprocessing.Pool.imap chunksize=1 workers=%d items=%d: median %.1f us/item (min %.1f, max %.1f)"
          % (args.workers, args.items, statistics.median(per_item), min(per_item), max(per_item)))


if __name__ == "__main__":
    main()
