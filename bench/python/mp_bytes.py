#!/usr/bin/env python3
"""Baseline for conq's 64 MiB round trip: echo a 64 MiB bytes argument through
multiprocessing.Pool.apply (pickled over a pipe), one worker.

    python3 bench/python/mp_bytes.py [--mib N] [--repeat R]
"""
import argparse
import multiprocessing
import statistics
import time


def echo(b):
    return b


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    data = b"conq" * (args.mib << 18)
    with multiprocessing.Pool(1) as pool:
        pool.apply(echo, (b"warm",))
        rates = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = pool.apply(echo, (data,))
            dt = time.perf_counter() - t0
            assert len(out) == len(data)
            rates.append(len(data) / dt / 1e6)
    print("multiprocessing.Pool.apply echo %d MiB: median %.0f MB/s (min %.0f, max %.0f)"
          % (args.mib, statistics.median(rates), min(rates), max(rates)))


if __name__ == "__main__":
    main()
