#!/usr/bin/env bash
# Helpers to run a private Redis Cluster for tests. Source this file, then:
#   redis_cluster_start     # sets CONQ_TEST_REDIS_CLUSTER_URL, CONQ_TEST_REDIS_CLUSTER_ADDRS,
#                           # REDIS_CLUSTER_DIR
#   redis_cluster_stop
# The cluster is 3 masters and 3 replicas (REDIS_CLUSTER_MASTERS,
# REDIS_CLUSTER_REPLICAS change that), each a redis-server on a free loopback
# port with append-only files in a private temp dir, joined with
# `redis-cli --cluster create`. The URL is in go-redis ParseClusterURL form:
#   redis://127.0.0.1:P1?addr=127.0.0.1:P2&addr=127.0.0.1:P3...
# Nothing here uses the machine's own Redis. Failover tests that kill nodes
# start their own cluster (internal/testenv/redisproc); this one stays healthy.

# free_port and redis_ensure_installed come from redis.sh.
if ! declare -F free_port >/dev/null; then
  # shellcheck source=redis.sh
  source "$(dirname "${BASH_SOURCE[0]}")/redis.sh"
fi

# free_ports N: prints N distinct free loopback ports, one a line (all
# bound at once, so they differ).
free_ports() {
  python3 - "$1" <<'PY' 2>/dev/null || for _ in $(seq 1 "$1"); do echo $(( 20000 + RANDOM % 20000 )); done
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
PY
}

# redis_cluster_node_launch DIR PORT BUSPORT: starts one cluster-enabled,
# append-only redis-server in DIR (daemonized; returns at once).
redis_cluster_node_launch() {
  local dir=$1 port=$2 bus=$3 busargs=()
  mkdir -p "$dir"
  rm -f "$dir/nodes.conf" "$dir/redis.log" "$dir/redis.pid"
  # Redis 6 has no --cluster-port: its bus is port+10000.
  [ "$REDIS_CLUSTER_MAJOR" -ge 7 ] && busargs=(--cluster-port "$bus")
  # node-timeout 3s: gossip settles fast after the create, and a node that a
  # busy 2-core machine starves for a moment is not failed over. No
  # diskless-sync delay: replicas sync at once instead of after 5s.
  redis-server --port "$port" "${busargs[@]}" --bind 127.0.0.1 \
    --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
    --cluster-node-timeout 3000 --appendonly yes --appendfsync everysec --save "" \
    --repl-diskless-sync-delay 0 \
    --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log" >/dev/null 2>&1
}

# redis_cluster_nodes_start N: starts N nodes n1..nN in parallel on free
# ports, retrying a node on new ports when its port was taken meanwhile;
# sets REDIS_CLUSTER_PORTS.
redis_cluster_nodes_start() {
  local n=$1 i try ports=() up p
  REDIS_CLUSTER_PORTS=()
  for try in 1 2 3 4 5; do
    local todo=()
    for i in $(seq 1 "$n"); do [ -z "${REDIS_CLUSTER_PORTS[$i]:-}" ] && todo+=("$i"); done
    [ ${#todo[@]} -eq 0 ] && break
    if [ "$REDIS_CLUSTER_MAJOR" -ge 7 ]; then
      mapfile -t ports < <(free_ports $(( 2 * ${#todo[@]} )))
    else
      ports=()
      for _ in $(seq 1 $(( 2 * ${#todo[@]} ))); do ports+=($(( 20000 + RANDOM % 30000 ))); done
    fi
    local k=0
    for i in "${todo[@]}"; do
      redis_cluster_node_launch "$REDIS_CLUSTER_DIR/n$i" "${ports[$k]}" "${ports[$((k + 1))]}" &
      k=$((k + 2))
    done
    wait
    k=0
    for i in "${todo[@]}"; do
      p=${ports[$k]}
      k=$((k + 2))
      up=0
      for _ in $(seq 1 100); do
        if redis-cli -p "$p" ping 2>/dev/null | grep -q PONG; then up=1; break; fi
        [ -f "$REDIS_CLUSTER_DIR/n$i/redis.log" ] && grep -q "Address already in use" "$REDIS_CLUSTER_DIR/n$i/redis.log" && break
        sleep 0.1
      done
      if [ $up -eq 1 ]; then
        REDIS_CLUSTER_PORTS[$i]=$p
      else
        [ -f "$REDIS_CLUSTER_DIR/n$i/redis.pid" ] && kill -9 "$(cat "$REDIS_CLUSTER_DIR/n$i/redis.pid")" 2>/dev/null || true
        echo "redis cluster: node $i did not answer on port $p (try $try); log tail:" >&2
        tail -n 5 "$REDIS_CLUSTER_DIR/n$i/redis.log" >&2 2>/dev/null
      fi
    done
  done
  for i in $(seq 1 "$n"); do [ -n "${REDIS_CLUSTER_PORTS[$i]:-}" ] || return 1; done
  REDIS_CLUSTER_PORTS=("${REDIS_CLUSTER_PORTS[@]}")
}

# redis_cluster_fail MSG: prints MSG and every node's log tail, stops the
# nodes and returns 1.
redis_cluster_fail() {
  echo "redis cluster: $1" >&2
  local log
  for log in "$REDIS_CLUSTER_DIR"/*/redis.log; do
    [ -f "$log" ] || continue
    echo "--- ${log#"$REDIS_CLUSTER_DIR"/} (last 15 lines)" >&2
    tail -n 15 "$log" >&2
  done
  [ -f "$REDIS_CLUSTER_DIR/create.log" ] && { echo "--- redis-cli --cluster create" >&2; tail -n 30 "$REDIS_CLUSTER_DIR/create.log" >&2; }
  redis_cluster_stop
  return 1
}

redis_cluster_start() {
  redis_ensure_installed || { echo "cannot install redis-server" >&2; return 1; }
  command -v redis-cli >/dev/null 2>&1 || { echo "redis-cli not found (apt-get install redis-tools)" >&2; return 1; }
  local masters=${REDIS_CLUSTER_MASTERS:-3} replicas=${REDIS_CLUSTER_REPLICAS:-1}
  local total=$(( masters * (1 + replicas) )) started=$SECONDS
  REDIS_CLUSTER_MAJOR=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
  REDIS_CLUSTER_MAJOR=${REDIS_CLUSTER_MAJOR:-7}
  REDIS_CLUSTER_DIR=$(mktemp -d /tmp/conq-redis-cluster.XXXXXX)
  export REDIS_CLUSTER_DIR
  local port
  redis_cluster_nodes_start "$total" || { redis_cluster_fail "could not start $total redis-server nodes"; return 1; }
  local addrs=()
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do addrs+=("127.0.0.1:$port"); done
  # --cluster create assigns the slots in equal ranges to the first
  # $masters nodes and the others as their replicas; it waits for the join
  # itself. Bounded: a wedged node must not hang make test.
  if ! timeout 120 redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes \
      >"$REDIS_CLUSTER_DIR/create.log" 2>&1; then
    redis_cluster_fail "redis-cli --cluster create failed"
    return 1
  fi
  # Every node must agree before tests start: state ok, all slots covered,
  # every node known, so no client meets CLUSTERDOWN or a stale map; and
  # every replica is in sync with its master.
  local deadline=$(( SECONDS + 60 )) ok info synced
  while :; do
    ok=1
    synced=0
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
      info=$(redis-cli -p "$port" cluster info 2>/dev/null | tr -d '\r')
      if ! grep -q '^cluster_state:ok$' <<<"$info" ||
         ! grep -q '^cluster_slots_ok:16384$' <<<"$info" ||
         ! grep -q "^cluster_known_nodes:$total\$" <<<"$info"; then
        ok=0
        break
      fi
      redis-cli -p "$port" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up$' && synced=$((synced + 1))
    done
    if [ $ok -eq 1 ] && [ $synced -ne $(( masters * replicas )) ]; then
      ok=0
      info="$synced of $(( masters * replicas )) replicas in sync"
    fi
    [ $ok -eq 1 ] && break
    if [ $SECONDS -ge $deadline ]; then
      redis_cluster_fail "not healthy after 60s (last check, node 127.0.0.1:$port: $(grep -E '^cluster_(state|slots_ok|known_nodes):|in sync' <<<"$info" | tr '\n' ' '))"
      return 1
    fi
    sleep 0.2
  done
  local url="redis://${addrs[0]}" sep="?"
  for a in "${addrs[@]:1}"; do url+="${sep}addr=$a"; sep="&"; done
  export CONQ_TEST_REDIS_CLUSTER_URL=$url
  export CONQ_TEST_REDIS_CLUSTER_ADDRS="${addrs[*]}"
  echo "private redis cluster ($masters masters, $replicas replica(s) each) on ${addrs[*]} in $(( SECONDS - started ))s (dir $REDIS_CLUSTER_DIR)" >&2
}

redis_cluster_stop() {
  [ -n "${REDIS_CLUSTER_DIR:-}" ] && [ -d "$REDIS_CLUSTER_DIR" ] || return 0
  local pidf pids=()
  for pidf in "$REDIS_CLUSTER_DIR"/*/redis.pid; do
    [ -f "$pidf" ] && pids+=("$(cat "$pidf")")
  done
  [ ${#pids[@]} -gt 0 ] && { kill "${pids[@]}" 2>/dev/null || true; }
  local pid
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$REDIS_CLUSTER_DIR"
  unset CONQ_TEST_REDIS_CLUSTER_URL CONQ_TEST_REDIS_CLUSTER_ADDRS
  return 0
}
