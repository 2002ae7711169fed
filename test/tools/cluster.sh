#!/usr/bin/env bash
# `make cluster`: a local 3-member etcd-ts cluster like a compose setup, on 127.0.0.1:
#   node1 client 2379 peer 2380, node2 client 2381 peer 2382, node3 client 2383 peer 2384.
# Data in ./cluster.etcd/<name> (kept between runs: a second `make cluster` restarts the same cluster).
# Runs in the foreground; Ctrl-C (or SIGTERM) stops all three members. Logs: ./cluster.etcd/<name>.log
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="node dist/src/bin/etcd-ts.js"
DIR=${CLUSTER_DIR:-cluster.etcd}
TOKEN=${CLUSTER_TOKEN:-etcd-ts-local-cluster}
mkdir -p "$DIR"
INITIAL="node1=http://127.0.0.1:2380,node2=http://127.0.0.1:2382,node3=http://127.0.0.1:2384"
pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping the cluster (${pids[*]})"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  exit 0
}
trap stop INT TERM EXIT
i=0
for name in node1 node2 node3; do
  client=$((2379 + 2 * i)); peer=$((2380 + 2 * i)); i=$((i + 1))
  $BIN --name "$name" --data-dir "$DIR/$name" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$INITIAL" --initial-cluster-token "$TOKEN" --initial-cluster-state new \
    >"$DIR/$name.log" 2>&1 &
  pids+=($!)
done
echo "started node1..node3 (pids ${pids[*]}); logs in $DIR/<name>.log"
health() {
  node -e 'require("http").get(process.argv[1], (r) => { let b = ""; r.on("data", (d) => (b += d)); r.on("end", () => { console.log(b); process.exit(r.statusCode === 200 ? 0 : 1); }); }).on("error", (e) => { console.log(e.message); process.exit(1); })' "$1"
}
for port in 2379 2381 2383; do
  for _ in $(seq 1 150); do
    if health "http://127.0.0.1:$port/health" >/dev/null 2>&1; then break; fi
    sleep 0.2
  done
  printf 'http://127.0.0.1:%s %s\n' "$port" "$(health "http://127.0.0.1:$port/health" 2>&1 || true)"
done
echo "endpoints: http://127.0.0.1:2379,http://127.0.0.1:2381,http://127.0.0.1:2383 — Ctrl-C stops the cluster"
wait -n "${pids[@]}" || true
echo "a member exited; see its log"
stop
