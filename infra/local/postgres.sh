# shellcheck shell=bash
# The stack's own PostgreSQL cluster (logical replication on): the system's server in
# .local/pg/data, or with PG2BQ_PG_VERSION=<major> a pinned build of that major (pgdist.sh) in
# .local/pg-<major>/data, so that clusters of different versions never share a data directory.
# One runs at a time (they share the port). PostgreSQL refuses to run as root, so as root
# everything runs as user postgres.

# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=infra/local/pgdist.sh
source "$(dirname "${BASH_SOURCE[0]}")/pgdist.sh"

PG_LOG="$LOG_DIR/postgres.log"
PG_CONF_INCLUDE="pg2bq.conf" # our settings, included from postgresql.conf
PG_MAJOR=""                  # the selected server's major version (pg_select_server)

# Chooses the server to run: the system's one (PG2BQ_PG_VERSION unset, or set to the system's
# major) in .local/pg, else the pinned build of PG2BQ_PG_VERSION (fetched if need be) in
# .local/pg-<major>. Sets PG_BIN, PG_MAJOR, PG_ROOT, PG_DATA and PG_LOG.
pg_select_server() {
  if [[ -n "$PG_VERSION_WANTED" ]]; then
    pg_dist_require_major "$PG_VERSION_WANTED"
    if ! locate_pg_bindir || [[ "$(pg_bindir_major "$PG_BIN")" != "$PG_VERSION_WANTED" ]]; then
      pg_dist_fetch "$PG_VERSION_WANTED"
      PG_BIN="$(pg_dist_bindir "$PG_VERSION_WANTED")"
      PG_ROOT="$STATE_DIR/pg-$PG_VERSION_WANTED"
      PG_DATA="$PG_ROOT/data"
      PG_LOG="$LOG_DIR/postgres-$PG_VERSION_WANTED.log"
    fi
  else
    locate_pg_bindir || die "no PostgreSQL server binaries found (see 'make up')"
  fi
  PG_MAJOR="$(pg_bindir_major "$PG_BIN")"
}

# The data directories of this stack's clusters, of every version.
pg_data_dirs() {
  local dir
  for dir in "$STATE_DIR/pg/data" "$STATE_DIR"/pg-*/data; do
    [[ -d "$dir" ]] && printf '%s\n' "$dir"
  done
}

# The server binaries that go with the data directory $1 (empty if none is found).
pg_bindir_for_data() {
  local root
  root="$(dirname "$1")"
  if [[ "$root" == "$STATE_DIR/pg" ]]; then
    locate_pg_bindir && printf '%s' "$PG_BIN"
  else
    printf '%s' "$(pg_dist_bindir "${root##*/pg-}")"
  fi
}

# The running postmaster's pid of data directory $1 (empty if it does not run).
pg_live_pid() {
  local pid=""
  [[ -r "$1/postmaster.pid" ]] && pid="$(head -n 1 "$1/postmaster.pid")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    printf '%s' "$pid"
  fi
}

# Fails if a cluster of this stack other than the selected one runs (they share the port).
pg_require_no_other_cluster() {
  local dir
  while read -r dir; do
    [[ "$dir" == "$PG_DATA" ]] && continue
    [[ -n "$(pg_live_pid "$dir")" ]] || continue
    die "PostgreSQL $(<"$dir/PG_VERSION") of this stack runs from $(rel "$dir"), and PostgreSQL $PG_MAJOR was asked for; run 'make down' first (PG2BQ_PG_VERSION picks the version 'make up' starts; unset, the system's server)"
  done < <(pg_data_dirs)
}

# Runs "$@" as the cluster owner: user postgres when we are root, else ourselves.
# cd first: postgres may not be allowed into the caller's working directory.
pg_as_owner() {
  if is_root; then
    (cd "$PG_ROOT" && runuser -u postgres -- "$@")
  else
    (cd "$PG_ROOT" && "$@")
  fi
}

# Fails unless user postgres can reach directory $1; names the blocking ancestor.
require_postgres_can_reach() {
  local target="$1" dir="" part parts
  runuser -u postgres -- test -x "$target" -a -w "$target" 2>/dev/null && return 0
  IFS=/ read -ra parts <<<"${target#/}"
  for part in "${parts[@]}"; do
    dir="$dir/$part"
    if ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
      die "user postgres cannot traverse $dir (needed to reach $target); run 'chmod o+x $dir' or put the repository somewhere world-searchable"
    fi
  done
  die "user postgres cannot write to $target"
}

pg_prepare_dirs() {
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  touch "$PG_LOG"
  if is_root; then
    # Our own state dirs must be searchable by postgres (matters with umask 077).
    chmod a+x "$STATE_DIR" "$LOG_DIR"
    if [[ "$(stat -c %U "$PG_ROOT")" != postgres || "$(stat -c %U "$PG_DATA")" != postgres ]]; then
      chown -R postgres: "$PG_ROOT"
    fi
    chown postgres: "$PG_LOG"
    require_postgres_can_reach "$PG_DATA"
  fi
}

pg_initdb() {
  say "postgres: initdb in $(rel "$PG_DATA")"
  if ! pg_as_owner "$PG_BIN/initdb" -D "$PG_DATA" --auth=trust --username=postgres \
    --encoding=UTF8 --locale=C >>"$PG_LOG" 2>&1; then
    tail -n 20 "$PG_LOG" >&2
    die "initdb failed; see $(rel "$PG_LOG")"
  fi
}

# Escapes $1 for a single-quoted postgresql.conf value.
pg_conf_quote() { printf "'%s'" "${1//\'/\'\'}"; }

pg_write_config() {
  write_if_changed "$PG_DATA/$PG_CONF_INCLUDE" <<EOF
# Written by infra/local/stack.sh on every 'up'; edits are overwritten.
listen_addresses = '$LOOPBACK'
port = $PG_PORT
# TCP only: a Unix socket under the checkout would limit its path to ~100 bytes (sun_path).
unix_socket_directories = ''
max_connections = 200
shared_buffers = 256MB
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
max_slot_wal_keep_size = '4GB'
wal_sender_timeout = '60s'
logging_collector = off
EOF
  local line="include = '$PG_CONF_INCLUDE'"
  grep -qxF "$line" "$PG_DATA/postgresql.conf" ||
    printf '\n# pg2bq local stack settings\n%s\n' "$line" >>"$PG_DATA/postgresql.conf"

  write_if_changed "$PG_DATA/pg_hba.conf" <<EOF
# Written by infra/local/stack.sh: trust loopback (a loopback-only dev cluster, TCP only).
# TYPE  DATABASE     USER  ADDRESS        METHOD
host    all          all   127.0.0.1/32   trust
host    replication  all   127.0.0.1/32   trust
EOF
  if is_root; then
    chown postgres: "$PG_DATA/$PG_CONF_INCLUDE" "$PG_DATA/pg_hba.conf" "$PG_DATA/postgresql.conf"
  fi
}

pg_running() { pg_as_owner "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; }
# Whether the server accepts connections: pg_isready from the server's directory or the system
# (the pinned builds have none), else whether the port is open.
pg_answering() {
  local isready="$PG_BIN/pg_isready"
  [[ -x "$isready" ]] || isready="$(command -v pg_isready 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_isready 2>/dev/null | tail -n 1)"
  if [[ -n "$isready" ]]; then
    "$isready" -q -h "$LOOPBACK" -p "$PG_PORT" -t 2 >/dev/null 2>&1
  else
    tcp_open "$PG_PORT"
  fi
}

# Postmaster pid from postmaster.pid (empty if none).
pg_pid() {
  if [[ -r "$PG_DATA/postmaster.pid" ]]; then
    head -n 1 "$PG_DATA/postmaster.pid"
  fi
}

pg_wait_ready() {
  local i
  for ((i = 0; i < 30; i++)); do
    pg_answering && return 0
    sleep 1
  done
  return 1
}

pg_up() {
  pg_require_no_other_cluster
  pg_prepare_dirs
  [[ -s "$PG_DATA/PG_VERSION" ]] || pg_initdb

  local data_major bin_major
  data_major="$(<"$PG_DATA/PG_VERSION")"
  bin_major="$(pg_bindir_major "$PG_BIN")"
  [[ "$data_major" == "$bin_major" ]] ||
    die "$(rel "$PG_DATA") was created by PostgreSQL $data_major but the binaries in $PG_BIN are $bin_major; run 'infra/local/stack.sh reset' to recreate it, or set PG2BQ_PG_VERSION=$data_major"

  pg_write_config
  if pg_running; then
    pg_wait_ready ||
      die "PostgreSQL from $(rel "$PG_DATA") runs (pid $(pg_pid)) but does not answer on $LOOPBACK:$PG_PORT; if you changed PG2BQ_PG_PORT run 'infra/local/stack.sh down' first"
    say "postgres: already running on $LOOPBACK:$PG_PORT (pid $(pg_pid))"
    return 0
  fi

  require_port_free "$PG_PORT" PG2BQ_PG_PORT PostgreSQL
  say "postgres: starting PostgreSQL $PG_MAJOR ($PG_BIN) on $LOOPBACK:$PG_PORT"
  if ! pg_as_owner "$PG_BIN/pg_ctl" -w -t 60 -D "$PG_DATA" -l "$PG_LOG" start >/dev/null; then
    tail -n 20 "$PG_LOG" >&2
    die "PostgreSQL did not start; see $(rel "$PG_LOG")"
  fi
  pg_wait_ready || die "PostgreSQL started but does not answer on $LOOPBACK:$PG_PORT; see $(rel "$PG_LOG")"
}

# Stops every cluster of this stack that runs, whatever its version.
pg_down() {
  local PG_DATA="" PG_ROOT="" PG_BIN="" pid
  while read -r PG_DATA; do
    pid="$(pg_live_pid "$PG_DATA")"
    [[ -n "$pid" ]] || continue
    PG_ROOT="$(dirname "$PG_DATA")"
    PG_BIN="$(pg_bindir_for_data "$PG_DATA")"
    [[ -x "$PG_BIN/pg_ctl" ]] ||
      die "PostgreSQL runs from $(rel "$PG_DATA") (pid $pid) but no pg_ctl was found to stop it"
    pg_as_owner "$PG_BIN/pg_ctl" -w -t 30 -D "$PG_DATA" stop -m fast >/dev/null
    say "stopped postgres $(<"$PG_DATA/PG_VERSION") (pid $pid)"
  done < <(pg_data_dirs)
}

# One line per running cluster (one "stopped" line if none runs).
pg_status() {
  local addr="$LOOPBACK:$PG_PORT" dir pid any=""
  while read -r dir; do
    pid="$(pg_live_pid "$dir")"
    [[ -n "$pid" ]] || continue
    any=1
    # The port it runs on (line 4 of postmaster.pid), whatever PG2BQ_PG_PORT says now.
    local PG_BIN="" PG_PORT=""
    PG_BIN="$(pg_bindir_for_data "$dir")"
    PG_PORT="$(sed -n 4p "$dir/postmaster.pid")"
    if pg_answering; then
      status_line postgres running "$LOOPBACK:$PG_PORT (PostgreSQL $(<"$dir/PG_VERSION"))" "$pid"
    else
      status_line postgres unhealthy "$LOOPBACK:$PG_PORT (not answering)" "$pid"
    fi
  done < <(pg_data_dirs)
  [[ -n "$any" ]] || status_line postgres stopped "$addr" ""
}
