#!/usr/bin/env bash
# Measures `conq primes` sequentially and on the goroutine pool, and the
# book's Python scripts, on this machine. Go runs alternate (seq, pool,
# seq, pool, ...) so that background load hits both alike.
#
#   bench/scripts/primes_compare.sh [ROUNDS] [WORKERS]   (defaults: 5, nproc)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
workers=${2:-$(nproc)}
conq=$(mktemp -d)/conq
go build -o "$conq" ./cmd/conq

echo "nproc: $(nproc)   $(uptime | sed 's/.*load/load/')"
echo "go: $(go version | cut -d' ' -f3)   python: $(python3 --version | cut -d' ' -f2)"

# run MODE WORKERS prints "total_s cpu_s": conq's own total, and the user+sys
# CPU time of the process (how much CPU it got, whatever the load).
run() {
  local out cpu
  out=$(mktemp)
  cpu=$( { TIMEFORMAT='%U %S'; time "$conq" primes --mode "$1" --workers "$2" --json >"$out"; } 2>&1 )
  printf '%s %s\n' "$(sed -n 's/.*"total_s": \([0-9.]*\).*/\1/p' "$out")" "$(echo "$cpu" | awk '{print $1 + $2}')"
  rm -f "$out"
}
seq_t=() pool_t=()
for r in $(seq "$rounds"); do
  read -r s scpu < <(run seq 1)
  read -r p pcpu < <(run pool "$workers")
  seq_t+=("$s") pool_t+=("$p")
  printf 'round %2d: seq %.3fs (cpu %.2fs)  pool(%d) %.3fs (cpu %.2fs, %.2f cores)  speedup %.2fx  [%s]\n' \
    "$r" "$s" "$scpu" "$workers" "$p" "$pcpu" "$(echo "$pcpu / $p" | bc -l)" "$(echo "$s / $p" | bc -l)" "$(cut -d' ' -f1 /proc/loadavg)"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
best() { printf '%s\n' "$@" | sort -g | head -n 1; }
ms=$(median "${seq_t[@]}") mp=$(median "${pool_t[@]}")
printf 'median: seq %.3fs  pool(%d) %.3fs  speedup %.2fx\n' "$ms" "$workers" "$mp" "$(echo "$ms / $mp" | bc -l)"
bs=$(best "${seq_t[@]}") bp=$(best "${pool_t[@]}")
printf 'best:   seq %.3fs  pool(%d) %.3fs  speedup %.2fx\n' "$bs" "$workers" "$bp" "$(echo "$bs / $bp" | bc -l)"

if [ "${SKIP_PYTHON:-}" = "" ]; then
  echo "== python3 bench/python/sequential.py"
  python3 bench/python/sequential.py | tail -n 1
  echo "== python3 bench/python/procs.py $workers"
  python3 bench/python/procs.py "$workers" | tail -n 1
fi
echo "after: $(uptime | sed 's/.*load/load/')"
