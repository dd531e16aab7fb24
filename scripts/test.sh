#!/usr/bin/env bash
# `make test`: every test in the repository. It starts what it needs (a
# private redis-server and a private Redis Cluster on free ports) and stops
# them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/redis.sh
source scripts/redis-cluster.sh

export CI="${CI:-}"
redis_start
trap 'redis_cluster_stop; redis_stop' EXIT
# A 3-master Redis Cluster (with replicas) for the cluster tests:
# CONQ_TEST_REDIS_CLUSTER_URL.
redis_cluster_start

# Tests that need servers fail instead of skipping when they are missing.
export CONQ_REQUIRE_SERVERS=1

# The dashboard tests drive a real headless Chromium (Debian's package).
./scripts/ensure-chromium.sh >/dev/null

# CPython 3.14 (from the Go module proxy, cached) for the sub-interpreter
# tests on concurrent.interpreters; they run on every Python >= 3.13 found,
# so without it they still run on 3.13.
if py314=$(./scripts/python314.sh); then
  export PATH="$(dirname "$py314"):$PATH"
else
  echo "note: no CPython 3.14; the sub-interpreter tests run on 3.13 only" >&2
fi

# Every Go module of the repository (go.work lists them); bench/ is run
# below without -race, as its tests only check the harness.
echo "== go test -race (library, cmd/conq, tests)"
go test -race -count=1 -timeout 30m $(go list ./... ./cmd/conq/... ./tests/... | grep -v -E '/tests/(reliability|scale)$')

# The reliability and scale tests print what they measured (tasks run twice
# after the kills, tasks acknowledged across the Redis restart and the
# failovers, tasks completed across the latency proxies): run them verbosely
# and show those lines with the verdicts.
echo "== go test -race ./tests/reliability/ ./tests/scale/ (kill test, Redis restart, failovers, remote workers, bad input)"
go test -race -count=1 -timeout 15m -v ./tests/reliability/ ./tests/scale/ >"$REDIS_DIR/reliability.log" 2>&1 && rel=0 || rel=$?
grep -E '^(--- |ok|FAIL|PASS|kill test|redis restart)|(failover: |tasks completed over )' "$REDIS_DIR/reliability.log" | sed -E 's/^ +[a-z_]+\.go:[0-9]+: /    /' || true
if [ "$rel" -ne 0 ]; then cat "$REDIS_DIR/reliability.log"; exit "$rel"; fi

if [ -d sdk/python ]; then
  # The package is installed into a fresh venv (the in-tree build backend
  # needs no package index) and the tests import the installed copy, run
  # from outside the source tree.
  echo "== pip install ./sdk/python into a fresh venv; python3 -m unittest against the install"
  go build -o bin/conq ./cmd/conq
  venv="$REDIS_DIR/venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --no-index ./sdk/python
  # A hung worker must fail the run, not hold it (each frame read also
  # times out after 60 s in the tests).
  (cd "$REDIS_DIR" && CONQ_BIN="$OLDPWD/bin/conq" timeout 900 "$venv/bin/python" -m unittest discover -s "$OLDPWD/sdk/python/tests" -v 2>&1 | tail -n 5)
fi

echo "== bench module compiles and its tests pass"
(cd bench && go vet ./... && go test -count=1 -run . -bench '^$' ./...)
