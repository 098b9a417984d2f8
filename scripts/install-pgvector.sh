#!/usr/bin/env bash
# Make the pgvector extension available for the system PostgreSQL (Debian).
#
# pgvector is not packaged for Debian bookworm, but Debian trixie ships its
# source (pgvector 0.8.0). This script downloads that source package with a
# temporary deb-src list (nothing under /etc/apt is modified), builds it
# against the newest installed PostgreSQL major and installs it.
#
# Idempotent: exits 0 at once if vector.control is already installed.
# Needs root for the install; re-runs itself through sudo when available.
set -euo pipefail

log() { printf 'install-pgvector: %s\n' "$*" >&2; }
die() { printf 'install-pgvector: ERROR: %s\n' "$*" >&2; exit 1; }
# quiet CMD...: run CMD with its output in a log file; show the log's tail on failure.
quiet() {
  local logfile="$work/step.log"
  if ! "$@" >"$logfile" 2>&1; then
    tail -n 40 "$logfile" | sed 's/^/  | /' >&2
    return 1
  fi
}

# --- locate the newest installed PostgreSQL major ---------------------------
[ -d /usr/lib/postgresql ] || die "no PostgreSQL found (/usr/lib/postgresql does not exist)"
PG_MAJOR=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | grep -E '^[0-9]+$' | sort -n | tail -1 || true)
[ -n "$PG_MAJOR" ] || die "no PostgreSQL major version found under /usr/lib/postgresql"
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
[ -x "$PG_CONFIG" ] || die "pg_config not found at $PG_CONFIG (PostgreSQL $PG_MAJOR)"
SHAREDIR=$("$PG_CONFIG" --sharedir) || die "'$PG_CONFIG --sharedir' failed"
CONTROL=$SHAREDIR/extension/vector.control

if [ -f "$CONTROL" ]; then
  log "pgvector already installed for PostgreSQL $PG_MAJOR ($CONTROL); nothing to do"
  exit 0
fi

# --- become root ------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    log "not running as root; re-running with sudo"
    exec sudo -- bash "$0" "$@"
  fi
  die "must run as root (sudo is not available)"
fi

export DEBIAN_FRONTEND=noninteractive

# --- the Debian mirror this machine already uses ----------------------------
MIRROR=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$MIRROR" ] && [ -f /etc/apt/sources.list ]; then
  MIRROR=$(awk '$1=="deb" && $2 !~ /^\[/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
fi
[ -n "$MIRROR" ] || die "could not determine the Debian mirror from /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"

log "building pgvector for PostgreSQL $PG_MAJOR (mirror $MIRROR)"

# --- temporary apt configuration (never touches /etc/apt) -------------------
work=$(mktemp -d -t install-pgvector.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
# Let apt's unprivileged download user (_apt) write into the temp folder.
chmod 755 "$work"
mkdir -p "$work/lists/partial"
printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
  "$MIRROR" >"$work/src.sources"
APT=(-o Dir::Etc::SourceList="$work/src.sources" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$work/lists")

log "fetching trixie source index"
quiet apt-get "${APT[@]}" update -qq || die "apt-get update for the temporary trixie deb-src list failed"

log "downloading pgvector source package"
(cd "$work" && quiet apt-get "${APT[@]}" source --download-only -qq pgvector) \
  || die "apt-get source --download-only pgvector failed"

log "installing build dependencies (postgresql-server-dev-$PG_MAJOR)"
quiet apt-get install -y -qq "postgresql-server-dev-$PG_MAJOR" \
  || die "apt-get install postgresql-server-dev-$PG_MAJOR failed"
command -v make >/dev/null 2>&1 || die "make is not installed (apt-get install make gcc)"

# --- unpack, build, install -------------------------------------------------
shopt -s nullglob
tarballs=("$work"/pgvector_*.orig.tar.*)
[ "${#tarballs[@]}" -ge 1 ] || die "pgvector source tarball not found in the downloaded source package"
log "unpacking $(basename "${tarballs[0]}")"
tar -C "$work" -xf "${tarballs[0]}" || die "could not unpack ${tarballs[0]}"
srcdirs=("$work"/pgvector-*/)
[ "${#srcdirs[@]}" -ge 1 ] || die "unpacked pgvector source directory not found"
src=${srcdirs[0]}
shopt -u nullglob

log "building in $src"
quiet make -C "$src" PG_CONFIG="$PG_CONFIG" || die "pgvector build failed"
log "installing"
quiet make -C "$src" install PG_CONFIG="$PG_CONFIG" || die "pgvector install failed"

# --- verify -----------------------------------------------------------------
[ -f "$CONTROL" ] || die "install finished but $CONTROL does not exist"
version=$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "$CONTROL")
log "pgvector ${version:-?} installed for PostgreSQL $PG_MAJOR ($CONTROL)"
