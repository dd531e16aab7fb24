#!/usr/bin/env bash
# `make fuzz`: run every fuzz target for a while. Usage:
#   scripts/fuzz.sh [FUZZTIME] [NAME_REGEXP]
# FUZZTIME is go test's -fuzztime: a duration (30s, 5m) or a count of
# executions (1000000x). NAME_REGEXP picks targets (default: all).
# Each target's seed corpus (testdata/fuzz/NAME) also runs with plain
# `go test`, so `make test` replays every committed input. -timeout 0:
# go test's default 10m would end long runs.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-${FUZZTIME:-30s}}"
only="${2:-.}"

# package  target   (every parser of user or wire input)
targets=(
  "./internal/wire            FuzzDecodeFrame"     # process protocol frames (procpool)
  "./internal/wire            FuzzMetaJSON"        # the META encoder against encoding/json
  "./procpool                 FuzzParseStat"       # /proc/<pid>/stat lines (the subreaper)
  "./queue/broker/redis       FuzzDecode"          # task records as stored in Redis
  "./queue/broker/redis       FuzzParseURL"        # broker URLs
  "./queue/broker/redis       FuzzWorkflowRecords" # workflow records as stored in Redis
  "./queue/spec               FuzzTaskSpecJSON"    # task specifications: HTTP bodies, JSON
  "./queue/spec               FuzzParseList"       # lists of task specifications (HTTP batch enqueue)
  "./queue/spec               FuzzTaskLine"        # conq enqueue --file lines
  "./queue/spec               FuzzTaskSpecYAML"    # task specifications in YAML
  "./queue/spec               FuzzScheduleFile"    # schedule files
  "./queue/spec               FuzzParseFlow"       # workflow files (POST /api/v1/workflows, conq enqueue --flow)
  "./queue/spec               FuzzScanFlow"        # the flow parser's single pass against the general one
  "./queue/spec               FuzzScanFlowShapes"  # the same on generated, mostly valid flows
  "./queue/spec               FuzzScanList"        # ParseList's single pass against its decoder
  "./queue                    FuzzCronSpec"        # cron specs
  "./queue                    FuzzScanArgs"        # call arguments as a Go handler reads them (ScanArgs)
  "./queue/spec               FuzzParseDuration"   # the duration grammar
  "./cmd/conq/cli             FuzzTaskFile"        # conq enqueue --file, whole files
  "./server                   FuzzEnqueueBody"     # POST /api/v1/tasks bodies
  "./server                   FuzzResultLine"      # results:stream's hand-written line against encoding/json
  "./server                   FuzzListParams"      # list query parameters
  "./server                   FuzzLocalPath"       # login/form redirect targets
)

# inputs counts the inputs saved under a corpus directory (0 if none yet).
inputs() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }

failed=0
for t in "${targets[@]}"; do
  read -r pkg name _ <<<"$t"
  [[ "$name" =~ $only ]] || continue
  echo "== $name ($pkg, -fuzztime $fuzztime)"
  start=$SECONDS
  corpus="$pkg/testdata/fuzz/$name"
  before=$(inputs "$corpus")
  if out=$(go test -timeout 0 -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
    # The last progress line has the execution count.
    grep -E '^fuzz: elapsed' <<<"$out" | tail -n 1 || true
    echo "ok $name in $((SECONDS - start))s"
  elif [ "$(inputs "$corpus")" -eq "$before" ] && grep -q '^    context deadline exceeded$' <<<"$out"; then
    # Go's fuzz coordinator before Go 1.27 can report its own -fuzztime
    # deadline as a failure, with no input written (golang/go#75804).
    grep -E '^fuzz: elapsed' <<<"$out" | tail -n 1 || true
    echo "ok $name in $((SECONDS - start))s (go test reported its own fuzztime deadline, golang/go#75804; no input failed)"
  else
    echo "$out" | tail -n 40
    echo "FAIL $name (the failing input is saved under $pkg/testdata/fuzz/$name)"
    failed=1
  fi
done

# The Python SDK's frame reader is fuzzed by a randomized test (2000
# random and mutated streams; the Go side is FuzzDecodeFrame).
if [[ "python:ReaderFuzzTest" =~ $only ]] && [ -d sdk/python ]; then
  echo "== ReaderFuzzTest (sdk/python)"
  (cd sdk/python && python3 -m unittest tests.test_conq.ReaderFuzzTest 2>&1 | tail -n 3) || failed=1
fi
exit $failed
