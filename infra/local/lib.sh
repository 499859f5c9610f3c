# shellcheck shell=bash disable=SC2034 # settings here are used by the other files
# Shared settings and helpers for the local development stack.
# Sourced by stack.sh and the other infra/local/*.sh files; safe to source twice.

[[ -n "${PG2BQ_STACK_LIB_LOADED:-}" ]] && return 0
PG2BQ_STACK_LIB_LOADED=1

# --- Locations (all derived from this file's location, never hard-coded) ------

STACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$STACK_DIR/../.." && pwd)"

STATE_DIR="$REPO_ROOT/.local"
VENV_DIR="$STATE_DIR/venv"
PG_ROOT="$STATE_DIR/pg"
PG_DATA="$PG_ROOT/data"
PUBSUB_DATA="$STATE_DIR/pubsub"
LOG_DIR="$STATE_DIR/logs"
PID_DIR="$STATE_DIR/pids"
GCLOUD_CONFIG_DIR="$STATE_DIR/gcloud"
BIGQUERYRC_FILE="$STATE_DIR/bigqueryrc"
ENV_FILE="$STATE_DIR/stack.env"

# --- Settings (overridable from the environment) ------------------------------

LOOPBACK=127.0.0.1
PROJECT="${PG2BQ_PROJECT:-pg2bq-local}"
PG_PORT="${PG2BQ_PG_PORT:-25432}"
PUBSUB_PORT="${PG2BQ_PUBSUB_PORT:-28085}"
BQ_REST_PORT="${PG2BQ_BQ_REST_PORT:-29050}"
BQ_GRPC_PORT="${PG2BQ_BQ_GRPC_PORT:-29060}"
GCS_PORT="${PG2BQ_GCS_PORT:-29070}"
CLAIM_BUCKET="${PG2BQ_CLAIM_BUCKET:-pg2bq-claims}"
PG_MIN_MAJOR=14
# The PostgreSQL major version to run: empty for the system's server (Debian's 15 here), else
# one of 14 to 18 (the system's server if it is that version, else a pinned build, pgdist.sh).
PG_VERSION_WANTED="${PG2BQ_PG_VERSION:-}"

# Filled in by locate_pg_bindir / locate_gcloud_sdk_root.
PG_BIN="${PG2BQ_PG_BINDIR:-}"
GCLOUD_SDK_ROOT=""

# Every gcloud/bq call made by (or after sourcing the env file of) this stack
# uses a project-local gcloud config, never the user's ~/.config/gcloud.
export CLOUDSDK_CONFIG="$GCLOUD_CONFIG_DIR"
export CLOUDSDK_CORE_DISABLE_PROMPTS=1

# --- Output --------------------------------------------------------------------

say() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Path relative to the repository root, for friendlier messages.
rel() { printf '%s' "${1#"$REPO_ROOT"/}"; }

# --- Validation ------------------------------------------------------------------

validate_settings() {
  local name value
  for name in PG2BQ_PG_PORT:"$PG_PORT" PG2BQ_PUBSUB_PORT:"$PUBSUB_PORT" \
    PG2BQ_BQ_REST_PORT:"$BQ_REST_PORT" PG2BQ_BQ_GRPC_PORT:"$BQ_GRPC_PORT" PG2BQ_GCS_PORT:"$GCS_PORT"; do
    value="${name#*:}"
    if [[ ! "$value" =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
      die "${name%%:*}='$value' is not a valid TCP port"
    fi
  done
  [[ "$PROJECT" =~ ^[a-z][-a-z0-9]{4,28}[a-z0-9]$ ]] ||
    die "PG2BQ_PROJECT='$PROJECT' is not a valid GCP project id"
  [[ "$CLAIM_BUCKET" =~ ^[a-z0-9][-_a-z0-9]{1,61}[a-z0-9]$ ]] ||
    die "PG2BQ_CLAIM_BUCKET='$CLAIM_BUCKET' is not a valid Cloud Storage bucket name"
}

is_root() { [[ "$EUID" -eq 0 ]]; }

# --- State directory -------------------------------------------------------------

ensure_state_dirs() {
  mkdir -p "$STATE_DIR" "$LOG_DIR" "$PID_DIR" "$GCLOUD_CONFIG_DIR" "$PUBSUB_DATA"
  # Keep the whole state directory out of git even without a root .gitignore entry.
  [[ -f "$STATE_DIR/.gitignore" ]] || printf '*\n' >"$STATE_DIR/.gitignore"
}

# --- Locating tools ----------------------------------------------------------------

# Major version of the PostgreSQL server binaries in directory $1 (empty if none).
pg_bindir_major() {
  local dir="$1" tool version
  for tool in initdb pg_ctl postgres; do
    [[ -x "$dir/$tool" ]] || return 0
  done
  version="$("$dir/postgres" --version 2>/dev/null)" || return 0
  # "postgres (PostgreSQL) 15.18 (Debian ...)" -> 15
  if [[ "$version" =~ PostgreSQL\)\ ([0-9]+) ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
  fi
}

# Sets PG_BIN to the newest server bin dir with version >= PG_MIN_MAJOR.
# PG2BQ_PG_BINDIR, when set, is used as is.
locate_pg_bindir() {
  [[ -n "$PG_BIN" ]] && return 0
  local candidates=() dir major best="" best_major=0
  if command -v pg_config >/dev/null 2>&1; then
    candidates+=("$(pg_config --bindir 2>/dev/null || true)")
  fi
  candidates+=(/usr/lib/postgresql/*/bin /usr/local/pgsql/bin)
  for dir in "${candidates[@]}"; do
    [[ -n "$dir" && -d "$dir" ]] || continue
    major="$(pg_bindir_major "$dir")"
    if [[ -n "$major" ]] && ((major >= PG_MIN_MAJOR && major > best_major)); then
      best="$dir" best_major="$major"
    fi
  done
  [[ -n "$best" ]] || return 1
  PG_BIN="$best"
}

# Sets GCLOUD_SDK_ROOT (e.g. /usr/lib/google-cloud-sdk) from the gcloud on PATH.
locate_gcloud_sdk_root() {
  [[ -n "$GCLOUD_SDK_ROOT" ]] && return 0
  local gcloud_path
  gcloud_path="$(command -v gcloud 2>/dev/null)" || return 1
  GCLOUD_SDK_ROOT="$(cd "$(dirname "$(readlink -f "$gcloud_path")")/.." && pwd)"
}

# --- Probes --------------------------------------------------------------------

http_ok() { curl -sf -o /dev/null --max-time 3 "$1"; }

tcp_open() {
  # shellcheck disable=SC2016 # $1 is expanded by the inner bash.
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$LOOPBACK" "$1" 2>/dev/null
}

# Fails with a hint if something already listens on port $1 (env var name in $2).
require_port_free() {
  local port="$1" var="$2" what="$3"
  if tcp_open "$port"; then
    die "port $LOOPBACK:$port (for $what) is already in use by a process this script did not start; stop it or set $var to another port"
  fi
}

# --- Background services (process groups) ----------------------------------------

pidfile_for() { printf '%s/%s.pid' "$PID_DIR" "$1"; }
logfile_for() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

# Prints the process group id recorded for service $1 (nothing if no valid pid file).
recorded_pgid() {
  local file pgid
  file="$(pidfile_for "$1")"
  [[ -f "$file" ]] || return 0
  pgid="$(<"$file")"
  if [[ "$pgid" =~ ^[0-9]+$ ]]; then
    printf '%s' "$pgid"
  fi
}

# True if process group $1 still has a process whose command line contains $2.
# The marker guards against a stale pid file whose number was reused.
group_alive() {
  [[ -n "$1" ]] && pgrep -g "$1" -f -- "$2" >/dev/null 2>&1
}

# Starts "$@" as service $1 in a new session (so its pgid == its pid), output to
# the service's log; the session leader writes its own pid to the pid file.
start_detached() {
  local name="$1" pidfile logfile
  shift
  pidfile="$(pidfile_for "$name")"
  logfile="$(logfile_for "$name")"
  rm -f "$pidfile"
  # Each start begins a new log; the previous one is kept beside it (.log.1), so a stack that
  # runs for many test runs never grows one file without bound.
  [[ -f "$logfile" ]] && mv -f "$logfile" "$logfile.1"
  printf '=== %s: starting %s\n' "$(date -u +%FT%TZ)" "$*" >"$logfile"
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner bash.
  setsid bash -c 'echo "$$" >"$0"; exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$logfile" 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "$pidfile" ]] && return 0
    sleep 0.1
  done
  die "could not start $name (no pid file written); see $(rel "$logfile")"
}

# Polls "$@" once a second for up to $3 seconds while service $1 (marker $2)
# stays alive. Returns 1 on timeout or if the service died.
wait_for_service() {
  local name="$1" marker="$2" timeout="$3" deadline pgid
  shift 3
  deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    "$@" && return 0
    pgid="$(recorded_pgid "$name")"
    group_alive "$pgid" "$marker" || return 1
    sleep 1
  done
  "$@"
}

# Stops service $1 (marker $2): TERM to its process group, KILL after 10 s.
# Removes the pid file. Quiet if nothing runs.
stop_service() {
  local name="$1" marker="$2" pgid i
  pgid="$(recorded_pgid "$name")"
  if group_alive "$pgid" "$marker"; then
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
      group_alive "$pgid" "$marker" || break
      sleep 0.5
    done
    if group_alive "$pgid" "$marker"; then
      warn "$name (pgid $pgid) ignored SIGTERM for 10 s; sending SIGKILL"
      kill -KILL -- "-$pgid" 2>/dev/null || true
      sleep 0.5
    fi
    say "stopped $name (pgid $pgid)"
  fi
  rm -f "$(pidfile_for "$name")"
}

# One status line: component, state, address, pid.
status_line() {
  printf '%-10s %-9s %-44s %s\n' "$1" "$2" "$3" "${4:+pid $4}"
}

# Single-quotes $1 for a POSIX shell.
shell_quote() {
  printf "'%s'" "${1//\'/\'\\\'\'}"
}

# Writes stdin to file $1 only if the content differs (keeps mtimes stable).
write_if_changed() {
  local file="$1" tmp
  tmp="$(mktemp "$file.XXXXXX")"
  cat >"$tmp"
  if [[ -f "$file" ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
  else
    chmod 644 "$tmp"
    mv -f "$tmp" "$file"
  fi
}
