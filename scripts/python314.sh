#!/usr/bin/env bash
# Prints the path of a CPython 3.14 interpreter, for the sub-interpreter
# tests on concurrent.interpreters (PEP 734), fetching it once when missing.
# Debian 12 and this machine's pyenv stop at 3.13, and no Python download
# site is reachable; the Go module proxy is, and it serves
# python-build-standalone builds inside github.com/kluctl/go-embed-python.
# The interpreter is kept in ~/.cache/conq; its directory holds only
# python3.14, so putting it on PATH shadows no other command.
set -euo pipefail
MODULE=github.com/kluctl/go-embed-python
VERSION=v0.0.0-3.14.6-20260610-1
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/conq/python-3.14.6"
PY="$CACHE/path/python3.14"
if [ -x "$PY" ] && "$PY" -c 'import concurrent.interpreters' 2>/dev/null; then echo "$PY"; exit 0; fi
if [ "$(uname -sm)" != "Linux x86_64" ]; then echo "python314.sh: no prebuilt CPython 3.14 for $(uname -sm)" >&2; exit 1; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dir=$(cd "$tmp" && go mod init fetch314 >/dev/null 2>&1 && go mod download -json "$MODULE@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
data="$dir/python/internal/data/linux-amd64"
if [ ! -d "$data" ]; then echo "python314.sh: $MODULE@$VERSION has no $data" >&2; exit 1; fi
mkdir -p "$(dirname "$CACHE")"
rm -rf "$CACHE.tmp"
cp -r "$data" "$CACHE.tmp"
chmod -R u+w "$CACHE.tmp"
find "$CACHE.tmp" -name '*.gz' -exec gunzip -f {} +
chmod +x "$CACHE.tmp"/bin/*
mkdir -p "$CACHE.tmp/path"
ln -s ../bin/python3.14 "$CACHE.tmp/path/python3.14"
rm -rf "$CACHE"
mv "$CACHE.tmp" "$CACHE"
"$PY" -c 'import concurrent.interpreters' >/dev/null
echo "$PY"
