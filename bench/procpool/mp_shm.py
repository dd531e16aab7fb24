#!/usr/bin/env python3
"""Baselines for conq's 64 MiB shared-memory round trip, one worker process:
a 64 MiB argument handed to the worker through
multiprocessing.shared_memory (only the block's name crosses the pipe),
and a 64 MiB result back the same way.

  handoff: the worker attaches the argument's block and answers with it
           (conq: go-buffer, an echo answered with the argument's segment)
  copy:    the worker attaches the argument's block and writes a new
           result into a second block (conq: go-buffer-copy)
  apply:   multiprocessing.Pool.apply with the bytes (pickled over a pipe;
           conq: go-pipe / python)

Blocks are created once and reused, like conq's segments; the worker
attaches them on every call, as multiprocessing code does. MB/s counts the
argument once.

    python3 bench/procpool/mp_shm.py [--mib N] [--seconds S]
"""
import argparse
import multiprocessing
import statistics
import time
from multiprocessing import shared_memory


def handoff(name, n):
    shm = shared_memory.SharedMemory(name=name)
    try:
        view = shm.buf[:n]
        ok = len(view) == n  # the task sees the bytes; answers with the block
        view.release()
    finally:
        shm.close()
    return name if ok else None


def copy(name, out, n):
    src = shared_memory.SharedMemory(name=name)
    dst = shared_memory.SharedMemory(name=out)
    try:
        dst.buf[:n] = src.buf[:n]
    finally:
        src.close()
        dst.close()
    return out


def echo(b):
    return b


def rate(fn, seconds, n):
    rates = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 5:
        t0 = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t0) / 1e6)
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=3)
    args = ap.parse_args()
    n = args.mib << 20
    data = b"conq" * (n // 4)
    arg = shared_memory.SharedMemory(create=True, size=n)
    res = shared_memory.SharedMemory(create=True, size=n)
    try:
        arg.buf[:n] = data
        with multiprocessing.Pool(1) as pool:
            pool.apply(echo, (b"warm",))

            def do_handoff():
                name = pool.apply(handoff, (arg.name, n))
                assert name == arg.name

            def do_copy():
                name = pool.apply(copy, (arg.name, res.name, n))
                view = res.buf[:n]  # the caller reads the result in place
                assert len(view) == n
                view.release()

            def do_apply():
                out = pool.apply(echo, (data,))
                assert len(out) == n

            for label, fn in (("shared_memory handoff", do_handoff), ("shared_memory copy", do_copy),
                              ("Pool.apply bytes", do_apply)):
                r = rate(fn, args.seconds, n)
                print("multiprocessing %s %d MiB: median %.0f MB/s (min %.0f, max %.0f, %d runs)"
                      % (label, args.mib, statistics.median(r), min(r), max(r), len(r)))
    finally:
        arg.close()
        arg.unlink()
        res.close()
        res.unlink()


if __name__ == "__main__":
    main()
