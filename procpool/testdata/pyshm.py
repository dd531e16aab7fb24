"""Python worker for the shared-memory tests."""
import hashlib
import os
import time

import conq


@conq.task(raw=True)
def kind(data):
    return "%s %d %s %s" % (type(data).__name__, len(data), getattr(data, "readonly", None), hashlib.sha256(data).hexdigest())


@conq.task(raw=True)
def echo(data):
    return data


@conq.task(raw=True)
def copy(data):
    out = conq.result_buffer(len(data))
    out[:] = data
    return out


@conq.task(raw=True)
def gen(data):
    n = int(bytes(data))
    return bytes(range(256)) * (n // 256)


@conq.task(raw=True)
def pid(data):
    return str(os.getpid())


@conq.task(raw=True)
def sleepy(data):
    time.sleep(3600)


@conq.task(raw=True)
def counts(data):
    fds = sum(1 for f in os.listdir("/proc/self/fd") if "conq-shm" in (os.readlink("/proc/self/fd/" + f) if os.path.exists("/proc/self/fd/" + f) else ""))
    maps = open("/proc/self/maps").read().count("memfd:conq-shm")
    return "%d %d" % (fds, maps)


if __name__ == "__main__":
    conq.run(threads=int(os.environ.get("PYSHM_THREADS", "2")))
