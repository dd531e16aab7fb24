"""Producer side of the Celery 5.2 peer benchmarks: one experiment, one
system, one JSON line on stdout. bench/scripts/celery_compare.sh starts the
workers and calls this once per measurement; see bench/celery/README.md.

    driver.py celery EXPERIMENT [-n N]            # CELERY_URL=redis://...
    driver.py conq   EXPERIMENT [-n N] --url URL  # a conq server's URL

Experiments (every one warms up first: a few calls through the whole path,
so worker start-up and first connections are outside the timings):

  enqueue   N ``delay()`` calls from this process, results not gathered
            (the runner starts no worker for it): tasks/s
  e2e       N ``delay()`` calls, then ``get()`` on each: tasks/s from the
            first enqueue to the last result (and the enqueue phase alone)
  map       conq: ``conq.Executor(url).map(noop, range(N))``;
            celery: ``group(noop.s(i) for i in range(N)).apply_async().get()``
  latency   N sequential ``delay().get()``: p50, p99, mean in ms
  io        N ``wait`` tasks (each blocks or awaits 100 ms), all enqueued,
            then every result gathered: wall seconds
  iomap     the same N ``wait`` tasks through ``map`` (conq: Executor.map,
            256 per request; celery: group().get()), to see the execution
            model with less of the producer in the way
  chord     N chords of 10 ``member`` tasks and a ``callback`` summing
            their results; all enqueued, then every callback's result
            gathered: wall seconds, chords/s, tasks/s (11 per chord)

Celery runs under Debian's /usr/bin/python3 (python3-celery 5.2); conq
under a venv of the same interpreter with ./sdk/python installed.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

EXPERIMENTS = ("enqueue", "e2e", "map", "latency", "io", "iomap", "chord")
WARM = 20
CHORD_SIZE = 10


def pct(xs, p):
    """The p-th percentile (nearest rank) of xs, sorted ascending."""
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


class Celery:
    name = "celery"

    def __init__(self, args):
        import celery
        import celery_tasks

        self.version = celery.__version__
        self.t = celery_tasks
        from celery import chord, group

        self.chord, self.group = chord, group

    def delay(self, task, *a):
        return getattr(self.t, task).delay(*a)

    @staticmethod
    def get(r):
        return r.get(timeout=600)

    def map(self, n, task="noop"):
        res = self.group(getattr(self.t, task).s(i) for i in range(n)).apply_async()
        return res.get(timeout=600)

    def chord_one(self):
        return self.chord(self.group(self.t.member.s() for _ in range(CHORD_SIZE)))(self.t.callback.s())

    def chord_get(self, r):
        return r.get(timeout=600)


class Conq:
    name = "conq"

    def __init__(self, args):
        if not args.url:
            raise SystemExit("driver.py conq: --url URL of the conq server is required")
        import conq
        import conq_tasks

        self.version = conq.__version__
        self.conq = conq
        self.t = conq_tasks
        self.url = args.url
        conq.connect(args.url)
        self.client = conq.default_client()

    def delay(self, task, *a):
        return getattr(self.t, task).delay(*a)

    @staticmethod
    def get(r):
        return r.get(timeout=600)

    def map(self, n, task="noop"):
        with self.conq.Executor(self.url) as ex:
            return list(ex.map(getattr(self.t, task), range(n)))

    def chord_one(self):
        # Celery's own spelling, through conq's canvas (conq/_canvas.py):
        # one POST /api/v1/workflows per chord; the server enqueues the
        # callback when the last member completes.
        c = self.conq
        try:
            return c.chord(c.group(self.t.member.s() for _ in range(CHORD_SIZE)))(self.t.callback.s())
        except c.APIError as e:
            if e.code == "unsupported":
                # The broker has no workflows (the Redis broker before
                # issue 12's Workflower): exit 3 so the runner records
                # "pending" instead of a figure.
                print("driver.py: %s" % e, file=sys.stderr)
                raise SystemExit(3) from None
            raise

    @staticmethod
    def chord_get(r):
        return r.get(timeout=600)


def warm(s, task="noop"):
    for r in [s.delay(task) for _ in range(WARM)]:
        s.get(r)


def run(s, exp, n):
    out = {}
    if exp == "enqueue":
        # No worker is running: only the producer path is measured.
        t0 = time.perf_counter()
        for _ in range(n):
            s.delay("noop")
        dt = time.perf_counter() - t0
        out.update(seconds=dt, tasks_per_s=n / dt)
    elif exp == "e2e":
        warm(s)
        t0 = time.perf_counter()
        rs = [s.delay("noop") for _ in range(n)]
        t1 = time.perf_counter()
        for r in rs:
            s.get(r)
        dt = time.perf_counter() - t0
        out.update(seconds=dt, tasks_per_s=n / dt, enqueue_seconds=t1 - t0, enqueue_tasks_per_s=n / (t1 - t0))
    elif exp == "map":
        warm(s)
        t0 = time.perf_counter()
        res = s.map(n)
        dt = time.perf_counter() - t0
        if len(res) != n:
            raise RuntimeError("map returned %d results for %d items" % (len(res), n))
        out.update(seconds=dt, tasks_per_s=n / dt)
    elif exp == "latency":
        warm(s)
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            s.get(s.delay("noop"))
            lat.append(time.perf_counter() - t0)
        lat.sort()
        out.update(p50_ms=pct(lat, 50) * 1e3, p99_ms=pct(lat, 99) * 1e3, mean_ms=statistics.fmean(lat) * 1e3,
                   max_ms=lat[-1] * 1e3)
    elif exp == "io":
        warm(s, "wait")
        t0 = time.perf_counter()
        rs = [s.delay("wait") for _ in range(n)]
        t1 = time.perf_counter()
        for r in rs:
            s.get(r)
        dt = time.perf_counter() - t0
        out.update(seconds=dt, enqueue_seconds=t1 - t0, tasks_per_s=n / dt)
    elif exp == "iomap":
        warm(s, "wait")
        t0 = time.perf_counter()
        res = s.map(n, "wait")
        dt = time.perf_counter() - t0
        if len(res) != n:
            raise RuntimeError("map returned %d results for %d items" % (len(res), n))
        out.update(seconds=dt, tasks_per_s=n / dt)
    elif exp == "chord":
        for r in [s.chord_one() for _ in range(3)]:
            s.chord_get(r)
        t0 = time.perf_counter()
        rs = [s.chord_one() for _ in range(n)]
        t1 = time.perf_counter()
        for r in rs:
            v = s.chord_get(r)
            if v != CHORD_SIZE:
                raise RuntimeError("chord callback returned %r, want %d" % (v, CHORD_SIZE))
        dt = time.perf_counter() - t0
        out.update(seconds=dt, enqueue_seconds=t1 - t0, chords_per_s=n / dt,
                   tasks_per_s=n * (CHORD_SIZE + 1) / dt)
    return out


def _load1():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("system", choices=("celery", "conq"))
    ap.add_argument("experiment", choices=EXPERIMENTS)
    ap.add_argument("-n", type=int, default=5000, help="tasks (chords for 'chord', calls for 'latency')")
    ap.add_argument("--url", help="conq: the server's URL (http://127.0.0.1:PORT)")
    ap.add_argument("--label", default="", help="free text copied into the output line (pool, mode, broker)")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("-n must be at least 1")
    s = Celery(args) if args.system == "celery" else Conq(args)
    res = run(s, args.experiment, args.n)
    line = {"system": s.name, "version": s.version, "experiment": args.experiment, "n": args.n,
            "label": args.label, "python": platform.python_version(), "time": time.strftime("%H:%M:%S", time.gmtime()),
            "load1": _load1()}
    line.update({k: round(v, 4) for k, v in res.items()})
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
