#!/usr/bin/env bash
# Two conq builds against each other on one private redis-server, alternated
# in every round (so background load hits both alike): a Redis-backed
# `conq server` for the HTTP API and a `conq worker` running the Python
# tasks of bench/celery/conq_tasks.py, driven by bench/celery/driver.py.
# For measuring a change before and after in one run (docs/benchmarks.md).
#
#   bench/scripts/conq_ab.sh BASE_BIN NEW_BIN ROUNDS EXPERIMENT N [WORKER ARGS...]
#
#   e.g.  git stash; go build -o /tmp/conq-base ./cmd/conq; git stash pop
#         go build -o /tmp/conq-new ./cmd/conq
#         bench/scripts/conq_ab.sh /tmp/conq-base /tmp/conq-new 3 map 5000
#
# EXPERIMENT and N are driver.py's (map, e2e, latency, chord, ...); WORKER
# ARGS default to "-c 2 -p 2". CONQ_VENV: a venv with ./sdk/python (default:
# a new one of /usr/bin/python3). When the change is in the SDK too,
# CONQ_VENV_BASE and CONQ_VENV_NEW give each build its own venv (e.g. one
# with the base commit's sdk/python), used for its driver and its worker.
# One JSON line per measurement on stdout, labelled base or new, with the
# load average; on stderr, the CPU each process used during it.
set -euo pipefail
[ $# -ge 5 ] || { sed -n 2,20p "$0" >&2; exit 2; }
base=$(realpath "$1") new=$(realpath "$2") rounds=$3 exp=$4 n=$5
shift 5
wargs=("$@")
[ ${#wargs[@]} -gt 0 ] || wargs=(-c 2 -p 2)
cd "$(dirname "$0")/../.."
root=$PWD
work=$(mktemp -d /tmp/conq-ab.XXXXXX)
venv=${CONQ_VENV:-$work/venv}
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --no-index "$root/sdk/python" >/dev/null
fi
qpy=$venv/bin/python
pybase=${CONQ_VENV_BASE:+$CONQ_VENV_BASE/bin/python}
pybase=${pybase:-$qpy}
pynew=${CONQ_VENV_NEW:+$CONQ_VENV_NEW/bin/python}
pynew=${pynew:-$qpy}
# shellcheck source=../../scripts/redis.sh
source scripts/redis.sh
redis_start >&2
broker="redis://127.0.0.1:$CONQ_TEST_REDIS_PORT/0"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  redis_stop
  rm -rf "$work"
}
trap cleanup EXIT
# cpu_ms: user+system CPU in ms of the server, the worker, the worker's
# children (its Python processes) and redis-server, from /proc.
ticks=$(getconf CLK_TCK)
pstat() { awk -v t="$ticks" '{printf "%d", ($14 + $15) * 1000 / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_ms() {
  local k sum=0
  for k in $(pgrep -P "$wpid"); do sum=$((sum + $(pstat "$k"))); done
  echo "$(pstat "${pids[0]}") $(pstat "$wpid") $sum $(pstat "$(cat "$REDIS_DIR/redis.pid")")"
}
echo "nproc: $(nproc)   $(uptime | sed 's/.*load/load/')" >&2
for r in $(seq "$rounds"); do
  # Odd rounds start with base, even rounds with new.
  if [ $((r % 2)) -eq 1 ]; then order=(base new); else order=(new base); fi
  for v in "${order[@]}"; do
    bin=$base py=$pybase
    [ "$v" = new ] && bin=$new py=$pynew
    redis-cli -p "$CONQ_TEST_REDIS_PORT" flushall >/dev/null
    rm -f "$work/url"
    "$bin" server --broker "$broker" --listen 127.0.0.1:0 --url-file "$work/url" >"$work/server.log" 2>&1 &
    pids=($!)
    for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done
    [ -s "$work/url" ] || { echo "conq server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
    (cd bench/celery && exec "$bin" worker --broker "$broker" "${wargs[@]}" --exec "$py conq_tasks.py") >"$work/worker.log" 2>&1 &
    pids+=($!)
    wpid=${pids[1]}
    sleep 1 # the worker's processes start
    c0=$(cpu_ms)
    "$py" bench/celery/driver.py conq "$exp" -n "$n" --url "$(cat "$work/url")" --label "$v round $r"
    c1=$(cpu_ms)
    read -r -a a0 <<<"$c0"
    read -r -a a1 <<<"$c1"
    echo "$v round $r cpu ms: server $((a1[0] - a0[0])) worker $((a1[1] - a0[1])) its processes $((a1[2] - a0[2])) redis-server $((a1[3] - a0[3]))" >&2
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
  done
done
echo "after: $(uptime | sed 's/.*load/load/')" >&2
