#!/usr/bin/env bash
# The operator end to end on kind, for machines with Docker (`make e2e-kind`). It mirrors the local operator
# e2e (test/e2e/operator.test.ts), which runs the same scenarios on a real control plane without containers:
#   build the image (Dockerfile) -> kind cluster -> kind load -> helm install charts/etcd-ts-operator ->
#   apply test/kind/etcdcluster.yaml (3 members) -> Available -> put/get through a client pod ->
#   scale 3 -> 5 -> 3 (data kept) -> delete a member pod, it rejoins as the same member -> delete the
#   EtcdCluster -> helm uninstall -> delete the kind cluster (always, on exit).
#
# The client pod runs the reference etcdctl 3.6.16 that test/tools/build.sh builds for the local tests (a
# static binary), in a two-line image built here FROM scratch and loaded into kind like etcd-ts: the etcd-ts
# image has no etcdctl, and this way no other image needs pulling and both e2e suites use the same client.
#
# Tools: kind (sigs.k8s.io/kind, `go install` into the cache when missing), helm (test/tools/charts.sh),
# kubectl (test/tools/k8s.sh; KUBECTL=/path overrides), Docker. Every wait is bounded; on failure the script
# prints what it waited for and a dump of the cluster (kubectl get/describe, operator and member logs).
#
# Environment: KIND_CLUSTER_NAME (default etcd-ts-e2e), KIND_NODE_IMAGE (default: kind's own),
# KEEP_KIND_CLUSTER=1 keeps the cluster after the run, KUBECTL.
set -euo pipefail

KIND_VERSION="v0.33.0"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
cache_root="${ETCD_TS_CACHE:-${HOME}/.cache/etcd-ts}"
cluster_name="${KIND_CLUSTER_NAME:-etcd-ts-e2e}"
kube_context="kind-${cluster_name}"
operator_ns="etcd-ts-system"
release="etcd-ts-operator"
ns="db"
manifest="${here}/etcdcluster.yaml"
name="main" # metadata.name in the manifest
endpoint="http://${name}-client.${ns}.svc:2379"

log() { printf '%s e2e-kind: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
  printf 'e2e-kind: error: %s\n' "$*" >&2
  exit 1
}

# ---- preflight: fail fast, before building anything, when Docker cannot be used --------------------------
command -v docker >/dev/null 2>&1 ||
  die "docker not found on PATH. make e2e-kind needs a Docker engine (it builds the image and kind runs its nodes as containers). Without Docker, 'make image-test' checks the image's contents and startup locally."
if ! docker_err="$(timeout 20 docker info 2>&1 >/dev/null)"; then
  die "cannot reach the Docker engine ('docker info' failed: $(printf '%s' "${docker_err}" | grep -v '^$' | tail -n1)). Start Docker or set DOCKER_HOST; without Docker, 'make image-test' checks the image's contents and startup locally."
fi
command -v go >/dev/null 2>&1 || die "go not found on PATH (needed to build kind ${KIND_VERSION})"
[[ -f "${manifest}" ]] || die "missing ${manifest}"
grep -q "^  name: ${name}\$" "${manifest}" || die "${manifest} no longer names the cluster '${name}'; update this script"

# ---- tools -----------------------------------------------------------------------------------------------
kind_dir="${cache_root}/bin/kind-${KIND_VERSION}"
kind="${kind_dir}/kind"
if [[ ! -x "${kind}" ]]; then
  log "building kind ${KIND_VERSION} into ${kind_dir}"
  mkdir -p "${kind_dir}"
  GOBIN="${kind_dir}" go install "sigs.k8s.io/kind@${KIND_VERSION}"
fi
helm="$("${repo}/test/tools/charts.sh")/helm"
kubectl_bin="${KUBECTL:-$("${repo}/test/tools/k8s.sh")/kubectl}"
etcdctl="$("${repo}/test/tools/build.sh")/etcdctl"
for t in "${helm}" "${kubectl_bin}" "${etcdctl}"; do [[ -x "${t}" ]] || die "tool missing: ${t}"; done
k() { "${kubectl_bin}" --context "${kube_context}" "$@"; }

version="$(node -p 'require(process.argv[1]).version' "${repo}/package.json")"
image="etcd-ts:${version}" # the operator's default member image for its version, and the chart's default
client_image="etcd-ts-e2e-etcdctl:3.6.16"

# ---- failure reporting and cleanup -----------------------------------------------------------------------
cluster_created=0
dump() {
  log "---- cluster state ----"
  k get nodes,pods,statefulsets,services,pvc,leases -A -o wide || true
  k -n "${ns}" get etcdclusters -o yaml || true
  k -n "${ns}" describe etcdcluster "${name}" || true
  k -n "${ns}" describe pods || true
  k -n "${operator_ns}" describe pods || true
  k -n "${operator_ns}" logs -l "app.kubernetes.io/instance=${release}" --all-containers --prefix --tail=200 || true
  k -n "${ns}" logs -l "app.kubernetes.io/instance=${name}" --all-containers --prefix --tail=100 || true
  k get events -A --sort-by=.lastTimestamp | tail -n 60 || true
}
fail() {
  log "FAILED: $*"
  dump >&2
  exit 1
}
cleanup() {
  local status=$?
  if [[ "${cluster_created}" == 1 ]]; then
    if [[ "${KEEP_KIND_CLUSTER:-0}" == 1 ]]; then
      log "keeping kind cluster ${cluster_name} (KEEP_KIND_CLUSTER=1); delete it with: ${kind} delete cluster --name ${cluster_name}"
    else
      "${kind}" delete cluster --name "${cluster_name}" >&2 || log "could not delete kind cluster ${cluster_name}"
    fi
  fi
  exit "${status}"
}
trap cleanup EXIT

# wait_for SECONDS DESCRIPTION COMMAND [ARG...]: polls COMMAND every 3 s; fails with DESCRIPTION and a dump.
wait_for() {
  local limit="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + limit))
  log "waiting (up to ${limit} s) for ${what}"
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${limit} s waiting for ${what}"
    sleep 3
  done
}

# ctl ARG...: runs etcdctl against the cluster's client Service in a short-lived pod; prints its output.
ctl() {
  local pod="etcdctl-${SECONDS}-${RANDOM}" phase="" deadline=$((SECONDS + 90))
  k -n "${ns}" run "${pod}" --image="${client_image}" --image-pull-policy=Never --restart=Never \
    --command -- /etcdctl --endpoints="${endpoint}" --command-timeout=20s "$@" >/dev/null
  while :; do
    phase="$(k -n "${ns}" get pod "${pod}" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
    [[ "${phase}" == Succeeded || "${phase}" == Failed ]] && break
    ((SECONDS < deadline)) || fail "etcdctl $* did not finish within 90 s (pod ${pod} phase '${phase}')"
    sleep 2
  done
  local out
  out="$(k -n "${ns}" logs "${pod}" 2>&1 || true)"
  k -n "${ns}" delete pod "${pod}" --wait=false >/dev/null 2>&1 || true
  [[ "${phase}" == Succeeded ]] || fail "etcdctl $* failed: ${out}"
  printf '%s\n' "${out}"
}

# The cluster has settled with N voting members: spec observed, phase Running, Available, N ready, no learner.
settled() {
  local want="$1" out gen obs phase ready avail members
  out="$(k -n "${ns}" get etcdcluster "${name}" -o jsonpath='{.metadata.generation}/{.status.observedGeneration}/{.status.phase}/{.status.readyReplicas}/{.status.conditions[?(@.type=="Available")].status}/{range .status.members[*]}{.isLearner},{end}')" || return 1
  IFS=/ read -r gen obs phase ready avail members <<<"${out}"
  [[ "${gen}" == "${obs}" && "${phase}" == Running && "${ready}" == "${want}" && "${avail}" == True ]] || return 1
  [[ "${members}" != *true* && "$(grep -o 'false,' <<<"${members}" | wc -l)" -eq "${want}" ]]
}

pod_replaced_and_ready() {
  local pod="$1" old_uid="$2" out
  out="$(k -n "${ns}" get pod "${pod}" -o jsonpath='{.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}')" || return 1
  [[ "${out}" != "${old_uid} "* && "${out}" == *" True" ]]
}

gone() { ! k "$@" >/dev/null 2>&1; }

lease_held() { [[ -n "$(k -n "${operator_ns}" get lease "${release}" -o jsonpath='{.spec.holderIdentity}')" ]]; }

# ---- images ----------------------------------------------------------------------------------------------
start=${SECONDS}
log "docker build ${image}"
docker build --build-arg "VERSION=${version}" -t "${image}" "${repo}" >&2
client_ctx="$(mktemp -d)"
cp "${etcdctl}" "${client_ctx}/etcdctl"
printf 'FROM scratch\nCOPY etcdctl /etcdctl\nENTRYPOINT ["/etcdctl"]\n' >"${client_ctx}/Dockerfile"
docker build -t "${client_image}" "${client_ctx}" >&2
rm -rf "${client_ctx}"

# ---- cluster ---------------------------------------------------------------------------------------------
if "${kind}" get clusters 2>/dev/null | grep -qx "${cluster_name}"; then
  die "a kind cluster named ${cluster_name} exists already; delete it or set KIND_CLUSTER_NAME"
fi
log "kind create cluster ${cluster_name}"
cluster_created=1
"${kind}" create cluster --name "${cluster_name}" --wait 180s ${KIND_NODE_IMAGE:+--image "${KIND_NODE_IMAGE}"} >&2
"${kind}" load docker-image --name "${cluster_name}" "${image}" "${client_image}" >&2

# ---- operator --------------------------------------------------------------------------------------------
log "helm install ${release}"
"${helm}" --kube-context "${kube_context}" install "${release}" "${repo}/charts/etcd-ts-operator" \
  --namespace "${operator_ns}" --create-namespace \
  --set image.repository=etcd-ts --set "image.tag=${version}" \
  --wait=watcher --timeout 180s >&2 || fail "helm install did not become ready"
ready_ops="$(k -n "${operator_ns}" get deployment "${release}" -o jsonpath='{.status.readyReplicas}')"
[[ "${ready_ops}" == 2 ]] || fail "operator Deployment has ${ready_ops:-0} ready replicas, expected 2"
wait_for 60 "the operator's leader Lease to have a holder" lease_held

# ---- create, write, read ---------------------------------------------------------------------------------
k create namespace "${ns}" >&2
k -n "${ns}" apply -f "${manifest}" >&2
created=${SECONDS}
wait_for 300 "EtcdCluster ${name}: Available with 3 voting members" settled 3
log "created: Available with 3 members in $((SECONDS - created)) s"
ctl put kind-e2e hello >/dev/null
got="$(ctl get kind-e2e --print-value-only)"
[[ "${got}" == hello ]] || fail "read back '${got}' for kind-e2e, expected 'hello'"

# ---- scale 3 -> 5 -> 3 -----------------------------------------------------------------------------------
for replicas in 5 3; do
  since=${SECONDS}
  k -n "${ns}" patch etcdcluster "${name}" --type=merge -p "{\"spec\":{\"replicas\":${replicas}}}" >&2
  wait_for 420 "EtcdCluster ${name}: Available with ${replicas} voting members" settled "${replicas}"
  members="$(ctl member list -w simple | grep -c ', started, ' || true)"
  [[ "${members}" == "${replicas}" ]] || fail "etcdctl member list shows ${members} started members, expected ${replicas}"
  log "scaled to ${replicas} in $((SECONDS - since)) s"
done
for pod in "${name}-3" "${name}-4"; do wait_for 120 "pod ${pod} gone" gone -n "${ns}" get pod "${pod}"; done
got="$(ctl get kind-e2e --print-value-only)"
[[ "${got}" == hello ]] || fail "after scaling, read '${got}' for kind-e2e, expected 'hello'"

# ---- a deleted member pod rejoins as the same member -----------------------------------------------------
victim="${name}-1"
old_uid="$(k -n "${ns}" get pod "${victim}" -o jsonpath='{.metadata.uid}')"
old_id="$(k -n "${ns}" get etcdcluster "${name}" -o jsonpath="{.status.members[?(@.name==\"${victim}\")].id}")"
[[ -n "${old_id}" ]] || fail "no member id for ${victim} in the status"
since=${SECONDS}
k -n "${ns}" delete pod "${victim}" --wait=false >&2
wait_for 300 "pod ${victim} recreated and Ready" pod_replaced_and_ready "${victim}" "${old_uid}"
wait_for 300 "EtcdCluster ${name}: Available with 3 voting members again" settled 3
new_id="$(k -n "${ns}" get etcdcluster "${name}" -o jsonpath="{.status.members[?(@.name==\"${victim}\")].id}")"
[[ "${new_id}" == "${old_id}" ]] || fail "${victim} came back as member ${new_id}, expected the same member ${old_id}"
ctl put kind-e2e-after-rejoin ok >/dev/null
got="$(ctl get kind-e2e --print-value-only)"
[[ "${got}" == hello ]] || fail "after the rejoin, read '${got}' for kind-e2e, expected 'hello'"
log "${victim} rejoined as the same member in $((SECONDS - since)) s"

# ---- teardown through the product's own paths ------------------------------------------------------------
k -n "${ns}" delete etcdcluster "${name}" --wait=true --timeout=120s >&2 || fail "EtcdCluster ${name} was not deleted"
wait_for 120 "the member StatefulSet to be garbage-collected" gone -n "${ns}" get statefulset "${name}"
"${helm}" --kube-context "${kube_context}" uninstall "${release}" --namespace "${operator_ns}" --wait=watcher --timeout 120s >&2 ||
  fail "helm uninstall failed"
wait_for 60 "the operator Deployment to be gone" gone -n "${operator_ns}" get deployment "${release}"
log "PASSED in $((SECONDS - start)) s"
