#!/usr/bin/env bash
# Install what the Patroni + PostgreSQL integration test and bench/patroni.ts need:
# a PostgreSQL server (Debian packages) and Patroni (pinned, with its etcd3 DCS and
# psycopg2-binary) in a Python virtualenv.
#
# Usage:  { read -r patroni_bin; read -r pg_bin; } < <(test/tools/patroni.sh)
#         test/tools/patroni.sh --check     (install nothing; exit 1 if anything is missing)
#
# stdout: two lines, printed last: the virtualenv's bin directory (holding `patroni`
# and `patronictl`), then PostgreSQL's bin directory (holding `postgres`, `initdb`,
# `pg_ctl`, `psql`, ...). Progress goes to stderr. Idempotent: when both are present
# and work it only prints the two paths.
#
# PostgreSQL refuses to run as root, and Patroni starts postgres itself, so Patroni
# runs as an unprivileged user: the `postgres` user that Debian's package creates
# when this runs as root, else the current user. The virtualenv must be readable by
# that user, so it is built with Debian's /usr/bin/python3 (not a Python under a
# private home directory) in
#   $ETCD_TS_PATRONI_DIR                         when set, else
#   ${ETCD_TS_CACHE:-$HOME/.cache/etcd-ts}/patroni-<version>  when that user can reach it, else
#   /opt/etcd-ts/patroni-<version>               (root's home is usually mode 700).
# pip's download cache lives in ${ETCD_TS_CACHE}/pip.
#
# Root installs missing Debian packages itself (`apt-get update` once, then
# `apt-get install -y --no-install-recommends`); another user gets told what to install.
set -euo pipefail
umask 022

PATRONI_VERSION="4.1.5"
# Every Python package of the virtualenv, pinned, so that each machine runs the same code.
PY_REQUIREMENTS=(
  "patroni[etcd3]==${PATRONI_VERSION}"
  "psycopg2-binary==2.9.13"
  "python-etcd==0.4.5"
  "dnspython==2.9.2"
  "urllib3==2.8.0"
  "PyYAML==6.0.4"
  "click==8.5.1"
  "prettytable==3.19.0"
  "wcwidth==0.9.5"
  "python-dateutil==4.0.0"
  "psutil==7.2.2"
  "ydiff==1.4.2"
  "py-consul==1.8.0"
  "requests==2.34.2"
  "certifi==2026.10.19.post1"
  "charset-normalizer==3.5.3"
  "idna==3.21"
)

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  *) printf 'usage: %s [--check]\n' "$0" >&2; exit 2 ;;
esac

cache_root="${ETCD_TS_CACHE:-${HOME}/.cache/etcd-ts}"

log() { printf 'test/tools/patroni.sh: %s\n' "$*" >&2; }
die() { printf 'test/tools/patroni.sh: error: %s\n' "$*" >&2; exit 1; }

is_root=0
[[ "$(id -u)" == 0 ]] && is_root=1

# as_run_user CMD...: runs CMD as the user Patroni runs as.
as_run_user() {
  if ((is_root)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

apt_updated=0
apt_install() {
  ((is_root)) || die "missing Debian package(s) $*; install them (apt-get install --no-install-recommends $*) or run this as root"
  ((check_only)) && die "missing Debian package(s) $*; run \`make tools\` (or test/tools/patroni.sh)"
  export DEBIAN_FRONTEND=noninteractive
  if ((apt_updated == 0)); then
    log "apt-get update"
    apt-get update -q >&2 || die "apt-get update failed"
    apt_updated=1
  fi
  log "apt-get install $*"
  apt-get install -y -q --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
}

# ------------------------------------------------------------------ PostgreSQL
# The newest PostgreSQL server under /usr/lib/postgresql/<major>/bin.
find_pg_bin() {
  local d best="" best_major=0 major
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/postgres" && -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/psql" ]] || continue
    major="$(basename "$(dirname "$d")")"
    [[ "$major" =~ ^[0-9]+$ ]] || continue
    if ((major > best_major)); then best_major=$major; best="$d"; fi
  done
  [[ -n "$best" ]] && printf '%s\n' "$best"
}

pg_bin="$(find_pg_bin || true)"
if [[ -z "$pg_bin" ]]; then
  log "no PostgreSQL server found under /usr/lib/postgresql; installing it"
  # postgresql pulls the distribution's current major version (server and client).
  apt_install postgresql
  pg_bin="$(find_pg_bin || true)"
  [[ -n "$pg_bin" ]] || die "PostgreSQL was installed but no server is under /usr/lib/postgresql/*/bin"
fi
"$pg_bin/postgres" --version >/dev/null 2>&1 || die "$pg_bin/postgres does not run"
log "PostgreSQL: $("$pg_bin/postgres" --version) in $pg_bin"

if ((is_root)); then
  getent passwd postgres >/dev/null || die "user 'postgres' does not exist (the postgresql package creates it)"
  command -v runuser >/dev/null || die "runuser (util-linux) is not on PATH"
fi

# ------------------------------------------------------------------ Patroni
python=/usr/bin/python3
if [[ ! -x "$python" ]]; then
  ((is_root)) || python="$(command -v python3 || true)"
fi
if [[ -z "$python" || ! -x "$python" ]]; then
  apt_install python3 python3-venv
  python=/usr/bin/python3
fi

if [[ -n "${ETCD_TS_PATRONI_DIR:-}" ]]; then
  venv="$ETCD_TS_PATRONI_DIR"
elif ((is_root == 0)); then
  venv="${cache_root}/patroni-${PATRONI_VERSION}"
else
  mkdir -p "$cache_root"
  if runuser -u postgres -- test -x "$cache_root" -a -r "$cache_root" 2>/dev/null; then
    venv="${cache_root}/patroni-${PATRONI_VERSION}"
  else
    venv="/opt/etcd-ts/patroni-${PATRONI_VERSION}"
  fi
fi

# venv_ok: the virtualenv is complete, and Patroni and its drivers load as the run user.
venv_ok() {
  [[ -f "$venv/.complete" && -x "$venv/bin/patroni" ]] || return 1
  local out
  out="$(as_run_user timeout 60 "$venv/bin/patroni" --version 2>&1)" || return 1
  grep -q "patroni ${PATRONI_VERSION}\$" <<<"$out" || return 1
  as_run_user timeout 60 "$venv/bin/python" -c 'import psycopg2, etcd, yaml, urllib3' >/dev/null 2>&1 || return 1
}

finish() {
  log "Patroni ${PATRONI_VERSION} in $venv; runs as $( ((is_root)) && echo postgres || id -un)"
  printf '%s\n' "$venv/bin" "$pg_bin"
  exit 0
}

venv_ok && finish
((check_only)) && die "Patroni ${PATRONI_VERSION} is not installed in $venv; run \`make tools\` (or test/tools/patroni.sh)"

mkdir -p "$(dirname "$venv")"
# Serialise concurrent installs (several test runners starting at once).
exec 9>"${venv}.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9 || die "cannot lock ${venv}.lock"
fi
venv_ok && finish

if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv
fi

start=$SECONDS
log "creating the virtualenv $venv with $("$python" --version 2>&1)"
rm -rf "$venv"
"$python" -m venv "$venv" >&2 || die "python3 -m venv $venv failed"
mkdir -p "${cache_root}/pip"
log "pip install ${PY_REQUIREMENTS[*]}"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --no-input -q \
  --cache-dir "${cache_root}/pip" "${PY_REQUIREMENTS[@]}" >&2 ||
  die "pip install into $venv failed; see the output above"
# Readable (and the scripts executable) by the unprivileged run user, whatever umask pip used.
chmod -R a+rX "$venv"
[[ "$(dirname "$venv")" == /opt/etcd-ts ]] && chmod 755 /opt/etcd-ts
touch "$venv/.complete"
venv_ok || die "Patroni was installed in $venv but does not run as $( ((is_root)) && echo postgres || id -un)"
log "installed in $((SECONDS - start))s"
finish
