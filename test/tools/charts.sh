#!/usr/bin/env bash
# Build the chart tools the Helm chart tests use: helm (lint, template,
# install into the e2e control plane), promtool (check and unit-test the
# alert rules, lint /metrics) and prometheus (scrape a live etcd-ts cluster
# and evaluate the chart's alert rules and dashboard queries against it).
#
# Usage:  dir=$(test/tools/charts.sh)
#         test/tools/charts.sh --check     (build nothing; exit 1 if anything is missing)
#
# Binaries go to ${ETCD_TS_CACHE:-$HOME/.cache/etcd-ts}/bin/chart-tools/.
# The script is idempotent: when every binary exists, runs and reports the
# expected version it only prints the directory. Progress goes to stderr; the
# only line on stdout is the bin directory, printed last.
#
# All tools install with a plain `go install <package>@<tag>` from the Go
# module proxy (neither module has `replace` lines that would prevent it).
# Their release builds stamp the version with -ldflags -X; we do the same so
# that `helm version`, `promtool --version` and `prometheus --version` report
# the release we pinned, which is also what the idempotency check reads.
# promtool and prometheus come from the same module, so the second one mostly
# reuses the first one's compiled packages. A cold build of all three takes a
# few minutes on 2 cores; builds run under `nice`, one at a time.
set -euo pipefail

HELM_VERSION="4.3.2"
# Prometheus publishes its Go module as v0.<major><minor>.<patch> for release
# <major>.<minor>.<patch>: module v0.316.0 is Prometheus 3.16.0.
PROMETHEUS_MODULE_VERSION="0.316.0"
PROMETHEUS_VERSION="3.16.0"

cache_root="${ETCD_TS_CACHE:-${HOME}/.cache/etcd-ts}"
bin_dir="${cache_root}/bin/chart-tools"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'test/tools/charts.sh: error: %s\n' "$*" >&2; exit 1; }

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  *) printf 'usage: %s [--check]\n' "$0" >&2; exit 2 ;;
esac

# name|package@version|ldflags|build tags
tools=(
  "helm|helm.sh/helm/v4/cmd/helm@v${HELM_VERSION}|-s -w -X helm.sh/helm/v4/internal/version.version=v${HELM_VERSION}|"
  # remove_all_sd leaves out Prometheus' service-discovery plugins (cloud SDKs): the tests use promtool's
  # rule and metrics checks only, and without them a cold build takes about 2.5 minutes instead of 8.
  "promtool|github.com/prometheus/prometheus/cmd/promtool@v${PROMETHEUS_MODULE_VERSION}|-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}|remove_all_sd"
  # The server, for the test that scrapes a live cluster. It only needs static_configs (always built in),
  # so it leaves out the same plugins.
  "prometheus|github.com/prometheus/prometheus/cmd/prometheus@v${PROMETHEUS_MODULE_VERSION}|-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}|remove_all_sd"
)

# tool_ok NAME: the binary exists, runs, and reports the expected version.
tool_ok() {
  local name="$1" path="${bin_dir}/$1" out
  [[ -x "$path" ]] || return 1
  case "$name" in
    helm)
      out="$(timeout 20 "$path" version --template '{{.Version}}' 2>&1)" || return 1
      [[ "$out" == "v${HELM_VERSION}" ]] || return 1
      ;;
    promtool | prometheus)
      out="$(timeout 20 "$path" --version 2>&1)" || return 1
      grep -q "^${name}, version ${PROMETHEUS_VERSION}[[:space:]]" <<<"$out" || return 1
      ;;
    *) return 1 ;;
  esac
}

all_ok() {
  local t
  for t in "${tools[@]}"; do
    tool_ok "${t%%|*}" || return 1
  done
}

if all_ok; then
  log "helm v${HELM_VERSION}, promtool and prometheus ${PROMETHEUS_VERSION} already built in ${bin_dir}"
  printf '%s\n' "$bin_dir"
  exit 0
fi

if [[ $check_only == 1 ]]; then
  log "test/tools/charts.sh: helm v${HELM_VERSION}, promtool or prometheus ${PROMETHEUS_VERSION} missing or not runnable in ${bin_dir}; run \`make chart-tools\`"
  exit 1
fi

command -v go >/dev/null 2>&1 || die "the 'go' command is not on PATH; install Go (>= 1.26) to build helm, promtool and prometheus"

mkdir -p "$bin_dir" || die "cannot create ${bin_dir}"

# Serialise concurrent builds (e.g. several test runners starting at once).
exec 9>"${bin_dir}/.build.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9 || die "cannot lock ${bin_dir}/.build.lock"
fi

# Another process may have finished the build while we waited for the lock.
if all_ok; then
  log "helm v${HELM_VERSION}, promtool and prometheus ${PROMETHEUS_VERSION} already built in ${bin_dir}"
  printf '%s\n' "$bin_dir"
  exit 0
fi

log "using $(go version)"
# Outside any module, so the tools' own go.mod decides every dependency.
cd "$bin_dir"

start=$SECONDS
for t in "${tools[@]}"; do
  IFS='|' read -r name pkg ldflags tags <<<"$t"
  if tool_ok "$name"; then
    log "ok       ${name} (already built)"
    continue
  fi
  log "building ${name} from ${pkg} ..."
  # go install names the binary after the package; a private GOBIN keeps a
  # half-built binary away from the one the tests use.
  gobin="${bin_dir}/.gobin.$$"
  rm -rf "$gobin"
  mkdir -p "$gobin"
  if ! CGO_ENABLED=0 GOBIN="$gobin" nice -n 15 go install -trimpath -tags "$tags" -ldflags "$ldflags" "$pkg" >&2; then
    rm -rf "$gobin"
    die "go install of ${name} (${pkg}) failed; see the output above"
  fi
  mv -f "${gobin}/${name}" "${bin_dir}/${name}"
  rm -rf "$gobin"
  tool_ok "$name" || die "${bin_dir}/${name} was built but does not run or does not report the pinned version"
  log "built    ${name} ($((SECONDS - start))s elapsed)"
done

log "helm v${HELM_VERSION}, promtool and prometheus ${PROMETHEUS_VERSION} ready in ${bin_dir} ($((SECONDS - start))s)"
printf '%s\n' "$bin_dir"
