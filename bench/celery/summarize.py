"""Summarize the JSON lines of bench/scripts/celery_compare.sh: per
measurement the median over rounds (every round's value beside it), then
conq-vs-Celery ratios computed round by round (the two systems of a round
ran minutes apart under the same background load) and their median.

    python3 bench/celery/summarize.py RESULTS.jsonl
"""
import json
import statistics
import sys

# experiment -> (metric, unit, higher is better)
METRIC = {
    "enqueue": ("tasks_per_s", "tasks/s", True),
    "e2e": ("tasks_per_s", "tasks/s", True),
    "map": ("tasks_per_s", "tasks/s", True),
    "latency": ("p50_ms", "ms p50", False),
    "io": ("seconds", "s wall", False),
    "iomap": ("seconds", "s wall", False),
    "chord": ("chords_per_s", "chords/s", True),
}
EXTRA = {"io": [("enqueue_seconds", "s enqueue phase")], "e2e": [("enqueue_tasks_per_s", "enqueue phase tasks/s")], "latency": [("p99_ms", "ms p99")],
         "chord": [("tasks_per_s", "tasks/s"), ("seconds", "s wall")]}
IO_FULL = 2000  # issue 11's batch: fewer Celery prefork tasks are scaled to it

# (experiment, conq label, celery label): ratios "conq is X times better".
PAIRS = [
    ("enqueue", "redis, no worker", "redis, no worker"),
    ("e2e", "redis, worker -c 2", "prefork -c 2"),
    ("e2e", "embedded -c 2", "prefork -c 2"),
    ("map", "redis, worker -c 2, Executor.map", "prefork -c 2, group().get()"),
    ("map", "embedded -c 2, Executor.map", "prefork -c 2, group().get()"),
    ("latency", "redis, worker -c 2", "prefork -c 2"),
    ("latency", "embedded -c 2", "prefork -c 2"),
    ("io", "redis, 2 processes x 100 async slots", "threads -c 200"),
    ("io", "redis, 2 processes x 100 threads", "threads -c 200"),
    ("io", "redis, 2 processes x 100 async slots", "prefork -c 2"),
    ("io", "redis, 2 processes x 100 threads", "prefork -c 2"),
    ("iomap", "redis, 2 processes x 100 async slots, Executor.map", "threads -c 200, group().get()"),
    ("iomap", "redis, 2 processes x 100 threads, Executor.map", "threads -c 200, group().get()"),
    ("chord", "redis, worker -c 2", "prefork -c 2"),
    ("chord", "embedded -c 2", "prefork -c 2"),
]


def value(r, metric):
    v = r.get(metric)
    if v is None:
        return None
    if r["experiment"] in ("io", "iomap") and metric == "seconds" and r["n"] != IO_FULL:
        return v * IO_FULL / r["n"]  # extrapolated linearly: labelled below
    return v


def fmt(v):
    if v is None:
        return "-"
    return "{:,.0f}".format(v) if abs(v) >= 100 else "{:.3g}".format(v)


def main(path):
    rows = {}
    order = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            k = (r["experiment"], r["system"], r["label"])
            if k not in rows:
                rows[k] = []
                order.append(k)
            rows[k].append(r)
    print("| experiment | system | setup | n | median | unit | rounds |")
    print("|---|---|---|---:|---:|---|---|")
    for k in order:
        exp, system, label = k
        rs = rows[k]
        if any("pending" in r for r in rs):
            print("| %s | %s | %s | %d | pending | | %s |" % (exp, system, label, rs[0]["n"], rs[0]["pending"]))
            continue
        metric, unit, _ = METRIC[exp]
        for m, u in [(metric, unit)] + EXTRA.get(exp, []):
            vs = [value(r, m) for r in rs]
            vs = [v for v in vs if v is not None]
            if not vs:
                continue
            if exp in ("io", "iomap") and m == "seconds" and rs[0]["n"] != IO_FULL:
                u += " (ran %d, x%d to %d tasks)" % (rs[0]["n"], IO_FULL // rs[0]["n"], IO_FULL)
            print("| %s | %s | %s | %d | %s | %s | %s |" % (exp, system, label, rs[0]["n"], fmt(statistics.median(vs)), u,
                                                          ", ".join(fmt(v) for v in vs)))
    print()
    print("| experiment | conq | Celery | conq better by (median of per-round ratios) | per round |")
    print("|---|---|---|---:|---|")
    for exp, ql, cl in PAIRS:
        q, c = rows.get((exp, "conq", ql)), rows.get((exp, "celery", cl))
        if not q or not c:
            continue
        if any("pending" in r for r in q + c):
            print("| %s | %s | %s | pending | |" % (exp, ql, cl))
            continue
        metric, _, higher = METRIC[exp]
        ratios = []
        for a, b in zip(q, c):
            va, vb = value(a, metric), value(b, metric)
            if va and vb:
                ratios.append(va / vb if higher else vb / va)
        if ratios:
            print("| %s | %s | %s | %.2fx | %s |" % (exp, ql, cl, statistics.median(ratios),
                                                   ", ".join("%.2f" % x for x in ratios)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: summarize.py RESULTS.jsonl")
    main(sys.argv[1])
