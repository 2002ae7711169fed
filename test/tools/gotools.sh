# Sourced (not run) by the scripts that build Go tools into the cache: build.sh (reference etcd), k8s.sh
# (Kubernetes) and charts.sh (helm, promtool, prometheus). What they share lives here: the --check flag,
# messages, the cross-process lock, the "already built?" checks before and after taking it, and the loop
# that builds each missing tool and checks it runs.
#
# The sourcing script sets, before calling gotools_main "$@":
#   script    its name, for messages (e.g. test/tools/k8s.sh)
#   what      what it builds, for messages (e.g. "Kubernetes v1.37.2 control plane")
#   make_target  the make target that runs it, for the --check message
#   bin_dir   where the binaries go
#   tools     an array of entries "NAME<sep>...", NAME being the binary's name and <sep> ':' or '|'
# and defines:
#   tool_ok NAME      succeeds when ${bin_dir}/NAME exists, runs and is the pinned version
#   build_tool ENTRY  builds one entry into ${bin_dir}/NAME (through a temporary file), or dies
#   before_build      optional: checks and `cd` before the first build (runs with the lock held)
# Progress goes to stderr; the only line on stdout is the bin directory, printed last.

log() { printf '%s\n' "$*" >&2; }
die() {
  printf '%s: error: %s\n' "${script}" "$*" >&2
  exit 1
}

gotools_name() { local t="$1"; printf '%s' "${t%%[:|]*}"; }

gotools_all_ok() {
  local t
  for t in "${tools[@]}"; do
    tool_ok "$(gotools_name "$t")" || return 1
  done
}

gotools_main() {
  local check_only=0
  case "${1:-}" in
    --check) check_only=1 ;;
    "") ;;
    *)
      printf 'usage: %s [--check]\n' "${script}" >&2
      exit 2
      ;;
  esac

  if gotools_all_ok; then
    log "${what} already built in ${bin_dir}"
    printf '%s\n' "${bin_dir}"
    exit 0
  fi
  if [[ ${check_only} == 1 ]]; then
    log "${script}: ${what} missing or not runnable in ${bin_dir}; run \`make ${make_target}\`"
    exit 1
  fi

  command -v go >/dev/null 2>&1 || die "the 'go' command is not on PATH; install Go (>= 1.26) to build the ${what}"
  mkdir -p "${bin_dir}" || die "cannot create ${bin_dir}"

  # Serialise concurrent builds (e.g. several test runners starting at once).
  exec 9>"${bin_dir}/.build.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9 || die "cannot lock ${bin_dir}/.build.lock"
  fi
  # Another process may have finished the build while we waited for the lock.
  if gotools_all_ok; then
    log "${what} already built in ${bin_dir}"
    printf '%s\n' "${bin_dir}"
    exit 0
  fi

  log "using $(go version)"
  if declare -F before_build >/dev/null; then before_build; fi

  local start=${SECONDS} t name
  for t in "${tools[@]}"; do
    name="$(gotools_name "$t")"
    if tool_ok "${name}"; then
      log "ok       ${name} (already built)"
      continue
    fi
    log "building ${name} ..."
    build_tool "$t"
    tool_ok "${name}" || die "${bin_dir}/${name} was built but does not run or does not report the pinned version"
    log "built    ${name} ($((SECONDS - start))s elapsed)"
  done

  log "${what} ready in ${bin_dir} ($((SECONDS - start))s)"
  printf '%s\n' "${bin_dir}"
}
