#!/usr/bin/env bash
# Benchmark etcd-ts against the reference etcd with etcd's own `benchmark` tool
# and regenerate BENCHMARKS.md at the repository root.
#
# Usage:  bench/run.sh            (normally through `make bench`, which builds
#                                  etcd-ts and the reference tools first)
#
# Single member (BENCH_SINGLE=1): for each target, in order (reference etcd,
# then etcd-ts), a fresh single member is started on free 127.0.0.1 ports with
# a fresh temporary data dir; once /health answers, the workloads below run
# with identical flags for both targets; then the member is stopped and its
# data dir removed.
#
# 3-member cluster (BENCH_CLUSTER=1): then, for each target in the same order,
# a fresh 3-member cluster is started on free 127.0.0.1 ports (fresh data
# dirs, a unique --initial-cluster-token); once /health answers on all three
# members, the cluster workloads run with identical flags for both targets,
# every run given all three client endpoints: put, range linearizable and
# range serializable at high concurrency, then a single-client put. The leader
# and each member's counters (leader changes, failed proposals) are read from
# /metrics, then all three members are stopped together.
#
# Profiles (BENCH_PROFILE=1): afterwards, for each profiled workload, a fresh
# etcd-ts member is started under `node --cpu-prof`, that workload is
# replayed, and the profile's hot spots go into the report; for cluster-put a
# fresh 3-member etcd-ts cluster, every member under `node --cpu-prof`,
# replays the cluster put and the leader's profile is reported.
#
# Workloads: put, range (linearizable and serializable), txn-put and
# lease-keepalive, each in a high-concurrency and a single-client
# configuration; then watch (watch creation and event fan-out throughput) and
# watch-latency (put-to-event latency at a fixed put rate).
#
# Progress goes to stderr ("bench: ..."). Any failure (a member that does not
# start or dies, a workload that errors or exceeds its time limit) prints the
# tail of the relevant logs and exits non-zero; BENCHMARKS.md is only written
# when every run succeeded. Servers are always stopped on exit.
#
# Knobs (environment), defaults in brackets:
#   BENCH_TARGETS          targets to run, in order            ["etcd etcd-ts"]
#   BENCH_CONNS/CLIENTS    high-concurrency configuration      [10 / 100]
#   BENCH_TOTAL            requests per high-concurrency run   [100000]
#   BENCH_LAT_TOTAL        requests per --clients=1 run        [10000]
#   BENCH_KEY_SPACE        --key-space-size for put / txn-put  [100000]
#   BENCH_WATCH_PUTS       --put-total of the watch workload   [20000]
#   BENCH_WATCH_LAT_PUTS   --put-total of watch-latency        [1000]
#   BENCH_WATCH_LAT_RATE   --put-rate of watch-latency (/s)    [100]
#   BENCH_SINGLE           1 = run the single-member section   [1]
#   BENCH_CLUSTER          1 = run the 3-member cluster section [1]
#   BENCH_CLUSTER_TOTAL    requests per high-concurrency cluster run (same
#                          BENCH_CONNS/CLIENTS)                [30000]
#   BENCH_CLUSTER_LAT_TOTAL  requests of the single-client cluster put [2000]
#   BENCH_PROFILE          1 = run the etcd-ts CPU profiles    [1]
#   BENCH_PROFILE_WORKLOADS  workloads replayed under the profiler, one
#                          fresh member (cluster-put: one fresh 3-member
#                          cluster) each; put = high-concurrency put,
#                          cluster-put = the high-concurrency cluster put
#                          ["put watch cluster-put"; "put watch" when
#                          BENCH_CLUSTER=0]
#   BENCH_PATRONI          1 = run bench/patroni.sh (Patroni leader
#                          election and failover, etcd vs etcd-ts)  [1]
#   BENCH_OPERATOR         1 = run bench/operator.sh (EtcdCluster create
#                          and scale times on a real control plane) [1]
#   BENCH_RUN_TIMEOUT      seconds allowed per workload        [120]
#   BENCH_START_TIMEOUT    seconds allowed until /health is OK [30]
#   BENCH_KEEP_FAILED      1 = keep the temp dir (server logs, benchmark
#                          output) when a run fails, and print its path [0]
#   BENCH_OUT              report path                         [BENCHMARKS.md]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGETS="${BENCH_TARGETS:-etcd etcd-ts}"
CONNS="${BENCH_CONNS:-10}"
CLIENTS="${BENCH_CLIENTS:-100}"
TOTAL="${BENCH_TOTAL:-100000}"
LAT_TOTAL="${BENCH_LAT_TOTAL:-10000}"
KEY_SPACE="${BENCH_KEY_SPACE:-100000}"
WATCH_PUTS="${BENCH_WATCH_PUTS:-20000}"
WATCH_LAT_PUTS="${BENCH_WATCH_LAT_PUTS:-1000}"
WATCH_LAT_RATE="${BENCH_WATCH_LAT_RATE:-100}"
SINGLE="${BENCH_SINGLE:-1}"
CLUSTER="${BENCH_CLUSTER:-1}"
CLUSTER_TOTAL="${BENCH_CLUSTER_TOTAL:-30000}"
CLUSTER_LAT_TOTAL="${BENCH_CLUSTER_LAT_TOTAL:-2000}"
PROFILE="${BENCH_PROFILE:-1}"
if [[ "$CLUSTER" == 1 ]]; then
  PROFILE_WORKLOADS="${BENCH_PROFILE_WORKLOADS:-put watch cluster-put}"
else
  PROFILE_WORKLOADS="${BENCH_PROFILE_WORKLOADS:-put watch}"
fi
KEEP_FAILED="${BENCH_KEEP_FAILED:-0}"
RUN_TIMEOUT="${BENCH_RUN_TIMEOUT:-120}"
START_TIMEOUT="${BENCH_START_TIMEOUT:-30}"
STOP_TIMEOUT=15
PROFILE_STOP_TIMEOUT=60
OUT="${BENCH_OUT:-$ROOT/BENCHMARKS.md}"
RANGE_KEY="rangekey"   # 8 bytes, like the put keys
TS_ENTRY="dist/src/bin/etcd-ts.js"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

# Prints the last lines of a file to stderr, indented, under a heading.
tail_file() {
  local title="$1" file="$2" n="${3:-40}"
  [[ -s "$file" ]] || { printf '  --- %s: (empty) ---\n' "$title" >&2; return 0; }
  printf '  --- %s (last %s lines) ---\n' "$title" "$n" >&2
  tail -n "$n" "$file" | cut -c1-400 | sed 's/^/  | /' >&2
}

# benchmark's stderr is a carriage-return progress bar interleaved with gRPC
# logs; prints its last lines, one per line.
tail_progress() {
  local file="$1" tmp="$1.lines"
  tr '\r' '\n' <"$file" | grep -v '^[[:space:]]*$' >"$tmp" || true
  tail_file "benchmark stderr" "$tmp" "${2:-15}"
}

# Server log lines that look like warnings or errors: JSON lines at level
# warn/error/fatal (etcd's zap names, pino's numbers), plus non-JSON lines
# mentioning an error (stack traces, uncaught exceptions).
WARN_RE='"level":"?(warn|error|dpanic|panic|fatal|40|50|60)"?|^[^{].*([Ee]rror|[Ee]xception|[Uu]nhandled|[Ww]arning)'
log_warnings() { grep -cE "$WARN_RE" "$SERVER_LOG" || true; }

# ---------------------------------------------------------------- state + cleanup
WORK=""
SERVER_PID=""
SERVER_LOG=""
SERVER_NAME=""
BENCH_PID=""
ENDPOINTS=""        # what `benchmark` and `etcdctl` get as --endpoints
CLUSTER_UP=0        # 1 while a 3-member cluster (MEMBER_*) is the system under test
CLUSTER_NAME=""
MEMBER_NAMES=()
MEMBER_PIDS=()      # "" once a member has been reaped
MEMBER_LOGS=()
MEMBER_PORTS=()     # client ports

kill_wait() {  # kill_wait PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL.
  local pid="$1" secs="$2" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$BENCH_PID" ]]; then kill -KILL "$BENCH_PID" 2>/dev/null || true; fi
  if [[ -n "$SERVER_PID" ]]; then kill_wait "$SERVER_PID" 5; wait "$SERVER_PID" 2>/dev/null || true; fi
  local pid
  for pid in "${MEMBER_PIDS[@]}"; do [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${MEMBER_PIDS[@]}"; do
    if [[ -n "$pid" ]]; then kill_wait "$pid" 5; wait "$pid" 2>/dev/null || true; fi
  done
  if [[ -n "$WORK" && -d "$WORK" ]]; then
    if ((rc != 0)) && [[ "$KEEP_FAILED" == 1 ]]; then
      find "$WORK" -type d -name data -prune -exec rm -rf {} + 2>/dev/null || true
      log "kept logs and benchmark output in $WORK (BENCH_KEEP_FAILED=1)"
    else
      rm -rf "$WORK"
    fi
  fi
  if ((rc != 0)); then log "failed (exit $rc); $(basename "$OUT") was not updated"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- prerequisites
for cmd in curl timeout node; do
  command -v "$cmd" >/dev/null || die "'$cmd' not found in PATH"
done
BIN_DIR="$(test/tools/build.sh | tail -n 1)"
BIN_DIR="${BIN_DIR%/}"
for t in etcd etcdctl benchmark; do
  [[ -x "$BIN_DIR/$t" ]] || die "reference tool $t missing in the tools cache (run: make tools)"
done
BENCHMARK="$BIN_DIR/benchmark"
ETCDCTL="$BIN_DIR/etcdctl"
if [[ " $TARGETS " == *" etcd-ts "* || "$PROFILE" == 1 ]]; then
  [[ -f "$TS_ENTRY" ]] || die "$TS_ENTRY not found (run: make build)"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/etcd-ts-bench.XXXXXX")"
RESULTS="$WORK/results"
mkdir -p "$RESULTS"
MANIFEST="$RESULTS/manifest.tsv"   # target, config, workload, output file, command shown in the report
: >"$MANIFEST"
SERVERS="$RESULTS/servers.tsv"     # target, start seconds, peak RSS kB, stop note, log warn/error lines
: >"$SERVERS"

free_ports() {  # prints N free 127.0.0.1 TCP ports, space separated
  node -e '
    const net = require("net");
    const n = Number(process.argv[1]);
    const servers = [];
    let pending = n;
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      s.listen(0, "127.0.0.1", () => {
        if (--pending === 0) {
          console.log(servers.map((x) => x.address().port).join(" "));
          servers.forEach((x) => x.close());
        }
      });
    }' "$1"
}

# ---------------------------------------------------------------- server control
# start_server TARGET NAME [node flags...]: starts a fresh member, waits for /health.
# Sets SERVER_PID, SERVER_LOG, CLIENT_PORT, DATA_DIR, START_SECS.
start_server() {
  local target="$1" name="$2"; shift 2
  local ports peer_port t0 body=""
  ports="$(free_ports 2)"
  CLIENT_PORT="${ports% *}"
  peer_port="${ports#* }"
  DATA_DIR="$WORK/$name/data"
  SERVER_LOG="$WORK/$name/server.log"
  SERVER_NAME="$name"
  mkdir -p "$WORK/$name"
  local flags=(
    --name=bench
    --data-dir="$DATA_DIR"
    --listen-client-urls="http://127.0.0.1:$CLIENT_PORT"
    --advertise-client-urls="http://127.0.0.1:$CLIENT_PORT"
    --listen-peer-urls="http://127.0.0.1:$peer_port"
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port"
    --initial-cluster="bench=http://127.0.0.1:$peer_port"
  )
  # Both servers read ETCD_* variables as flags (the Makefile exports ETCD_TS_CACHE): start them without any.
  local clean_env=(env)
  local v
  for v in ${!ETCD_@}; do clean_env+=(-u "$v"); done
  t0=$(date +%s.%N)
  case "$target" in
    etcd) "${clean_env[@]}" "$BIN_DIR/etcd" "${flags[@]}" >"$SERVER_LOG" 2>&1 & ;;
    etcd-ts) "${clean_env[@]}" node "$@" "$TS_ENTRY" "${flags[@]}" >"$SERVER_LOG" 2>&1 & ;;
    *) die "unknown target '$target'" ;;
  esac
  SERVER_PID=$!
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      local rc=0
      wait "$SERVER_PID" || rc=$?
      SERVER_PID=""
      tail_file "$name server log" "$SERVER_LOG"
      die "$name exited (status $rc) before /health answered"
    fi
    body="$(curl -s --max-time 1 "http://127.0.0.1:$CLIENT_PORT/health" 2>/dev/null || true)"
    if [[ "$body" == *'"health":"true"'* ]]; then
      START_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
      log "$name is healthy on 127.0.0.1:$CLIENT_PORT after ${START_SECS}s"
      ENDPOINTS="127.0.0.1:$CLIENT_PORT"
      CLUSTER_UP=0
      return 0
    fi
    sleep 0.1
  done
  tail_file "$name server log" "$SERVER_LOG"
  die "$name did not report healthy on /health within ${START_TIMEOUT}s (last answer: ${body:-none})"
}

# stop_server SECONDS: SIGTERM, wait; sets STOP_NOTE. Escalates to SIGKILL after SECONDS.
stop_server() {
  local secs="$1" i rc=0 t0 took
  t0=$(date +%s.%N)
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    log "WARNING: $SERVER_NAME did not exit within ${secs}s of SIGTERM; sending SIGKILL"
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    STOP_NOTE="did not exit within ${secs}s of SIGTERM (killed)"
  else
    wait "$SERVER_PID" || rc=$?
    took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    # Status 143 = ended by SIGTERM itself (etcd re-raises the signal after its own shutdown).
    STOP_NOTE="exit status $rc, ${took}s after SIGTERM"
  fi
  SERVER_PID=""
}

peak_rss_kb() {  # VmHWM of the running server, in kB
  awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo ""
}

server_failed() {  # prints the server log tail and dies
  local rc=0
  wait "$SERVER_PID" 2>/dev/null || rc=$?
  SERVER_PID=""
  tail_file "$SERVER_NAME server log" "$SERVER_LOG" 60
  die "$SERVER_NAME died (status $rc) $1"
}

# ---------------------------------------------------------------- cluster control
# start_cluster TARGET NAME [PROFILE_DIR]: starts a fresh 3-member cluster (members m1..m3),
# waits for /health on all three. With PROFILE_DIR (etcd-ts only), every member runs under
# `node --cpu-prof --cpu-prof-dir=PROFILE_DIR/<member>`. Sets CLUSTER_UP, CLUSTER_NAME,
# MEMBER_*, ENDPOINTS, START_SECS.
start_cluster() {
  local target="$1" name="$2" prof_dir="${3:-}"
  local i t0 body="" initial="" token member peer eps=()
  local -a all cports pports
  read -r -a all <<<"$(free_ports 6)"
  cports=("${all[0]}" "${all[2]}" "${all[4]}")
  pports=("${all[1]}" "${all[3]}" "${all[5]}")
  for i in 0 1 2; do initial+="${initial:+,}m$((i + 1))=http://127.0.0.1:${pports[$i]}"; done
  token="bench-$name-$$-$RANDOM"
  CLUSTER_NAME="$name"
  MEMBER_NAMES=(); MEMBER_PIDS=(); MEMBER_LOGS=(); MEMBER_PORTS=()
  local clean_env=(env) v
  for v in ${!ETCD_@}; do clean_env+=(-u "$v"); done
  t0=$(date +%s.%N)
  for i in 0 1 2; do
    member="m$((i + 1))"
    peer="${pports[$i]}"
    mkdir -p "$WORK/$name/$member"
    local log_file="$WORK/$name/$member.log"
    local flags=(
      --name="$member"
      --data-dir="$WORK/$name/$member/data"
      --listen-client-urls="http://127.0.0.1:${cports[$i]}"
      --advertise-client-urls="http://127.0.0.1:${cports[$i]}"
      --listen-peer-urls="http://127.0.0.1:$peer"
      --initial-advertise-peer-urls="http://127.0.0.1:$peer"
      --initial-cluster="$initial"
      --initial-cluster-token="$token"
      --initial-cluster-state=new
    )
    local node_flags=()
    if [[ -n "$prof_dir" ]]; then
      mkdir -p "$prof_dir/$member"
      node_flags=(--cpu-prof --cpu-prof-dir="$prof_dir/$member")
    fi
    case "$target" in
      etcd) "${clean_env[@]}" "$BIN_DIR/etcd" "${flags[@]}" >"$log_file" 2>&1 & ;;
      etcd-ts) "${clean_env[@]}" node "${node_flags[@]}" "$TS_ENTRY" "${flags[@]}" >"$log_file" 2>&1 & ;;
      *) die "unknown target '$target'" ;;
    esac
    MEMBER_PIDS+=("$!")
    MEMBER_NAMES+=("$member")
    MEMBER_LOGS+=("$log_file")
    MEMBER_PORTS+=("${cports[$i]}")
    eps+=("127.0.0.1:${cports[$i]}")
  done
  CLUSTER_UP=1
  ENDPOINTS="$(IFS=,; echo "${eps[*]}")"
  local deadline=$((SECONDS + START_TIMEOUT)) healthy
  while ((SECONDS < deadline)); do
    check_alive "before /health answered"
    healthy=0
    for i in 0 1 2; do
      body="$(curl -s --max-time 1 "http://127.0.0.1:${MEMBER_PORTS[$i]}/health" 2>/dev/null || true)"
      [[ "$body" == *'"health":"true"'* ]] && healthy=$((healthy + 1))
    done
    if ((healthy == 3)); then
      START_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
      log "$name: all 3 members healthy on $ENDPOINTS after ${START_SECS}s"
      return 0
    fi
    sleep 0.1
  done
  tail_server_logs 30
  die "$name: only $healthy of 3 members reported healthy on /health within ${START_TIMEOUT}s"
}

# metric_of PORT NAME: value of an unlabelled metric on a member's /metrics ("" if absent).
metric_of() {
  curl -s --max-time 5 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n { print $2; exit }' || true
}

# cluster_leader: prints the index (0..2) of the member that reports etcd_server_is_leader 1,
# or nothing when no member (or more than one) does.
cluster_leader() {
  local i found=""
  for i in 0 1 2; do
    if [[ "$(metric_of "${MEMBER_PORTS[$i]}" etcd_server_is_leader)" == 1 ]]; then
      [[ -n "$found" ]] && return 0
      found="$i"
    fi
  done
  printf '%s\n' "$found"
}

member_name() {  # member_name INDEX: the member's name, "none" for an empty index
  if [[ -n "$1" ]]; then printf '%s\n' "${MEMBER_NAMES[$1]}"; else echo none; fi
}

# stop_cluster SECONDS: SIGTERM to all three at once, waits; escalates to SIGKILL after SECONDS.
# Sets MEMBER_STOP (one note per member).
stop_cluster() {
  local secs="$1" i j rc t0 pid running
  local -a exited=("" "" "")
  MEMBER_STOP=("" "" "")
  t0=$(date +%s.%N)
  for pid in "${MEMBER_PIDS[@]}"; do [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true; done
  for ((j = 0; j <= secs * 10; j++)); do
    running=0
    for i in 0 1 2; do
      pid="${MEMBER_PIDS[$i]}"
      [[ -n "$pid" && -z "${exited[$i]}" ]] || continue
      if kill -0 "$pid" 2>/dev/null; then
        running=1
      else
        exited[i]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
      fi
    done
    ((running)) || break
    sleep 0.1
  done
  for i in 0 1 2; do
    pid="${MEMBER_PIDS[$i]}"
    [[ -n "$pid" ]] || continue
    if [[ -z "${exited[$i]}" ]]; then
      log "WARNING: $CLUSTER_NAME ${MEMBER_NAMES[$i]} did not exit within ${secs}s of SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      MEMBER_STOP[i]="did not exit within ${secs}s of SIGTERM (killed)"
    else
      rc=0
      wait "$pid" || rc=$?
      MEMBER_STOP[i]="exit status $rc, ${exited[$i]}s after SIGTERM"
    fi
    MEMBER_PIDS[i]=""
  done
  CLUSTER_UP=0
}

# ---------------------------------------------------------------- system under test
all_alive() {  # true while the server (or every cluster member) runs
  local pid
  if ((CLUSTER_UP)); then
    for pid in "${MEMBER_PIDS[@]}"; do
      [[ -z "$pid" ]] || kill -0 "$pid" 2>/dev/null || return 1
    done
    return 0
  fi
  kill -0 "$SERVER_PID" 2>/dev/null
}

# check_alive WHEN: dies with log tails when the server (or any cluster member) has exited.
check_alive() {
  local i rc
  if ((CLUSTER_UP)); then
    for i in 0 1 2; do
      [[ -n "${MEMBER_PIDS[$i]}" ]] || continue
      kill -0 "${MEMBER_PIDS[$i]}" 2>/dev/null && continue
      rc=0
      wait "${MEMBER_PIDS[$i]}" 2>/dev/null || rc=$?
      MEMBER_PIDS[i]=""
      tail_server_logs 40
      die "$CLUSTER_NAME member ${MEMBER_NAMES[$i]} died (status $rc) $1"
    done
  elif ! kill -0 "$SERVER_PID" 2>/dev/null; then
    server_failed "$1"
  fi
}

tail_server_logs() {  # tail_server_logs N: the server log, or every member's log
  local i
  if ((CLUSTER_UP)); then
    for i in "${!MEMBER_LOGS[@]}"; do tail_file "$CLUSTER_NAME ${MEMBER_NAMES[$i]} log" "${MEMBER_LOGS[$i]}" "$1"; done
  else
    tail_file "$SERVER_NAME server log" "$SERVER_LOG" "$1"
  fi
}

# ---------------------------------------------------------------- workloads
# run_benchmark LABEL OUTFILE ARGS...: runs `benchmark` bounded by RUN_TIMEOUT,
# watching the server; dies with log tails on any failure.
run_benchmark() {
  local label="$1" out="$2"; shift 2
  local err="${out%.out}.err" i rc=0 deadline
  "$BENCHMARK" --endpoints="$ENDPOINTS" --precise "$@" >"$out" 2>"$err" &
  BENCH_PID=$!
  deadline=$((SECONDS + RUN_TIMEOUT))
  while kill -0 "$BENCH_PID" 2>/dev/null; do
    if ! all_alive; then
      kill -KILL "$BENCH_PID" 2>/dev/null || true
      wait "$BENCH_PID" 2>/dev/null || true
      BENCH_PID=""
      check_alive "during '$label'"
    fi
    if ((SECONDS >= deadline)); then
      kill -KILL "$BENCH_PID" 2>/dev/null || true
      wait "$BENCH_PID" 2>/dev/null || true
      BENCH_PID=""
      tail_progress "$err"
      tail_server_logs 40
      die "'$label' did not finish within ${RUN_TIMEOUT}s (BENCH_RUN_TIMEOUT)"
    fi
    sleep 0.2
  done
  wait "$BENCH_PID" || rc=$?
  BENCH_PID=""
  if ((rc != 0)) || ! grep -q 'Requests/sec:' "$out"; then
    tail_file "benchmark stdout" "$out" 30
    tail_progress "$err" 20
    tail_server_logs 40
    die "'$label' failed (benchmark status $rc)"
  fi
  if grep -q '^Error distribution:' "$out"; then
    sed -n '/^Error distribution:/,$p' "$out" | sed 's/^/  | /' >&2
    tail_server_logs 40
    die "'$label' completed with request errors (see the error distribution above)"
  fi
  # watch and watch-latency print several summaries, each under a "... summary:" heading.
  local rps
  rps="$(awk '
    /^[^ ].* summary:[[:space:]]*$/ { name = $0; sub(/ summary:.*/, "", name) }
    /Requests\/sec:/ { printf "%s%s%.0f req/s", sep, (name == "" ? "" : name ": "), $2; sep = "; " }' "$out")"
  log "$label: ${rps}"
}

# Workload table: name | benchmark subcommand and flags (total appended per configuration).
WORKLOADS=(
  "put|put --key-size=8 --val-size=256 --sequential-keys --key-space-size=$KEY_SPACE"
  "range-l|range $RANGE_KEY --consistency=l"
  "range-s|range $RANGE_KEY --consistency=s"
  "txn-put|txn-put --key-size=8 --val-size=256 --key-space-size=$KEY_SPACE"
  "lease-keepalive|lease-keepalive"
)
# Configurations: name | global connection flags | total.
CONFIGS=(
  "high-concurrency|--conns=$CONNS --clients=$CLIENTS|$TOTAL"
  "single-client|--conns=1 --clients=1|$LAT_TOTAL"
)
# Watch workloads (configuration "watch"): name | complete flags (global + subcommand).
#   watch: 100 streams x 10 watchers on 100 distinct keys (10 watchers per key) are
#     created, then WATCH_PUTS puts spread round-robin over those keys from 100
#     clients, unthrottled: WATCH_PUTS x 10 events to deliver.
#   watch-latency: 10 streams x 10 watchers on one key; a separate client puts that
#     key WATCH_LAT_PUTS times at WATCH_LAT_RATE puts/s.
WATCH_WORKLOADS=(
  "watch|--conns=10 --clients=100 watch --streams=100 --watch-per-stream=10 --watched-key-total=100 --key-size=32 --key-space-size=100 --sequential-keys --put-total=$WATCH_PUTS"
  "watch-latency|--conns=1 --clients=1 watch-latency --streams=10 --watchers-per-stream=10 --key-size=8 --val-size=256 --put-rate=$WATCH_LAT_RATE --put-total=$WATCH_LAT_PUTS"
)

put_range_key() {
  local value out
  value="$(head -c 256 /dev/zero | tr '\0' 'v')"
  local clean_env=(env) v
  for v in ${!ETCDCTL_@}; do clean_env+=(-u "$v"); done
  if ! out="$(timeout 20 "${clean_env[@]}" "$ETCDCTL" --endpoints="$ENDPOINTS" put "$RANGE_KEY" "$value" 2>&1)"; then
    printf '  | %s\n' "$out" >&2
    tail_server_logs 40
    die "could not put the range key into $( ((CLUSTER_UP)) && echo "$CLUSTER_NAME" || echo "$SERVER_NAME")"
  fi
}

bench_target() {
  local target="$1" cfg cname cflags ctotal w wname wargs out label rss warns
  log "starting $target (fresh data dir)"
  start_server "$target" "$target"
  put_range_key
  for cfg in "${CONFIGS[@]}"; do
    IFS='|' read -r cname cflags ctotal <<<"$cfg"
    for w in "${WORKLOADS[@]}"; do
      IFS='|' read -r wname wargs <<<"$w"
      out="$RESULTS/$target.$cname.$wname.out"
      label="$target $wname ($cname: $cflags --total=$ctotal)"
      log "$label ..."
      # shellcheck disable=SC2086  # flag strings are split on purpose
      run_benchmark "$label" "$out" $cflags $wargs --total="$ctotal"
      printf '%s\t%s\t%s\t%s\t%s\n' "$target" "$cname" "$wname" "$out" \
        "benchmark --endpoints=127.0.0.1:<client-port> --precise $cflags $wargs --total=$ctotal" >>"$MANIFEST"
    done
  done
  for w in "${WATCH_WORKLOADS[@]}"; do
    IFS='|' read -r wname wargs <<<"$w"
    out="$RESULTS/$target.watch.$wname.out"
    label="$target $wname ($wargs)"
    log "$label ..."
    # shellcheck disable=SC2086
    run_benchmark "$label" "$out" $wargs
    printf '%s\t%s\t%s\t%s\t%s\n' "$target" watch "$wname" "$out" \
      "benchmark --endpoints=127.0.0.1:<client-port> --precise $wargs" >>"$MANIFEST"
  done
  rss="$(peak_rss_kb)"
  log "stopping $target"
  stop_server "$STOP_TIMEOUT"
  warns="$(log_warnings)"
  log "$target: $STOP_NOTE; peak RSS ${rss:-?} kB; $warns warning/error log lines"
  if ((warns > 0)); then
    grep -E "$WARN_RE" "$SERVER_LOG" >"$WORK/$target/warnings.log" || true
    tail_file "$target warning/error log lines" "$WORK/$target/warnings.log" 10
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$target" "$START_SECS" "$rss" "$STOP_NOTE" "$warns" >>"$SERVERS"
  rm -rf "$DATA_DIR"
}

# Cluster workloads: configuration | name | complete flags (global + subcommand).
CLUSTER_WORKLOADS=(
  "high-concurrency|put|--conns=$CONNS --clients=$CLIENTS put --key-size=8 --val-size=256 --sequential-keys --key-space-size=$KEY_SPACE --total=$CLUSTER_TOTAL"
  "high-concurrency|range-l|--conns=$CONNS --clients=$CLIENTS range $RANGE_KEY --consistency=l --total=$CLUSTER_TOTAL"
  "high-concurrency|range-s|--conns=$CONNS --clients=$CLIENTS range $RANGE_KEY --consistency=s --total=$CLUSTER_TOTAL"
  "single-client|put|--conns=1 --clients=1 put --key-size=8 --val-size=256 --sequential-keys --key-space-size=$KEY_SPACE --total=$CLUSTER_LAT_TOTAL"
)

# cluster_stats: per member (one line each, tab separated): name, role, peak RSS kB,
# leader changes seen, failed proposals, as the running members report them.
cluster_stats() {
  local i leader role
  leader="$(cluster_leader)"
  for i in 0 1 2; do
    role=follower
    [[ "$i" == "$leader" ]] && role=leader
    printf '%s\t%s\t%s\t%s\t%s\n' "${MEMBER_NAMES[$i]}" "$role" \
      "$(awk '/^VmHWM:/ { print $2 }' "/proc/${MEMBER_PIDS[$i]}/status" 2>/dev/null || true)" \
      "$(metric_of "${MEMBER_PORTS[$i]}" etcd_server_leader_changes_seen_total)" \
      "$(metric_of "${MEMBER_PORTS[$i]}" etcd_server_proposals_failed_total)"
  done
}

bench_cluster() {
  local target="$1" name="cluster-$1" w cname wname wargs out label i leader0 leader1 stats warns total_warns=0
  log "starting a 3-member $target cluster (fresh data dirs)"
  start_cluster "$target" "$name"
  leader0="$(cluster_leader)"
  log "$name: leader $(member_name "$leader0")"
  local -a lines0=() lines1=()
  for i in 0 1 2; do lines0+=("$(wc -l <"${MEMBER_LOGS[$i]}")"); done
  put_range_key
  for w in "${CLUSTER_WORKLOADS[@]}"; do
    IFS='|' read -r cname wname wargs <<<"$w"
    out="$RESULTS/cluster.$target.$cname.$wname.out"
    label="$name $wname ($wargs)"
    log "$label ..."
    # shellcheck disable=SC2086
    run_benchmark "$label" "$out" $wargs
    printf '%s\t%s\t%s\t%s\t%s\n' "$target" "$cname" "$wname" "$out" \
      "benchmark --endpoints=<3 client endpoints> --precise $wargs" >>"$RESULTS/cluster.tsv"
  done
  stats="$(cluster_stats)"
  leader1="$(cluster_leader)"
  for i in 0 1 2; do lines1+=("$(wc -l <"${MEMBER_LOGS[$i]}")"); done
  if [[ "$leader1" != "$leader0" ]]; then
    log "WARNING: $name: the leader changed during the runs ($(member_name "$leader0") -> $(member_name "$leader1"))"
  fi
  log "stopping $name (all three members at once)"
  stop_cluster "$STOP_TIMEOUT"
  # Warn/error lines, each tagged with the member and the phase it was logged in: start (until all
  # three were healthy), run (the workloads) or stop (after the metrics were read, incl. shutdown).
  local run_warns
  for i in 0 1 2; do
    warns="$(grep -cE "$WARN_RE" "${MEMBER_LOGS[$i]}" || true)"
    total_warns=$((total_warns + warns))
    awk -v m="${MEMBER_NAMES[$i]}" -v a="${lines0[$i]}" -v b="${lines1[$i]}" -v re="$WARN_RE" \
      '$0 ~ re { print m "\t" (NR <= a ? "start" : NR <= b ? "run" : "stop") "\t" $0 }' \
      "${MEMBER_LOGS[$i]}" >>"$RESULTS/cluster-warnings.$target.log"
    run_warns="$(awk -v a="${lines0[$i]}" -v b="${lines1[$i]}" -v re="$WARN_RE" 'NR > a && NR <= b && $0 ~ re { n++ } END { print n + 0 }' "${MEMBER_LOGS[$i]}")"
    # target, member, role, peak RSS kB, leader changes, failed proposals, stop note, warn lines, start secs,
    # warn lines while the workloads ran
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$(sed -n "$((i + 1))p" <<<"$stats")" "${MEMBER_STOP[$i]}" "$warns" "$START_SECS" \
      "$run_warns" >>"$RESULTS/cluster-members.tsv"
    log "$name ${MEMBER_NAMES[$i]} ($(sed -n "$((i + 1))p" <<<"$stats" | cut -f2)): ${MEMBER_STOP[$i]}; $warns warning/error log lines ($run_warns while the workloads ran)"
  done
  printf '%s\tleader\t%s\t%s\n' "$target" "$(member_name "$leader0")" "$(member_name "$leader1")" >>"$RESULTS/cluster-info.tsv"
  if ((total_warns > 0)); then
    tail_file "$name warning/error log lines (member, phase, line)" "$RESULTS/cluster-warnings.$target.log" 10
  fi
  rm -rf "$WORK/$name"/m*/data
}

# profile_args NAME: prints the complete benchmark flags a profiled workload replays:
# "put" is the high-concurrency put, anything else a WATCH_WORKLOADS name.
profile_args() {
  local name="$1" cname cflags ctotal wargs w wname
  if [[ "$name" == put ]]; then
    IFS='|' read -r cname cflags ctotal <<<"${CONFIGS[0]}"
    IFS='|' read -r _ wargs <<<"${WORKLOADS[0]}"
    printf '%s %s --total=%s\n' "$cflags" "$wargs" "$ctotal"
    return 0
  fi
  if [[ "$name" == cluster-put ]]; then
    IFS='|' read -r _ _ wargs <<<"${CLUSTER_WORKLOADS[0]}"
    printf '%s\n' "$wargs"
    return 0
  fi
  for w in "${WATCH_WORKLOADS[@]}"; do
    IFS='|' read -r wname wargs <<<"$w"
    if [[ "$wname" == "$name" ]]; then printf '%s\n' "$wargs"; return 0; fi
  done
  die "unknown workload '$name' in BENCH_PROFILE_WORKLOADS (put, cluster-put, or one of the watch workloads)"
}

# profile_etcd_ts NAME: a fresh etcd-ts member under --cpu-prof replays one workload.
# Appends "NAME<TAB>key<TAB>value" lines to profiles.tsv.
profile_etcd_ts() {
  local name="$1" prof_dir="$WORK/profile-$1" args out prof
  args="$(profile_args "$name")"
  mkdir -p "$prof_dir"
  log "starting etcd-ts under node --cpu-prof for '$name' (fresh data dir)"
  start_server etcd-ts "etcd-ts-profile-$name" --cpu-prof --cpu-prof-dir="$prof_dir"
  out="$RESULTS/profile.$name.out"
  log "etcd-ts $name under the profiler ..."
  # shellcheck disable=SC2086
  run_benchmark "etcd-ts $name under --cpu-prof" "$out" $args
  log "stopping etcd-ts (SIGTERM) and waiting for the profile"
  stop_server "$PROFILE_STOP_TIMEOUT"
  prof="$(find "$prof_dir" -name '*.cpuprofile' -size +0 2>/dev/null | head -n 1)"
  {
    printf '%s\tstop\t%s\n' "$name" "$STOP_NOTE"
    printf '%s\tbench\t%s\n' "$name" "$out"
    printf '%s\tcommand\tbenchmark --endpoints=127.0.0.1:<client-port> --precise %s\n' "$name" "$args"
    if [[ -n "$prof" ]]; then printf '%s\tprofile\t%s\n' "$name" "$prof"; fi
  } >>"$RESULTS/profiles.tsv"
  if [[ -n "$prof" ]]; then
    log "profile written ($(du -k "$prof" | cut -f1) kB)"
  else
    log "WARNING: no CPU profile was written ($STOP_NOTE)"
    tail_file "etcd-ts (profiled) server log" "$SERVER_LOG" 20
  fi
  rm -rf "$WORK/etcd-ts-profile-$name/data"
}

# profile_cluster_put: a fresh 3-member etcd-ts cluster, every member under --cpu-prof, replays the
# high-concurrency cluster put; the leader's profile (and the followers') go to profiles.tsv.
profile_cluster_put() {
  local name=cluster-put prof_dir="$WORK/profile-cluster-put" args out leader i prof key
  args="$(profile_args "$name")"
  log "starting a 3-member etcd-ts cluster under node --cpu-prof for '$name' (fresh data dirs)"
  start_cluster etcd-ts "etcd-ts-profile-$name" "$prof_dir"
  out="$RESULTS/profile.$name.out"
  log "etcd-ts $name under the profiler ..."
  # shellcheck disable=SC2086
  run_benchmark "etcd-ts $name under --cpu-prof" "$out" $args
  leader="$(cluster_leader)"
  [[ -n "$leader" ]] || log "WARNING: no single leader found after '$name'; no leader profile"
  log "stopping the profiled cluster (SIGTERM) and waiting for the profiles (leader: $(member_name "$leader"))"
  stop_cluster "$PROFILE_STOP_TIMEOUT"
  {
    printf '%s\tbench\t%s\n' "$name" "$out"
    printf '%s\tcommand\tbenchmark --endpoints=<3 client endpoints> --precise %s\n' "$name" "$args"
    for i in 0 1 2; do
      prof="$(find "$prof_dir/${MEMBER_NAMES[$i]}" -name '*.cpuprofile' -size +0 2>/dev/null | head -n 1)"
      if [[ "$i" == "$leader" ]]; then
        printf '%s\tstop\t%s\n' "$name" "${MEMBER_STOP[$i]}"
        printf '%s\tmember\t%s\n' "$name" "${MEMBER_NAMES[$i]}"
        [[ -n "$prof" ]] && printf '%s\tprofile\t%s\n' "$name" "$prof"
      else
        key="follower-${MEMBER_NAMES[$i]}"
        printf '%s\t%s\t%s\n' "$name" "$key" "${prof:-none (${MEMBER_STOP[$i]})}"
      fi
    done
  } >>"$RESULTS/profiles.tsv"
  if [[ -n "$leader" ]] && [[ -n "$(find "$prof_dir/${MEMBER_NAMES[$leader]}" -name '*.cpuprofile' -size +0 2>/dev/null)" ]]; then
    log "leader profile written"
  else
    log "WARNING: no leader CPU profile was written"
    for i in "${!MEMBER_LOGS[@]}"; do tail_file "profiled ${MEMBER_NAMES[$i]} log" "${MEMBER_LOGS[$i]}" 10; done
  fi
  rm -rf "$WORK/etcd-ts-profile-$name"/m*/data
}

# ---------------------------------------------------------------- main
if [[ "$PROFILE" == 1 ]]; then
  for name in $PROFILE_WORKLOADS; do profile_args "$name" >/dev/null; done
fi
started=$SECONDS
LOADAVG_START="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)"
log "tools: etcd $("$BIN_DIR/etcd" --version | awk '/etcd Version/ { print $3 }'); results in a temp dir, report -> $(basename "$OUT")"
if [[ "$SINGLE" == 1 ]]; then
  for target in $TARGETS; do
    bench_target "$target"
  done
fi
CLUSTER_ELAPSED=""
if [[ "$CLUSTER" == 1 ]]; then
  cluster_started=$SECONDS
  for target in $TARGETS; do
    bench_cluster "$target"
  done
  CLUSTER_ELAPSED=$((SECONDS - cluster_started))
  log "cluster runs done in ${CLUSTER_ELAPSED}s"
fi
if [[ "$PROFILE" == 1 ]]; then
  for name in $PROFILE_WORKLOADS; do
    if [[ "$name" == cluster-put ]]; then profile_cluster_put; else profile_etcd_ts "$name"; fi
  done
fi
PATRONI_MD=""
if [[ "${BENCH_PATRONI:-1}" == 1 ]]; then
  log "patroni failover runs (bench/patroni.sh) ..."
  PATRONI_MD="$RESULTS/patroni.md"
  bench/patroni.sh > "$PATRONI_MD"
fi
OPERATOR_MD=""
if [[ "${BENCH_OPERATOR:-1}" == 1 ]]; then
  log "operator runs on a real control plane (bench/operator.sh) ..."
  OPERATOR_MD="$RESULTS/operator.md"
  bench/operator.sh > "$OPERATOR_MD"
fi
LOADAVG_END="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)"
log "all runs done in $((SECONDS - started))s (load average now $LOADAVG_END); rendering $(basename "$OUT")"
BENCH_BIN_DIR="$BIN_DIR" BENCH_RESULTS="$RESULTS" BENCH_ELAPSED="$((SECONDS - started))" \
  BENCH_CLUSTER_ELAPSED="$CLUSTER_ELAPSED" BENCH_LOADAVG_END="$LOADAVG_END" \
  BENCH_TARGETS="$TARGETS" BENCH_LOADAVG="$LOADAVG_START" BENCH_PATRONI_MD="$PATRONI_MD" BENCH_OPERATOR_MD="$OPERATOR_MD" node bench/report.js "$OUT"
log "wrote $OUT"
