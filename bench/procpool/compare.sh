#!/usr/bin/env bash
# Reproduces the numbers in docs/benchmarks.md. Run from anywhere;
# REPS (default 3) sets the repetitions. Runs alternate between the things
# compared so that load from elsewhere hits both alike.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
bin=$(mktemp -d)/conq
trap 'rm -rf "$(dirname "$bin")"' EXIT

echo "== machine: nproc $(nproc), $(go version | cut -d' ' -f3), $(python3 --version), load $(cut -d' ' -f1-3 /proc/loadavg)"
go build -o "$bin" ./cmd/conq

echo "== round trips and 64 MiB echo (bench/procpool)"
(cd bench && go test -run '^$' -bench . -benchtime 2s -count "$REPS" ./procpool/ | grep -E '^Benchmark')

echo "== Python baselines, chunksize 1"
for _ in $(seq "$REPS"); do
  python3 bench/python/mp_pool.py
  python3 bench/python/mp_executor.py
done
python3 bench/python/mp_bytes.py
python3 bench/procpool/mp_shm.py   # shared_memory handoff and copy, the peers of go-buffer and go-buffer-copy

echo "== primes: Go worker processes vs goroutine pool, $(nproc) workers"
for _ in $(seq "$REPS"); do
  echo "pool: $("$bin" primes --mode pool | tail -1)  load $(cut -d' ' -f1 /proc/loadavg)"
  echo "proc: $("$bin" primes --mode proc | tail -1)  load $(cut -d' ' -f1 /proc/loadavg)"
done

procs=bench/python/procs.py # Fluent Python's procs.py
echo "== primes: Python worker processes vs $procs, $(nproc) workers"
for _ in $(seq "$REPS"); do
  echo "$procs: $(python3 "$procs" "$(nproc)" | tail -1)  load $(cut -d' ' -f1 /proc/loadavg)"
  echo "proc+python: $("$bin" primes --mode proc --worker-cmd "python3 sdk/python/examples/primes_worker.py" | tail -1)  load $(cut -d' ' -f1 /proc/loadavg)"
done
