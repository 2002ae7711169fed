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

script="test/tools/charts.sh"
what="helm v${HELM_VERSION}, promtool and prometheus ${PROMETHEUS_VERSION}"
make_target="chart-tools"
# shellcheck source=gotools.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/gotools.sh"

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

# Outside any module, so the tools' own go.mod decides every dependency.
before_build() { cd "$bin_dir"; }

# build_tool ENTRY: go install of the pinned release. go install names the binary after the package; a
# private GOBIN keeps a half-built binary away from the one the tests use.
build_tool() {
  local name pkg ldflags tags gobin
  IFS='|' read -r name pkg ldflags tags <<<"$1"
  gobin="${bin_dir}/.gobin.$$"
  rm -rf "$gobin"
  mkdir -p "$gobin"
  if ! CGO_ENABLED=0 GOBIN="$gobin" nice -n 15 go install -trimpath -tags "$tags" -ldflags "$ldflags" "$pkg" >&2; then
    rm -rf "$gobin"
    die "go install of ${name} (${pkg}) failed; see the output above"
  fi
  mv -f "${gobin}/${name}" "${bin_dir}/${name}"
  rm -rf "$gobin"
}

gotools_main "$@"
