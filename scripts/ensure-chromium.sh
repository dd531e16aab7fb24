#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (server/ chromedp test)
# when it is missing. Safe to run repeatedly; prints the browser's path.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo /usr/bin/chromium
  exit 0
fi
echo "chromium not found: installing it with apt-get" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -qq >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
test -x /usr/bin/chromium || { echo "chromium install failed" >&2; exit 1; }
echo /usr/bin/chromium
