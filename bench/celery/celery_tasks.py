"""Celery 5.2 side of the Celery peer benchmarks (bench/celery/README.md).

One module is the Celery app and its tasks, so the worker
(``celery -A celery_tasks worker``) and the producer (driver.py) register
the same task names. Broker and result backend are the same private Redis,
given as CELERY_URL (the runner starts a redis-server on a free port; the
machine's own Redis is never used). Everything else is Celery's default:
JSON serializer, prefetch multiplier 4, acks on receipt, results kept a day.
The worker runs with ``-l warning`` (no INFO line per task, as conq logs
none) and ``--without-gossip --without-mingle --without-heartbeat``.
"""
import os
import time

from celery import Celery

_url = os.environ.get("CELERY_URL")
if not _url:
    raise SystemExit("celery_tasks: set CELERY_URL to the private Redis (redis://127.0.0.1:PORT/N)")

app = Celery("celery_tasks", broker=_url, backend=_url)
app.conf.update(
    # The worker has no reason to chat with other workers: these only cost
    # start-up time (mingle waits for replies) and background traffic.
    worker_enable_remote_control=False,
    broker_connection_retry_on_startup=True,
)


@app.task
def noop(x=None):
    return None


@app.task
def wait(x=None):
    """I/O-bound: blocks its worker (a prefork process or a thread) 100 ms."""
    time.sleep(0.1)
    return None


@app.task
def member():
    """A chord header member (a no-op returning 1, so the callback can check it got all)."""
    return 1


@app.task
def callback(results):
    return sum(results)
