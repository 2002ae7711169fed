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

log() { printf '%s\n' "$*" >&2; }
die() { printf 'test/tools/k8s.sh: error: %s\n' "$*" >&2; exit 1; }

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  *) printf 'usage: %s [--check]\n' "$0" >&2; exit 2 ;;
esac

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

all_ok() {
  local t
  for t in "${tools[@]}"; do
    tool_ok "${t%%:*}" || return 1
  done
}

if all_ok; then
  log "Kubernetes v${K8S_VERSION} control plane already built in ${bin_dir}"
  printf '%s\n' "$bin_dir"
  exit 0
fi

if [[ $check_only == 1 ]]; then
  log "test/tools/k8s.sh: Kubernetes v${K8S_VERSION} binaries missing or not runnable in ${bin_dir}; run \`make k8s-tools\`"
  exit 1
fi

command -v go >/dev/null 2>&1 || die "the 'go' command is not on PATH; install Go (>= 1.26) to build the Kubernetes binaries"
grep -q "^require k8s.io/kubernetes v${K8S_VERSION}\$" "${module_dir}/go.mod" ||
  die "${module_dir}/go.mod does not require k8s.io/kubernetes v${K8S_VERSION}; update both together"

mkdir -p "$bin_dir" || die "cannot create ${bin_dir}"

# Serialise concurrent builds (e.g. several test runners starting at once).
exec 9>"${bin_dir}/.build.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9 || die "cannot lock ${bin_dir}/.build.lock"
fi

# Another process may have finished the build while we waited for the lock.
if all_ok; then
  log "Kubernetes v${K8S_VERSION} control plane already built in ${bin_dir}"
  printf '%s\n' "$bin_dir"
  exit 0
fi

log "using $(go version)"
cd "$module_dir"

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
  if ! CGO_ENABLED=0 nice -n 15 go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp" "$pkg" >&2; then
    rm -f "$tmp"
    die "go build of ${name} (${pkg}) failed; see the output above"
  fi
  mv -f "$tmp" "${bin_dir}/${name}"
  tool_ok "$name" || die "${bin_dir}/${name} was built but does not run or is not version v${K8S_VERSION}"
  log "built    ${name} ($((SECONDS - start))s elapsed)"
done

log "Kubernetes v${K8S_VERSION} control plane ready in ${bin_dir} ($((SECONDS - start))s)"
printf '%s\n' "$bin_dir"
