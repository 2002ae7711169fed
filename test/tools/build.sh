#!/usr/bin/env bash
# Build the reference etcd tools (etcd, etcdctl, etcdutl, benchmark) that the
# integration tests compare etcd-ts against.
#
# Usage:  dir=$(test/tools/build.sh)
#         test/tools/build.sh --check     (build nothing; exit 1 if anything is missing)
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

script="test/tools/build.sh"
what="reference etcd v${ETCD_VERSION} tools"
make_target="tools"
# shellcheck source=gotools.sh
source "${here}/gotools.sh"

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

# build_tool ENTRY: go build through the wrapper module next to this script.
build_tool() {
  local name="${1%%:*}" pkg="${1#*:}" tmp
  tmp="${bin_dir}/.${name}.tmp.$$"
  if ! CGO_ENABLED=0 go build -trimpath -o "$tmp" "$pkg" >&2; then
    rm -f "$tmp"
    die "go build of ${name} (${pkg}) failed; see the output above"
  fi
  mv -f "$tmp" "${bin_dir}/${name}"
}

before_build() { cd "$here"; }

gotools_main "$@"
