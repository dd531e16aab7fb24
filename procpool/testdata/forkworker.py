"""Python worker whose tasks leave descendants behind (procpool tree tests).

Each task writes the pids it leaves behind, one per line, to the file named
by its argument before it exits or returns.
"""
import os
import time

import conq


def _record(path, pids):
    with open(path, "w") as f:
        f.write("".join("%d\n" % p for p in pids))


@conq.task
def fork_exit(data):
    """The issue's repro: fork a child that sleeps (holding the worker's
    pipes), then exit at once."""
    pid = os.fork()
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    _record(bytes(data).decode(), [pid])
    os._exit(1)


def _daemon(path):
    """A daemon's double fork: the grandchild is in a session of its own
    and its parent is gone. Returns its pid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setsid()
        gpid = os.fork()
        if gpid == 0:
            os.close(w)
            time.sleep(120)
            os._exit(0)
        os.write(w, str(gpid).encode())
        os._exit(0)
    os.close(w)
    gpid = int(os.read(r, 32))
    os.close(r)
    os.waitpid(pid, 0)
    return gpid


@conq.task
def daemon_exit(data):
    path = bytes(data).decode()
    _record(path, [_daemon(path)])
    os._exit(1)


@conq.task
def daemon(data):
    path = bytes(data).decode()
    _record(path, [_daemon(path)])
    return b"ok"


if __name__ == "__main__":
    conq.run()
