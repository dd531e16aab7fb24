#!/usr/bin/env bash
# `make test`: every test in the repository. It starts what it needs (a
# private redis-server on a free port) and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/redis.sh

export CI="${CI:-}"
redis_start
trap redis_stop EXIT

# Tests that need servers fail instead of skipping when they are missing.
export CONQ_REQUIRE_SERVERS=1

# The dashboard tests drive a real headless Chromium (Debian's package).
./scripts/ensure-chromium.sh >/dev/null

echo "== go test -race ./..."
go test -race -count=1 -timeout 30m ./...

if [ -d sdk/python ]; then
  echo "== python3 -m unittest (sdk/python)"
  (cd sdk/python && python3 -m unittest discover -s tests -t . -v 2>&1 | tail -n 5)
fi

echo "== bench module compiles and its tests pass"
(cd bench && go vet ./... && go test -count=1 -run . -bench '^$' ./...)
