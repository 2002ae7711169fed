#!/usr/bin/env bash
# The container image's contents, built the same way inside `docker build` and on a machine without Docker.
#
# Usage:
#   test/tools/image.sh stage OUT      Build the runtime tree into OUT (must not exist or be empty): what the
#                                      Dockerfile's build stage runs and its runtime stage COPYs.
#   test/tools/image.sh rootfs         Stage (cached by a hash of the sources) and assemble a local stand-in for
#                                      the image's root filesystem: the staged tree + node + the shared
#                                      libraries the base image provides. Prints the rootfs path (stdout, last).
#   test/tools/image.sh run [-v HOST:CTR]... ROOTFS CMD [ARG...]
#                                      Start CMD the way the container runtime starts the image: PID 1 of a new
#                                      PID namespace, chrooted into a read-only ROOTFS, as uid/gid 65532, with
#                                      the image's WORKDIR and ENV, /tmp as tmpfs, HOST dirs bind-mounted at CTR.
#                                      Must run as root. Mounts live in a private mount namespace, so they
#                                      vanish with it whatever way the process ends.
#   test/tools/image.sh describe       Print the image's runtime settings (key=value) the runner uses, so a
#                                      test can compare them with the Dockerfile's runtime stage.
#
# Staged tree (OUT):
#   app/{package.json,package-lock.json,dist/src,dist/operator,proto,node_modules}   production-only
#   usr/local/bin/{etcd-ts,etcd-ts-operator}   symlinks to the two entry points (their shebang names the base
#                                              image's node, so no shell or /usr/bin/env is needed)
#   var/lib/etcd-ts/                           WORKDIR and data mount point, owned by the runtime user
#
# What the local rootfs does NOT reproduce (said again in the README):
# - node and glibc/libstdc++ are the host's (Debian 12 + Node 20 where the tests run, like the distroless
#   nodejs20-debian12 base, but not the same builds); the base image's other files (CA certificates, tzdata)
#   are absent, so the local run can only be stricter there;
# - the network namespace is the host's (tests reach 127.0.0.1 directly, where Docker would publish ports),
#   and /etc/hosts is the host's (a container runtime writes its own);
# - no cgroup limits, seccomp profile or capability bounding set of a container runtime (the process has no
#   effective capabilities because it is not uid 0, and no_new_privs is set, as allowPrivilegeEscalation=false).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
cache_root="${ETCD_TS_CACHE:-${HOME}/.cache/etcd-ts}"

# The runtime settings; the Dockerfile's runtime stage states the same values (a test compares them).
RUNTIME_UID=65532
RUNTIME_GID=65532
NODE_PATH_IN_IMAGE=/nodejs/bin/node # where the distroless nodejs images keep node
WORKDIR=/var/lib/etcd-ts
IMAGE_PATH_ENV=/usr/local/bin:/nodejs/bin:/usr/bin:/bin
IMAGE_HOME=/home/nonroot
ENTRYPOINT=etcd-ts

log() { printf '%s\n' "$*" >&2; }
die() {
  log "image.sh: $*"
  exit 1
}

# Everything `stage` reads from the repository (the Dockerfile's build stage copies exactly these, plus the
# Makefile; a test checks it); their hash names the local cache entry.
SOURCES=(package.json package-lock.json .npmrc tsconfig.json src operator proto test/tools/image.sh)

source_hash() {
  (
    cd "${repo}"
    find "${SOURCES[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
  )
}

# ---------------------------------------------------------------------------------------------------------------
# stage OUT

stage() {
  local out="$1"
  [[ -n "${out}" ]] || die "stage: no output directory given"
  if [[ -e "${out}" && -n "$(ls -A "${out}" 2>/dev/null)" ]]; then
    die "stage: ${out} exists and is not empty"
  fi
  command -v npm >/dev/null || die "stage: npm is needed to build the image tree"
  mkdir -p "${out}"
  out="$(cd "${out}" && pwd)"

  # Build in a scratch copy: the working tree's node_modules and dist are left alone, and nothing from them
  # (stale outputs, dev-only files) can leak into the image.
  local work
  work="$(mktemp -d -t etcd-ts-image-build.XXXXXX)"
  # shellcheck disable=SC2064 # expand now: the trap must remove this directory even if `work` changes
  trap "rm -rf '${work}'" EXIT
  log "image.sh: building in ${work}"
  # .npmrc carries the project's npm settings (lock file format, no audit/fund calls).
  (cd "${repo}" && cp -a package.json package-lock.json .npmrc tsconfig.json src operator proto "${work}/")
  (cd "${work}" && npm ci --no-audit --no-fund --loglevel=error >&2)
  (cd "${work}" && npx tsc -p tsconfig.json --outDir dist >&2)
  [[ -f "${work}/dist/src/bin/etcd-ts.js" && -f "${work}/dist/operator/main.js" ]] ||
    die "stage: tsc did not produce dist/src/bin/etcd-ts.js and dist/operator/main.js"

  local app="${out}/app"
  mkdir -p "${app}/dist"
  cp -a "${work}/package.json" "${work}/package-lock.json" "${work}/.npmrc" "${app}/"
  # Only the two programs' code: tsconfig compiles src/ and operator/ (no tests, no bench).
  cp -a "${work}/dist/src" "${work}/dist/operator" "${app}/dist/"
  cp -a "${work}/proto" "${app}/proto"
  # Production dependencies only. --ignore-scripts: nothing is compiled here; the RocksDB binding's prebuilt
  # library is used, and the checks in test/integration/image.test.ts prove it loads in the final tree.
  (cd "${app}" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  rm -f "${app}/.npmrc"
  prune "${app}"

  # The entry points run through the kernel's shebang handling: the base image has no shell and no
  # /usr/bin/env, so the shebang names its node directly.
  local bin
  for bin in dist/src/bin/etcd-ts.js dist/operator/main.js; do
    [[ "$(head -n1 "${app}/${bin}")" == '#!/usr/bin/env node' ]] || die "stage: ${bin} does not start with '#!/usr/bin/env node'"
    sed -i "1s|.*|#!${NODE_PATH_IN_IMAGE}|" "${app}/${bin}"
    chmod 0755 "${app}/${bin}"
  done
  mkdir -p "${out}/usr/local/bin"
  ln -s /app/dist/src/bin/etcd-ts.js "${out}/usr/local/bin/etcd-ts"
  ln -s /app/dist/operator/main.js "${out}/usr/local/bin/etcd-ts-operator"
  mkdir -p "${out}${WORKDIR}"
  chmod -R u+rwX,go+rX,go-w "${out}"
  log "image.sh: staged $(du -sm "${out}" | cut -f1) MB into ${out} (node_modules $(du -sm "${app}/node_modules" | cut -f1) MB)"
}

# Drops what the runtime never loads. Each removal is safe for a reason given here; the image test starts both
# programs (and RocksDB) from the pruned tree.
prune() {
  local app="$1" nm="$1/node_modules"
  local platform
  platform="$(node -p 'process.platform + "-" + process.arch')"
  # RocksDB: C++ sources, the bundled library sources and a zip of every prebuild are for compiling; the
  # loader (node-gyp-build) only looks in prebuilds/<platform>-<arch>/.
  local rdb="${nm}/@nxtedition/rocksdb"
  [[ -d "${rdb}/prebuilds/${platform}" ]] || die "stage: no prebuilt RocksDB binding for ${platform} (the image supports linux-x64)"
  rm -rf "${rdb}/deps" "${rdb}/prebuilds.zip" "${rdb}/binding.cc" "${rdb}/binding.gyp" "${rdb}/build.sh" "${rdb}"/*.h
  find "${rdb}/prebuilds" -mindepth 1 -maxdepth 1 ! -name "${platform}" -exec rm -rf {} +
  # Type declarations, TypeScript sources and source maps are not read by node at run time.
  find "${nm}" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.ts' -o -name '*.map' \) -delete
  # @types packages (pulled in by dependencies' own dependencies) hold only type declarations.
  rm -rf "${nm}/@types"
  # Command-line links of dependencies (proto-loader-gen-types, pbjs, ...): nothing in the image runs them.
  rm -rf "${nm}/.bin"
  # The compiled code's own source maps point at .ts files that are not in the image.
  find "${app}/dist" -type f -name '*.map' -delete
}

# ---------------------------------------------------------------------------------------------------------------
# rootfs: the staged tree + what the distroless nodejs20-debian12:nonroot base provides (node, glibc,
# libstdc++/libgcc, /etc/passwd with the nonroot user, /tmp, /home/nonroot).

rootfs() {
  command -v ldd >/dev/null || die "rootfs: ldd is needed"
  local key base stage_dir root
  key="$(source_hash)"
  base="${cache_root}/image"
  stage_dir="${base}/stage-${key}"
  root="${base}/rootfs-${key}"
  mkdir -p "${base}"
  # One builder at a time (make image-rootfs and a test may start together); the others wait, then reuse it.
  exec 9>"${base}/.lock"
  flock -w 600 9 || die "rootfs: another build held ${base}/.lock for 10 minutes"
  if [[ -f "${root}/.complete" ]]; then
    log "image.sh: cached rootfs ${root}"
    printf '%s\n' "${root}"
    return
  fi
  # Older entries belong to older sources: keep the two newest others (another checkout's test run may be
  # using one right now) and drop the rest, so the cache does not grow without bound.
  local old
  old="$(ls -1dt "${base}"/rootfs-* 2>/dev/null | grep -v -- "-${key}\$" | tail -n +3 | sed 's|.*/rootfs-||')" || true
  for k in ${old}; do rm -rf "${base}/rootfs-${k}" "${base}/stage-${k}"; done
  # a stage left without its rootfs (an interrupted build) is rebuilt or dropped likewise
  for d in "${base}"/stage-*; do
    [[ -e "${d}" && "${d}" != "${stage_dir}" && ! -d "${base}/rootfs-${d##*/stage-}" ]] && rm -rf "${d}"
  done
  if [[ ! -f "${stage_dir}/.complete" ]]; then
    rm -rf "${stage_dir}"
    stage "${stage_dir}"
    touch "${stage_dir}/.complete"
  fi
  rm -rf "${root}"
  mkdir -p "${root}"
  # The staged tree as the runtime stage COPYs it: root-owned, except the WORKDIR (COPY --chown).
  cp -a "${stage_dir}/app" "${stage_dir}/usr" "${root}/"
  rm -f "${root}/.complete"
  mkdir -p "${root}${WORKDIR}"
  chown -R 0:0 "${root}/app" "${root}/usr"
  chown "${RUNTIME_UID}:${RUNTIME_GID}" "${root}${WORKDIR}"

  # node, and every shared library it or the RocksDB binding links, at the paths the loader asks for.
  local node_bin
  node_bin="$(readlink -f "$(command -v node)")"
  mkdir -p "${root}$(dirname "${NODE_PATH_IN_IMAGE}")"
  cp "${node_bin}" "${root}${NODE_PATH_IN_IMAGE}"
  local lib binding
  binding="$(find "${root}/app/node_modules/@nxtedition/rocksdb/prebuilds" -name '*.node' | head -n1)"
  [[ -n "${binding}" ]] || die "rootfs: no RocksDB binding in the staged tree"
  while read -r lib; do
    cp -L --parents "${lib}" "${root}/"
  done < <(ldd "${node_bin}" "${binding}" | grep -o '/[^ ]*\.so[^ ]*' | sort -u)

  mkdir -p "${root}/etc" "${root}/proc" "${root}/dev" "${root}/tmp" "${root}${IMAGE_HOME}"
  chmod 1777 "${root}/tmp"
  chown "${RUNTIME_UID}:${RUNTIME_GID}" "${root}${IMAGE_HOME}"
  chmod 0700 "${root}${IMAGE_HOME}"
  cat >"${root}/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:${RUNTIME_UID}:${RUNTIME_GID}:nonroot:${IMAGE_HOME}:/sbin/nologin
EOF
  cat >"${root}/etc/group" <<EOF
root:x:0:
tty:x:5:
staff:x:50:
nobody:x:65534:
nonroot:x:${RUNTIME_GID}:
EOF
  # Mount points for what a container runtime provides at start: device nodes and /etc/hosts.
  local dev
  for dev in null zero full random urandom; do : >"${root}/dev/${dev}"; done
  ln -s /proc/self/fd "${root}/dev/fd"
  ln -s /proc/self/fd/0 "${root}/dev/stdin"
  ln -s /proc/self/fd/1 "${root}/dev/stdout"
  ln -s /proc/self/fd/2 "${root}/dev/stderr"
  : >"${root}/etc/hosts"
  touch "${root}/.complete"
  log "image.sh: rootfs ${root} ($(du -sm "${root}" | cut -f1) MB)"
  printf '%s\n' "${root}"
}

# ---------------------------------------------------------------------------------------------------------------
# run: outside part (new namespaces) and inside part (mounts, then exec into the image).

run() {
  [[ "$(id -u)" == 0 ]] || die "run: needs root (it creates namespaces and mounts)"
  local vols=()
  while [[ $# -gt 0 && "$1" == -v ]]; do
    [[ $# -ge 2 && "$2" == /*:/* ]] || die "run: -v needs HOST:CONTAINER with absolute paths, got '${2:-}'"
    vols+=("$2")
    shift 2
  done
  [[ $# -ge 2 ]] || die "run: usage: image.sh run [-v HOST:CTR]... ROOTFS CMD [ARG...]"
  local root="$1"
  shift
  [[ -f "${root}/.complete" ]] || die "run: ${root} is not a rootfs made by 'image.sh rootfs'"
  root="$(cd "${root}" && pwd)"
  local v
  for v in "${vols[@]+"${vols[@]}"}"; do
    [[ -d "${v%%:*}" ]] || die "run: volume source ${v%%:*} is not a directory"
  done
  # --kill-child: if this process is killed, so is the namespace's PID 1 (and with it every process in it).
  exec unshare --pid --fork --kill-child --mount --propagation private -- \
    bash "${here}/image.sh" __inside "${root}" "${#vols[@]}" "${vols[@]+"${vols[@]}"}" "$@"
}

inside() {
  local root="$1" nvols="$2"
  shift 2
  local vols=("${@:1:${nvols}}")
  shift "${nvols}"
  # The rootfs is bound onto itself so it can be made read-only here (readOnlyRootFilesystem, as the operator
  # runs members) without changing the cached directory for anyone else.
  mount --bind "${root}" "${root}"
  mount -t proc -o nosuid,nodev,noexec proc "${root}/proc"
  local dev
  for dev in null zero full random urandom; do mount --bind "/dev/${dev}" "${root}/dev/${dev}"; done
  mount --bind /etc/hosts "${root}/etc/hosts"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "${root}/tmp"
  local v
  for v in "${vols[@]+"${vols[@]}"}"; do
    mkdir -p "${root}${v#*:}" 2>/dev/null || [[ -d "${root}${v#*:}" ]] || die "run: no mount point ${v#*:} in the rootfs"
    mount --bind "${v%%:*}" "${root}${v#*:}"
  done
  mount -o remount,bind,ro "${root}"
  # Exec all the way down, so the image's program is PID 1 like in a container: no shell, no init in front.
  # unshare (without new namespaces) chroots, changes directory and drops to the runtime user and group
  # (clearing supplementary groups); the program is found through the image's PATH inside the rootfs.
  exec env -i PATH="${IMAGE_PATH_ENV}" HOME="${IMAGE_HOME}" HOSTNAME=etcd-ts \
    setpriv --no-new-privs \
    unshare --root="${root}" --wd="${WORKDIR}" --setgid="${RUNTIME_GID}" --setuid="${RUNTIME_UID}" -- "$@"
}

describe() {
  printf '%s\n' "uid=${RUNTIME_UID}" "gid=${RUNTIME_GID}" "node=${NODE_PATH_IN_IMAGE}" "workdir=${WORKDIR}" \
    "path=${IMAGE_PATH_ENV}" "home=${IMAGE_HOME}" "entrypoint=${ENTRYPOINT}" "sources=${SOURCES[*]}"
}

case "${1:-}" in
  stage) stage "${2:-}" ;;
  rootfs) rootfs ;;
  run) shift && run "$@" ;;
  __inside) shift && inside "$@" ;;
  describe) describe ;;
  *) die "usage: image.sh stage OUT | rootfs | run [-v HOST:CTR]... ROOTFS CMD [ARG...] | describe" ;;
esac
