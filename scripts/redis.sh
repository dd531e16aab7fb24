#!/usr/bin/env bash
# Helpers to run a private redis-server for tests. Source this file, then:
#   redis_start            # sets CONQ_TEST_REDIS_URL, CONQ_TEST_REDIS_PORT, REDIS_DIR
#   redis_stop
# The server listens on a free loopback port, keeps nothing on disk and is
# installed with apt-get when missing. The machine's own Redis is never used.

redis_ensure_installed() {
  if command -v redis-server >/dev/null 2>&1; then return 0; fi
  echo "redis-server not found: installing it with apt-get" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  # The Debian package starts a system service; tests never rely on it.
  command -v redis-server >/dev/null 2>&1
}

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $(( 20000 + RANDOM % 20000 ))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

redis_start() {
  redis_ensure_installed || { echo "cannot install redis-server" >&2; return 1; }
  REDIS_DIR=$(mktemp -d /tmp/conq-redis.XXXXXX)
  local port tries=0
  while :; do
    port=$(free_port)
    if redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_DIR/redis.pid" \
        --logfile "$REDIS_DIR/redis.log" >/dev/null 2>&1; then
      for _ in $(seq 1 50); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
      done
      if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
    fi
    tries=$((tries + 1))
    if [ $tries -ge 5 ]; then echo "could not start redis-server" >&2; cat "$REDIS_DIR/redis.log" >&2; return 1; fi
  done
  export CONQ_TEST_REDIS_PORT=$port
  export CONQ_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
  export REDIS_DIR
  echo "private redis-server on 127.0.0.1:$port (dir $REDIS_DIR)" >&2
}

redis_stop() {
  if [ -n "${CONQ_TEST_REDIS_PORT:-}" ]; then
    redis-cli -p "$CONQ_TEST_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  fi
  if [ -f "${REDIS_DIR:-/nonexistent}/redis.pid" ]; then
    kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true
  fi
  [ -n "${REDIS_DIR:-}" ] && rm -rf "$REDIS_DIR"
  return 0
}
