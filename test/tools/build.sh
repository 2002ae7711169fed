#!/usr/bin/env bash
# Build the reference etcd tools (etcd, etcdctl, etcdutl, benchmark) that the
# integration tests compare etcd-ts against.
#
# Usage:  dir=$(test/tools/build.sh)
#
# Binaries go to ${ETCD_TS_CACHE:-$HOME/.cache/etcd-ts}/bin/etcd-v3.6.16/.
# The script is idempotent: when all four binaries already exist and run
# (`etcd --version`, `etcdctl version` and `etcdutl version` report the
# expected version, `benchmark --help` succeeds) it only prints the directory.
# Progress goes to stderr; the only line on stdout is the bin directory,
# printed last.
#
# Modules come from the Go module proxy through the wrapper module next to this
# script (go.mod / go.sum / tools.go). The default Go build cache is used.
set -euo pipefail

ETCD_VERSION="3.6.16"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${ETCD_TS_CACHE:-${HOME}/.cache/etcd-ts}"
bin_dir="${cache_root}/bin/etcd-v${ETCD_VERSION}"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'test/tools/build.sh: error: %s\n' "$*" >&2; exit 1; }

# name:package pairs. The root etcd module (which holds tools/benchmark) is not
# published on the module proxy at v3.6.16, so go.mod pins it to the nearest
# available release; it builds against the v3.6.16 client libraries.
tools=(
  "etcd:go.etcd.io/etcd/server/v3"
  "etcdctl:go.etcd.io/etcd/etcdctl/v3"
  "etcdutl:go.etcd.io/etcd/etcdutl/v3"
  "benchmark:go.etcd.io/etcd/v3/tools/benchmark"
)

# tool_ok NAME: the binary exists, runs, and (where it reports one) is the
# expected version.
tool_ok() {
  local name="$1" path="${bin_dir}/$1" out
  [[ -x "$path" ]] || return 1
  case "$name" in
    benchmark)
      # benchmark has no version flag; --help proves it runs.
      timeout 20 "$path" --help >/dev/null 2>&1 || return 1
      ;;
    etcdctl|etcdutl)
      # These two report their version through a subcommand.
      out="$(timeout 20 "$path" version 2>&1)" || return 1
      grep -q "${ETCD_VERSION}" <<<"$out" || return 1
      ;;
    *)
      out="$(timeout 20 "$path" --version 2>&1)" || return 1
      grep -q "${ETCD_VERSION}" <<<"$out" || return 1
      ;;
  esac
}

all_ok() {
  local t
  for t in "${tools[@]}"; do
    tool_ok "${t%%:*}" || return 1
  done
}

if all_ok; then
  log "reference etcd v${ETCD_VERSION} tools already built in ${bin_dir}"
  printf '%s\n' "$bin_dir"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "the 'go' command is not on PATH; install Go (>= 1.26) to build the reference etcd tools"

mkdir -p "$bin_dir" || die "cannot create ${bin_dir}"

# Serialise concurrent builds (e.g. several test runners starting at once).
exec 9>"${bin_dir}/.build.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9 || die "cannot lock ${bin_dir}/.build.lock"
fi

# Another process may have finished the build while we waited for the lock.
if all_ok; then
  log "reference etcd v${ETCD_VERSION} tools already built in ${bin_dir}"
  printf '%s\n' "$bin_dir"
  exit 0
fi

log "using $(go version)"
cd "$here"

start=$SECONDS
for t in "${tools[@]}"; do
  name="${t%%:*}"
  pkg="${t#*:}"
  if tool_ok "$name"; then
    log "ok       ${name} (already built)"
    continue
  fi
  log "building ${name} from ${pkg} ..."
  tmp="${bin_dir}/.${name}.tmp.$$"
  if ! CGO_ENABLED=0 go build -trimpath -o "$tmp" "$pkg" >&2; then
    rm -f "$tmp"
    die "go build of ${name} (${pkg}) failed; see the output above"
  fi
  mv -f "$tmp" "${bin_dir}/${name}"
  tool_ok "$name" || die "${bin_dir}/${name} was built but does not run or is not version ${ETCD_VERSION}"
  log "built    ${name} ($((SECONDS - start))s elapsed)"
done

log "reference etcd v${ETCD_VERSION} tools ready in ${bin_dir} ($((SECONDS - start))s)"
printf '%s\n' "$bin_dir"
