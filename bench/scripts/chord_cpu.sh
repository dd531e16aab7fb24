#!/usr/bin/env bash
# CPU of each process for Celery experiment 3's conq side (docs/benchmarks.md,
# "Python chords: small settle calls"): one Python producer creating N chords
# of 10 no-op members and a callback, one POST each, against `conq server
# --broker` and `conq worker -c 2 -p 2 --exec "python3 conq_tasks.py"` on a
# private redis-server; prints the driver's rate and the CPU the server, the
# Go worker, the Python workers and Redis used during it.
#
#   bench/scripts/chord_cpu.sh [ROUNDS]         (N chords a round: $N, 2000)
#
# CONQ_BIN runs another build (default: this checkout's, built here), for
# A/B runs of two builds against one script.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
rounds=${1:-1}
n=${N:-2000}
work=$(mktemp -d /tmp/chord-cpu.XXXXXX)
/usr/bin/python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --no-index "$root/sdk/python" >/dev/null
py=$work/venv/bin/python
conq=${CONQ_BIN:-}
if [ -z "$conq" ]; then
  go build -o "$work/conq" ./cmd/conq
  conq=$work/conq
fi
# shellcheck source=../../scripts/redis.sh
source scripts/redis.sh
redis_start
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  redis_stop
  rm -rf "$work"
}
trap cleanup EXIT
port=$CONQ_TEST_REDIS_PORT
broker="redis://127.0.0.1:$port/0"
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pyticks() {  # pyticks WORKER_PID: the Python workers' (the Go worker's own command line names them too)
  local s=0 p
  for p in $(pgrep -f "$py conq_tasks.py"); do [ "$p" = "$1" ] || s=$((s + $(ticks "$p"))); done
  echo "$s"
}
rcpu() { redis-cli -p "$port" info cpu | awk -F: '/used_cpu_(sys|user):/ {s += $2} END {printf "%d", s * 1000}'; }
ms() { echo $(( ($1) * 1000 / hz )); }
for r in $(seq "$rounds"); do
  redis-cli -p "$port" flushall >/dev/null
  rm -f "$work/url"
  (cd bench/celery && exec "$conq" server --broker "$broker" --listen 127.0.0.1:0 --url-file "$work/url") >"$work/server.log" 2>&1 &
  sp=$!
  pids+=("$sp")
  for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done
  (cd bench/celery && exec "$conq" worker --broker "$broker" -c 2 -p 2 --exec "$py conq_tasks.py") >"$work/worker.log" 2>&1 &
  wp=$!
  pids+=("$wp")
  sleep 2
  s0=$(ticks "$sp") w0=$(ticks "$wp") p0=$(pyticks "$wp") r0=$(rcpu)
  line=$("$py" bench/celery/driver.py conq chord -n "$n" --url "$(cat "$work/url")" --label chord_cpu)
  s1=$(ticks "$sp") w1=$(ticks "$wp") p1=$(pyticks "$wp") r1=$(rcpu)
  rate=$(echo "$line" | "$py" -c 'import json, sys; d = json.loads(sys.stdin.read()); print("%.0f chords/s in %.2f s" % (d["chords_per_s"], d["seconds"]))')
  echo "round $r: $rate; CPU ms: server $(ms "$s1 - $s0"), Go worker $(ms "$w1 - $w0"), Python workers $(ms "$p1 - $p0"), redis $((r1 - r0))"
  kill -TERM "$sp" "$wp"
  wait "$sp" "$wp" 2>/dev/null || true
  pids=()
done
