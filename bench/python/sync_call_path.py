"""Per-call Python path of the sync worker without I/O: a META call frame
(as queue/procexec sends for Executor.map) through the sync mode's parse,
run and answer, the answer written to /dev/null.

    PYTHONPATH=sdk/python python3 bench/python/sync_call_path.py 100000
(an extra argument: profile with cProfile)."""
import json, os, sys, time, struct
import conq
from conq import _serve

w = conq.Worker()

@w.task
def noop(x):
    return x

devnull = os.open("/dev/null", os.O_WRONLY)
srv = _serve.Server(-1, devnull, 1 << 26, 2, w._tasks)
srv.configure(None, None, None)
srv._direct = True
srv._early = set()
if not hasattr(srv, "_run_direct_call"):  # the old tree: what the reader thread and main loop did per call
    def old(f):
        _k, flags, fid, name, payload = f
        with srv._clock:
            if fid in srv._calls:
                raise Exception
        c = srv._parse_call(fid, name, flags, payload)
        with srv._clock:
            srv._calls[fid] = c
        srv._run_main_call(c)
    srv._run_direct_call = old
if hasattr(srv, "_take_direct_call"):  # take (parse, register) then run
    _take, _run = srv._take_direct_call, srv._run_direct_call

    def step(f):
        c = _take(f)
        if c is not None:
            _run(c)
else:
    step = srv._run_direct_call
meta = json.dumps({"task_id": "WLZ6LBSDQEIAO4T2XEW766YV", "kind": "noop", "queue": "default", "attempt": 1,
                   "max_retries": 0, "encoding": "args"}).encode()
payload = struct.pack(">I", len(meta)) + meta + b'{"args":[7]}'
def frames(n):
    for i in range(1, n + 1):
        yield (2, 1, i, "noop", payload)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
if len(sys.argv) > 2:
    import cProfile, pstats
    cProfile.run("for f in frames(n): step(f)", "/tmp/pwx/prof.out")
    pstats.Stats("/tmp/pwx/prof.out").sort_stats("tottime").print_stats(18)
else:
    best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        for f in frames(n):
            step(f)
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    print("%.2f us per call (best of 5)" % best)
