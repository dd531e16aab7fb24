"""conq side of the Celery peer benchmarks (bench/celery/README.md): the same
tasks as celery_tasks.py, served by ``conq worker --exec`` / ``conq server
--exec``. CONQ_BENCH_MODE picks the execution model of the worker process:

  (unset)  one call at a time per process, like a Celery prefork child
  async    ``wait`` is ``async def`` (asyncio.sleep) and each process takes
           100 calls at once on its event loop (conq.run(slots=100))
  threads  ``wait`` blocks (time.sleep) on one of 100 threads per process
           (conq.run(threads=100)), like ``celery worker --pool threads``

The producer (driver.py) imports this module only for the task names, so
the mode it runs under does not matter to it.
"""
import asyncio
import os
import time

import conq

MODE = os.environ.get("CONQ_BENCH_MODE", "")


@conq.task
def noop(x=None):
    return None


@conq.task
def member():
    return 1


@conq.task
def callback(results):
    return sum(results)


if MODE == "async":

    @conq.task
    async def wait(x=None):
        await asyncio.sleep(0.1)
        return None

else:

    @conq.task
    def wait(x=None):
        time.sleep(0.1)
        return None


if __name__ == "__main__":
    if MODE == "async":
        conq.run(slots=100)
    elif MODE == "threads":
        conq.run(threads=100)
    elif MODE == "":
        conq.run()
    else:
        raise SystemExit("conq_tasks: CONQ_BENCH_MODE must be unset, 'async' or 'threads', not %r" % MODE)
