#!/usr/bin/env python3
"""A Celery-style tasks module for `conq worker --exec`.

    conq worker --broker redis://127.0.0.1:6379/0 --exec "python3 sdk/python/examples/tasks.py"
    conq enqueue --broker redis://127.0.0.1:6379/0 --kind add --payload '{"a": 2, "b": 3}' --wait

Every function registered with @conq.task serves the task kind of its name;
an exception fails the attempt (retried with backoff, then dead), with its
type, message and traceback kept in the task's error history.
"""

import hashlib
import os
import sys
import time

# Import the SDK from the repository when this file runs from a checkout.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import conq  # noqa: E402


@conq.task("add", json=True)
def add(args):
    return args["a"] + args["b"]


@conq.task("sha256", raw=True)
def sha256(data):
    # Raw bytes in (a memoryview for large payloads), raw bytes out.
    return hashlib.sha256(data).hexdigest().encode()


@conq.task("sleep", json=True)
def sleep(seconds):
    # Cancellable: conq interrupts the sleep when the task is cancelled.
    time.sleep(float(seconds))
    return seconds


@conq.task("fail", json=True)
def fail(message):
    raise ValueError(message)


if __name__ == "__main__":
    conq.run()
