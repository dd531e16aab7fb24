"""I/O-bound conq worker for bench/procpool BenchmarkPythonIOBound: each
task waits 100 ms, on the event loop (async) or in a thread (IO_MODE=threads)."""
import asyncio
import os
import time

import conq

if os.environ.get("IO_MODE") == "threads":

    @conq.task(raw=True)
    def wait(data):
        time.sleep(0.1)
        return b""

    if __name__ == "__main__":
        conq.run(threads=100)
else:

    @conq.task(raw=True)
    async def wait(data):
        await asyncio.sleep(0.1)
        return b""

    if __name__ == "__main__":
        conq.run(slots=100)
