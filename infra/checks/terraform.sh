#!/usr/bin/env bash
# `make tf-check`: offline checks of the Google Cloud deployment (terraform/) and of the image
# Dockerfile. Fails on the first check that does not pass.
#   1. terraform fmt -check -recursive terraform
#   2. tf-schema-check (../shared/tools/tf-schema-check): every google_* resource and argument
#      exists in the provider's schema and required ones are set; 0 findings.
#   3. checkov (.checkov.yaml) over terraform/ and infra/docker/Dockerfile: 0 failed checks; skips
#      are justified next to what they skip.
# `terraform validate` needs the provider plugins, which cannot be downloaded offline: check 2
# stands in for it.
#
# The Python tools live in their own venvs under .local/ (checkov's bc-python-hcl2 and
# python-hcl2 install the same `hcl2` module, and neither may disturb bqemulator's pins):
#   .local/venv-tfschema  python-hcl2, for tf-schema-check
#   .local/venv-checkov   checkov
set -euo pipefail

# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"

TF_DIR="$REPO_ROOT/terraform"
SCHEMA_CHECK="${PG2BQ_TF_SCHEMA_CHECK:-$REPO_ROOT/../shared/tools/tf-schema-check/check.py}"
SCHEMA_VENV="$STATE_DIR/venv-tfschema"
SCHEMA_PACKAGES=(python-hcl2==8.1.4)
CHECKOV_VENV="$STATE_DIR/venv-checkov"
CHECKOV_PACKAGES=(checkov==3.3.30)

# Creates or updates a venv; pip runs only when its package list changed.
ensure_venv() {
  local dir="$1" marker wanted log
  shift
  marker="$dir/.pg2bq-ready"
  wanted="$(printf '%s\n' "$@")"
  log="$LOG_DIR/$(basename "$dir")-install.log"
  if ! "$dir/bin/python" -c '' >/dev/null 2>&1; then
    rm -rf "$dir"
    command -v python3 >/dev/null 2>&1 || die "python3 not found: apt-get install python3 python3-venv"
    python3 -m venv "$dir" || die "python3 -m venv failed (apt-get install python3-venv)"
  fi
  if [[ -f "$marker" && "$(<"$marker")" == "$wanted" ]]; then
    return 0
  fi
  mkdir -p "$LOG_DIR"
  say "tf-check: installing $* into $(rel "$dir") (log: $(rel "$log"))"
  rm -f "$marker"
  if ! "$dir/bin/pip" install --disable-pip-version-check "$@" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "pip install into $(rel "$dir") failed; see $(rel "$log")"
  fi
  printf '%s\n' "$wanted" >"$marker"
}

check_fmt() {
  command -v terraform >/dev/null 2>&1 ||
    die "terraform not found; install Terraform 1.11+ (https://developer.hashicorp.com/terraform/install)"
  # No CLI configuration is needed to format; this also silences the warning about a missing one.
  if ! TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff "$TF_DIR"; then
    die "terraform fmt: the files above are not formatted; run: terraform fmt -recursive terraform"
  fi
  say "tf-check: terraform fmt: formatted"
}

check_schema() {
  [[ -f "$SCHEMA_CHECK" ]] ||
    die "tf-schema-check not found at $SCHEMA_CHECK (shared/ beside the repository); set PG2BQ_TF_SCHEMA_CHECK to its check.py"
  ensure_venv "$SCHEMA_VENV" "${SCHEMA_PACKAGES[@]}"
  "$SCHEMA_VENV/bin/python" "$SCHEMA_CHECK" "$TF_DIR" || die "tf-schema-check found the problems above"
}

# checkov over one target; $1: framework, the rest: its -d/-f arguments.
run_checkov() {
  local framework="$1" output status=0
  shift
  output="$(cd "$REPO_ROOT" && "$CHECKOV_VENV/bin/checkov" --config-file .checkov.yaml \
    --framework "$framework" "$@" 2>&1)" || status=$?
  # --quiet prints the failed checks and the summary line.
  printf '%s\n' "$output" | grep -v '^[[:space:]]*$' | sed 's/^/  /'
  ((status == 0)) ||
    die "checkov: failed checks (above); fix them, or skip one with #checkov:skip=CKV_...:reason next to it"
}

check_checkov() {
  ensure_venv "$CHECKOV_VENV" "${CHECKOV_PACKAGES[@]}"
  run_checkov terraform -d terraform
  run_checkov dockerfile -f infra/docker/Dockerfile
  say "tf-check: checkov: no failed check"
}

check_fmt
check_schema
check_checkov
say "tf-check: terraform validate skipped (it needs the provider plugins, which are not downloadable offline; tf-schema-check stands in)"
