#!/usr/bin/env bash
# Benchmark etcd-ts against the reference etcd with etcd's own `benchmark` tool
# and regenerate BENCHMARKS.md at the repository root.
#
# Usage:  bench/run.sh            (normally through `make bench`, which builds
#                                  etcd-ts and the reference tools first)
#
# For each target, in order (reference etcd, then etcd-ts), a fresh single
# member is started on free 127.0.0.1 ports with a fresh temporary data dir;
# once /health answers, the workloads below run with identical flags for both
# targets; then the member is stopped and its data dir removed. Afterwards,
# for each profiled workload, a fresh etcd-ts member is started under
# `node --cpu-prof`, that workload is replayed, and the profile's hot spots go
# into the report.
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
#   BENCH_PROFILE          1 = run the etcd-ts CPU profiles    [1]
#   BENCH_PROFILE_WORKLOADS  workloads replayed under the profiler, one
#                          fresh member each (put = high-concurrency put)
#                                                              ["put watch"]
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
PROFILE="${BENCH_PROFILE:-1}"
PROFILE_WORKLOADS="${BENCH_PROFILE_WORKLOADS:-put watch}"
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

# ---------------------------------------------------------------- workloads
# run_benchmark LABEL OUTFILE ARGS...: runs `benchmark` bounded by RUN_TIMEOUT,
# watching the server; dies with log tails on any failure.
run_benchmark() {
  local label="$1" out="$2"; shift 2
  local err="${out%.out}.err" i rc=0 deadline
  "$BENCHMARK" --endpoints="127.0.0.1:$CLIENT_PORT" --precise "$@" >"$out" 2>"$err" &
  BENCH_PID=$!
  deadline=$((SECONDS + RUN_TIMEOUT))
  while kill -0 "$BENCH_PID" 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      kill -KILL "$BENCH_PID" 2>/dev/null || true
      wait "$BENCH_PID" 2>/dev/null || true
      BENCH_PID=""
      server_failed "during '$label'"
    fi
    if ((SECONDS >= deadline)); then
      kill -KILL "$BENCH_PID" 2>/dev/null || true
      wait "$BENCH_PID" 2>/dev/null || true
      BENCH_PID=""
      tail_progress "$err"
      tail_file "$SERVER_NAME server log" "$SERVER_LOG" 40
      die "'$label' did not finish within ${RUN_TIMEOUT}s (BENCH_RUN_TIMEOUT)"
    fi
    sleep 0.2
  done
  wait "$BENCH_PID" || rc=$?
  BENCH_PID=""
  if ((rc != 0)) || ! grep -q 'Requests/sec:' "$out"; then
    tail_file "benchmark stdout" "$out" 30
    tail_progress "$err" 20
    tail_file "$SERVER_NAME server log" "$SERVER_LOG" 40
    die "'$label' failed (benchmark status $rc)"
  fi
  if grep -q '^Error distribution:' "$out"; then
    sed -n '/^Error distribution:/,$p' "$out" | sed 's/^/  | /' >&2
    tail_file "$SERVER_NAME server log" "$SERVER_LOG" 40
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
  if ! out="$(timeout 20 "${clean_env[@]}" "$ETCDCTL" --endpoints="127.0.0.1:$CLIENT_PORT" put "$RANGE_KEY" "$value" 2>&1)"; then
    printf '  | %s\n' "$out" >&2
    tail_file "$SERVER_NAME server log" "$SERVER_LOG"
    die "could not put the range key into $SERVER_NAME"
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
  for w in "${WATCH_WORKLOADS[@]}"; do
    IFS='|' read -r wname wargs <<<"$w"
    if [[ "$wname" == "$name" ]]; then printf '%s\n' "$wargs"; return 0; fi
  done
  die "unknown workload '$name' in BENCH_PROFILE_WORKLOADS (put, or one of the watch workloads)"
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

# ---------------------------------------------------------------- main
if [[ "$PROFILE" == 1 ]]; then
  for name in $PROFILE_WORKLOADS; do profile_args "$name" >/dev/null; done
fi
started=$SECONDS
LOADAVG_START="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)"
log "tools: etcd $("$BIN_DIR/etcd" --version | awk '/etcd Version/ { print $3 }'); results in a temp dir, report -> $(basename "$OUT")"
for target in $TARGETS; do
  bench_target "$target"
done
if [[ "$PROFILE" == 1 ]]; then
  for name in $PROFILE_WORKLOADS; do
    profile_etcd_ts "$name"
  done
fi
log "all runs done in $((SECONDS - started))s; rendering $(basename "$OUT")"
BENCH_BIN_DIR="$BIN_DIR" BENCH_RESULTS="$RESULTS" BENCH_ELAPSED="$((SECONDS - started))" \
  BENCH_TARGETS="$TARGETS" BENCH_LOADAVG="$LOADAVG_START" node bench/report.js "$OUT"
log "wrote $OUT"
