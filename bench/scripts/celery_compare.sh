#!/usr/bin/env bash
# Celery 5.2 (Debian's python3-celery) against conq, the same tasks from the
# same Python producer, on one private redis-server, the systems alternated
# in every round so that background load hits both alike. Issues 10, 11, 12;
# harness and method: bench/celery/README.md, results: docs/benchmarks.md.
#
#   bench/scripts/celery_compare.sh [EXPERIMENT...]     (default: 1 2 3)
#
#   1  Python package: enqueue rate, end-to-end no-op throughput, sequential
#      delay().get() latency; 2 worker processes a side (conq also embedded)
#   2  execution models: 2,000 tasks waiting 100 ms each
#   3  workflows: chords of 10 no-op members and a callback
#
# Environment: ROUNDS (3), N (5000 tasks for 1), LAT_N (500 calls),
# IO_N (2000), IO_PREFORK_N (200: Celery prefork -c 2 runs 2 waits at a
# time, 2,000 would take 100 s a round; set 2000 to run them all),
# CHORDS (2000), OUT (a file to append the JSON lines to; default a temp
# file, printed at the end), CONQ_VENV (a venv to reuse; default a new one).
#
# It installs what is missing (apt-get: python3-celery python3-redis
# redis-server; a venv of /usr/bin/python3 with ./sdk/python, offline),
# builds bin/conq, starts its own redis-server on a free loopback port
# (scripts/redis.sh; the machine's Redis is never touched) and stops
# everything it started on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
rounds=${ROUNDS:-3}
n=${N:-5000}
lat_n=${LAT_N:-500}
io_n=${IO_N:-2000}
io_prefork_n=${IO_PREFORK_N:-200}
chords=${CHORDS:-2000}
exps=("$@")
[ ${#exps[@]} -gt 0 ] || exps=(1 2 3)
for e in "${exps[@]}"; do
  case $e in 1|2|3) ;; *) echo "celery_compare.sh: unknown experiment '$e' (want 1, 2 or 3)" >&2; exit 2 ;; esac
done

# Celery runs under Debian's interpreter, which is the one that sees the
# Debian packages (a pyenv python3 on PATH does not).
sys_py=/usr/bin/python3
if ! "$sys_py" -c 'import celery, redis' 2>/dev/null; then
  echo "installing python3-celery python3-redis with apt-get" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-celery python3-redis >/dev/null
fi
work=$(mktemp -d /tmp/celery-compare.XXXXXX)
venv=${CONQ_VENV:-$work/venv}
if [ ! -x "$venv/bin/python" ]; then
  "$sys_py" -m venv "$venv"
fi
# Reinstalled every run so the venv has this checkout's SDK.
"$venv/bin/pip" install -q --no-index --force-reinstall "$root/sdk/python" >/dev/null
cpy=$sys_py qpy=$venv/bin/python
go build -o "$work/conq" ./cmd/conq
conq=$work/conq
out=${OUT:-$work/results.jsonl}

# shellcheck source=../../scripts/redis.sh
source scripts/redis.sh
redis_start
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  redis_stop
  rm -rf "$work/logs" "$work/venv" "$work/conq"
}
trap cleanup EXIT
mkdir -p "$work/logs"
port=$CONQ_TEST_REDIS_PORT
# conq and Celery each get a database of the same server; both are flushed
# (FLUSHALL) before each system's services start, never under them, so no
# block of measurements starts with another's leftovers.
conq_broker="redis://127.0.0.1:$port/0"
export CELERY_URL="redis://127.0.0.1:$port/1"

echo "nproc: $(nproc)   $(uptime | sed 's/.*load/load/')"
echo "celery: $("$cpy" -c 'import celery, kombu, redis; print(celery.__version__, "kombu", kombu.__version__, "redis-py", redis.__version__)')   python: $("$cpy" --version | cut -d' ' -f2) ($cpy, $qpy)"
echo "redis-server: $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')   go: $(go version | cut -d' ' -f3)   conq: $(git rev-parse --short HEAD)"
echo "results: $out"

started=()  # pids of the current measurement's services
start() {   # start LOGNAME CMD...: run CMD in bench/celery in the background
  local log=$work/logs/$1.log
  shift
  (cd "$root/bench/celery" && exec "$@") >"$log" 2>&1 &
  pids+=($!) started+=($!)
}
stop_all() {
  local p
  for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${started[@]}"; do wait "$p" 2>/dev/null || true; done
  started=()
}
flush() { redis-cli -p "$port" flushall >/dev/null; }

celery_worker() {  # celery_worker POOL CONCURRENCY
  start celery-worker "$cpy" -m celery -A celery_tasks worker -P "$1" -c "$2" -l warning \
    --without-gossip --without-mingle --without-heartbeat
}
url=""
conq_server() {  # conq_server [ARGS...]: a conq server on a free port; sets url
  rm -f "$work/url"
  start conq-server "$conq" server --listen 127.0.0.1:0 --url-file "$work/url" "$@"
  local i
  for i in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done
  [ -s "$work/url" ] || { echo "conq server did not start:" >&2; cat "$work/logs/conq-server.log" >&2; exit 1; }
  url=$(cat "$work/url")
}
conq_worker() {  # conq_worker CONCURRENCY PROCESSES MODE
  start conq-worker env CONQ_BENCH_MODE="$3" "$conq" worker --broker "$conq_broker" -c "$1" -p "$2" \
    --exec "$qpy conq_tasks.py"
}

# measure SYSTEM EXPERIMENT N LABEL: one driver run, its JSON line to $out.
measure() {
  local sys=$1 exp=$2 count=$3 label=$4 line rc=0
  if [ "$sys" = celery ]; then
    line=$("$cpy" bench/celery/driver.py celery "$exp" -n "$count" --label "$label") || rc=$?
  else
    line=$("$qpy" bench/celery/driver.py conq "$exp" -n "$count" --url "$url" --label "$label") || rc=$?
  fi
  if [ $rc -eq 3 ]; then
    line="{\"system\": \"$sys\", \"experiment\": \"$exp\", \"n\": $count, \"label\": \"$label\", \"pending\": \"the broker has no workflows yet (501 unsupported)\"}"
  elif [ $rc -ne 0 ]; then
    echo "FAILED: $sys $exp $label (exit $rc); logs:" >&2
    tail -n 20 "$work"/logs/*.log >&2
    exit 1
  fi
  echo "$line" | tee -a "$out"
}

exp1_celery() {
  flush; measure celery enqueue "$n" "redis, no worker"
  # The enqueued tasks are dropped before a worker can see them.
  flush; celery_worker prefork 2
  measure celery e2e "$n" "prefork -c 2"
  measure celery map "$n" "prefork -c 2, group().get()"
  measure celery latency "$lat_n" "prefork -c 2"
  stop_all
}
exp1_conq() {
  flush; conq_server --broker "$conq_broker"
  measure conq enqueue "$n" "redis, no worker"
  # The enqueued tasks are dropped before a worker can see them: the server
  # is restarted too, since a flush under a running conq process would
  # remove keys it holds (its worker record, its queue's registration).
  stop_all; flush; conq_server --broker "$conq_broker"
  conq_worker 2 2 ""
  measure conq e2e "$n" "redis, worker -c 2"
  measure conq map "$n" "redis, worker -c 2, Executor.map"
  measure conq latency "$lat_n" "redis, worker -c 2"
  stop_all
  conq_server --exec "$qpy conq_tasks.py" -c 2
  measure conq enqueue "$n" "embedded -c 2 (workers running)"
  measure conq e2e "$n" "embedded -c 2"
  measure conq map "$n" "embedded -c 2, Executor.map"
  measure conq latency "$lat_n" "embedded -c 2"
  stop_all
}
exp2_celery() {
  flush; celery_worker prefork 2
  measure celery io "$io_prefork_n" "prefork -c 2"
  stop_all
  flush; celery_worker threads 200
  measure celery io "$io_n" "threads -c 200"
  measure celery iomap "$io_n" "threads -c 200, group().get()"
  stop_all
}
exp2_conq() {
  flush; conq_server --broker "$conq_broker"
  conq_worker 200 2 async
  measure conq io "$io_n" "redis, 2 processes x 100 async slots"
  measure conq iomap "$io_n" "redis, 2 processes x 100 async slots, Executor.map"
  stop_all
  flush; conq_server --broker "$conq_broker"
  conq_worker 200 2 threads
  measure conq io "$io_n" "redis, 2 processes x 100 threads"
  measure conq iomap "$io_n" "redis, 2 processes x 100 threads, Executor.map"
  stop_all
}
exp3_celery() {
  flush; celery_worker prefork 2
  measure celery chord "$chords" "prefork -c 2"
  stop_all
}
exp3_conq() {
  flush; conq_server --broker "$conq_broker"
  conq_worker 2 2 ""
  measure conq chord "$chords" "redis, worker -c 2"
  stop_all
  conq_server --exec "$qpy conq_tasks.py" -c 2
  measure conq chord "$chords" "embedded -c 2"
  stop_all
}

for r in $(seq "$rounds"); do
  for e in "${exps[@]}"; do
    # Odd rounds start with Celery, even rounds with conq.
    if [ $((r % 2)) -eq 1 ]; then order=(celery conq); else order=(conq celery); fi
    echo "== round $r, experiment $e ($(cut -d' ' -f1-3 /proc/loadavg))"
    for s in "${order[@]}"; do "exp${e}_$s"; done
  done
done
echo "after: $(uptime | sed 's/.*load/load/')"
"$sys_py" bench/celery/summarize.py "$out"
