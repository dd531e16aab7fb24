#!/usr/bin/env bash
# Runs BenchmarkPool's contenders in alternation, ROUNDS times each, so that
# background load hits all of them alike, and prints min and median ns/op.
#
#   bench/scripts/pool_compare.sh [ROUNDS] [BENCHTIME]   (defaults: 10, 1s)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
benchtime=${2:-1s}
bin=$(mktemp -d)/bench.test
go test -c -o "$bin" .
peers="goroutines errgroup ants pond conc conq"
echo "nproc: $(nproc)   $(uptime | sed 's/.*load/load/')"
out=$(mktemp)
for r in $(seq "$rounds"); do
  for p in $peers; do
    "$bin" -test.run '^$' -test.bench "^BenchmarkPool/$p\$" -test.benchmem -test.benchtime "$benchtime" | grep '^BenchmarkPool' >>"$out"
  done
done
echo "after: $(uptime | sed 's/.*load/load/')"
printf '%-12s %10s %10s %8s %10s\n' peer "min ns/op" "med ns/op" "B/op" "allocs/op"
for p in $peers; do
  grep "^BenchmarkPool/$p-" "$out" | awk -v p="$p" '
    { ns[NR] = $3; b = $5; a = $7 }
    END {
      n = asort(ns)
      med = (n % 2) ? ns[(n + 1) / 2] : (ns[n / 2] + ns[n / 2 + 1]) / 2
      printf "%-12s %10.0f %10.0f %8s %10s\n", p, ns[1], med, b, a
    }'
done
