"""Async Python worker for the procpool tests (conq.run: asyncio, 100+ slots)."""
import asyncio
import os
import time

import conq

running = 0
peak = 0


@conq.task(raw=True)
async def overlap(data):
    # Waits until n calls run at once: only true concurrency gets there.
    global running, peak
    n = int(bytes(data))
    running += 1
    peak = max(peak, running)
    start = time.time_ns()
    while peak < n:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.01)
    running -= 1
    return "%d %d %d" % (os.getpid(), start, time.time_ns())


@conq.task(raw=True)
async def sleep(data):
    await asyncio.sleep(float(bytes(data)))
    return b"slept"


@conq.task(raw=True)
async def hold(data):
    open(bytes(data).decode() + "." + str(os.getpid()), "w").close()
    await asyncio.sleep(3600)


@conq.task(raw=True)
async def pid(data):
    return str(os.getpid())


@conq.task(raw=True)
async def block(data):
    time.sleep(float(bytes(data)))  # the user's bug: the SDK warns
    return b"blocked"


if __name__ == "__main__":
    conq.run(slots=int(os.environ.get("PYASYNC_SLOTS", "0")) or None)
