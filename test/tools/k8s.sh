#!/usr/bin/env bash
# Build the Kubernetes control plane that the kube-apiserver integration test
# runs against etcd-ts: kube-apiserver, kube-controller-manager, kube-scheduler
# and kubectl of one Kubernetes release.
#
# Usage:  dir=$(test/tools/k8s.sh)
#         test/tools/k8s.sh --check     (build nothing; exit 1 if anything is missing)
#
# Binaries go to ${ETCD_TS_CACHE:-$HOME/.cache/etcd-ts}/bin/k8s-v<version>/.
# The script is idempotent: when all four binaries already exist, run and report
# the expected version it only prints the directory. Progress goes to stderr;
# the only line on stdout is the bin directory, printed last.
#
# Modules come from the Go module proxy through the wrapper module in k8s/ next
# to this script. k8s.io/kubernetes maps its staging modules (k8s.io/api,
# k8s.io/apiserver, ...) to ./staging/... with `replace`, which a dependent
# module cannot use, so the wrapper's go.mod replaces each of them with the
# published k8s.io/<name> v0.<minor>.<patch> of the same release. The default
# Go build cache is used; a cold build takes about 7 minutes on 2 cores (the
# four binaries share most packages). Builds run under `nice`, one `go build`
# at a time.
set -euo pipefail

K8S_VERSION="1.37.2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module_dir="${here}/k8s"
cache_root="${ETCD_TS_CACHE:-${HOME}/.cache/etcd-ts}"
bin_dir="${cache_root}/bin/k8s-v${K8S_VERSION}"

script="test/tools/k8s.sh"
what="Kubernetes v${K8S_VERSION} control plane"
make_target="k8s-tools"
# shellcheck source=gotools.sh
source "${here}/gotools.sh"

# name:package pairs.
tools=(
  "kube-apiserver:k8s.io/kubernetes/cmd/kube-apiserver"
  "kube-controller-manager:k8s.io/kubernetes/cmd/kube-controller-manager"
  "kube-scheduler:k8s.io/kubernetes/cmd/kube-scheduler"
  "kubectl:k8s.io/kubernetes/cmd/kubectl"
)

# tool_ok NAME: the binary exists, runs, and reports the expected version.
tool_ok() {
  local name="$1" path="${bin_dir}/$1" out
  [[ -x "$path" ]] || return 1
  case "$name" in
    kubectl) out="$(timeout 20 "$path" version --client 2>&1)" || return 1 ;;
    *) out="$(timeout 20 "$path" --version 2>&1)" || return 1 ;;
  esac
  grep -q "v${K8S_VERSION}\$" <<<"$out" || grep -q "v${K8S_VERSION}[[:space:]]" <<<"$out" || return 1
}

before_build() {
  grep -q "^require k8s.io/kubernetes v${K8S_VERSION}\$" "${module_dir}/go.mod" ||
    die "${module_dir}/go.mod does not require k8s.io/kubernetes v${K8S_VERSION}; update both together"
  cd "$module_dir"
}

# What Kubernetes' own release build (hack/lib/version.sh, hack/lib/golang.sh)
# stamps and sets: the version in both version packages, so that /version and
# `kubectl version` report the release; stripped, trimmed, with its build tags.
minor="${K8S_VERSION#*.}"
minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X ${pkg}.gitVersion=v${K8S_VERSION}"
  ldflags+=" -X ${pkg}.gitMajor=${K8S_VERSION%%.*}"
  ldflags+=" -X ${pkg}.gitMinor=${minor}"
done
tags="selinux,notest,grpcnotrace"

# build_tool ENTRY: go build through the wrapper module, under nice (the build is long and CPU-bound).
build_tool() {
  local name="${1%%:*}" pkg="${1#*:}" tmp
  tmp="${bin_dir}/.${name}.tmp.$$"
  if ! CGO_ENABLED=0 nice -n 15 go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp" "$pkg" >&2; then
    rm -f "$tmp"
    die "go build of ${name} (${pkg}) failed; see the output above"
  fi
  mv -f "$tmp" "${bin_dir}/${name}"
}

gotools_main "$@"
