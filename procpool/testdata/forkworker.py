"""Python worker whose tasks leave descendants behind (procpool tree tests).

Each task writes the pids it leaves behind, one per line, to the file named
by its argument (a JSON string: json=True tasks work alike with the SDK's
raw-bytes and natural-JSON defaults) before it exits or returns.
"""
import os
import time

import conq


def _record(path, pids):
    with open(path, "w") as f:
        f.write("".join("%d\n" % p for p in pids))


@conq.task(json=True)
def fork_exit(data):
    """The issue's repro: fork a child that sleeps (holding the worker's
    pipes), then exit at once."""
    pid = os.fork()
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    _record(data, [pid])
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


@conq.task(json=True)
def daemon_exit(data):
    path = data
    _record(path, [_daemon(path)])
    os._exit(1)


@conq.task(json=True)
def daemon(data):
    path = data
    _record(path, [_daemon(path)])
    return "ok"


if __name__ == "__main__":
    conq.run()
