#!/usr/bin/env bash
# `make tf-plan-check`: what can run offline beyond `make tf-check`.
#   1. terraform init -backend=false and terraform validate, against the providers of a local
#      plugin directory (PG2BQ_TF_PLUGIN_DIR, default .local/tf-plugins, laid out as
#      registry.terraform.io/hashicorp/<name>/<version>/<os_arch>/). The registry is not reached;
#      without google, random and time there, this step says so and is skipped (no provider
#      binary is committed).
#   2. tf_values.py: the values that the provider's own validation or the Google APIs would refuse
#      (enumerations, ranges, duration formats, Cloud SQL database flags), for literals and
#      variable defaults. It stands in for the value part of `terraform validate`.
set -euo pipefail

# shellcheck source=infra/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local/lib.sh"

TF_DIR="$REPO_ROOT/terraform"
PLUGIN_DIR="${PG2BQ_TF_PLUGIN_DIR:-$STATE_DIR/tf-plugins}"
VENV="$STATE_DIR/venv-tfschema"

have_provider() {
  compgen -G "$PLUGIN_DIR/registry.terraform.io/hashicorp/$1/*/*/terraform-provider-$1*" >/dev/null
}

validate() {
  command -v terraform >/dev/null 2>&1 ||
    die "terraform not found; install Terraform 1.11+ (https://developer.hashicorp.com/terraform/install)"
  local missing=()
  for p in google random time; do have_provider "$p" || missing+=("$p"); done
  if ((${#missing[@]})); then
    say "tf-plan-check: terraform validate skipped: no ${missing[*]} provider in $(rel "$PLUGIN_DIR") (the registry is not reachable here; see terraform/README.md, Checks)"
    return 0
  fi
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  cp -r "$TF_DIR/." "$work/"
  rm -rf "$work/.terraform" "$work/.terraform.lock.hcl"
  if ! (cd "$work" && TF_CLI_CONFIG_FILE=/dev/null terraform init -backend=false -input=false \
    -plugin-dir="$PLUGIN_DIR" >"$work/init.log" 2>&1); then
    cat "$work/init.log" >&2
    die "terraform init -backend=false failed (above)"
  fi
  (cd "$work" && TF_CLI_CONFIG_FILE=/dev/null terraform validate -no-color) ||
    die "terraform validate found the problems above"
  say "tf-plan-check: terraform validate: valid"
}

values() {
  [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import hcl2' 2>/dev/null ||
    die "python-hcl2 is not in $(rel "$VENV"): run make tf-check first (it installs it)"
  "$VENV/bin/python" "$REPO_ROOT/infra/checks/tf_values.py" "$TF_DIR" ||
    die "tf_values.py found values the provider or the APIs would refuse (above)"
}

validate
values
