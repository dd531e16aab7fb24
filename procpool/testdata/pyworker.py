"""Python worker for the procpool tests."""
import ctypes
import os
import sys
import time

import conq


@conq.task(raw=True)
def echo(data):
    return data


@conq.task(raw=True)
def pid(data):
    return str(os.getpid())


@conq.task("double")
def double(n):
    return 2 * n


@conq.task(raw=True)
def fail(data):
    raise ValueError("bad value: " + bytes(data).decode())


@conq.task(raw=True)
def spin(data):
    while True:
        pass


@conq.task(raw=True)
def sleepy(data):
    time.sleep(3600)  # a blocking call: the SIGINT interrupts it


@conq.task(raw=True)
def nap(data):
    time.sleep(float(bytes(data) or b"0.2"))  # a short blocking call: a stray SIGINT must not end it
    return b"slept"


@conq.task(raw=True)
def stuck(data):
    sum(range(10 ** 15))  # one long C call: no signal handler runs, the pool kills


@conq.task(raw=True)
def segv(data):
    print("about to segfault", file=sys.stderr, flush=True)
    ctypes.string_at(0)


@conq.task(raw=True)
def noisy(data):
    for i in range(20):
        print("py stdout %d" % i)
        print("py stderr %d" % i, file=sys.stderr)
    return b"ok"


@conq.task(raw=True)
def size(data):
    return str(len(data))


if __name__ == "__main__":
    conq.run()
