#!/usr/bin/env bash
# `make chaos`: the full fault suite (tests/tests/chaos.rs) on the local stack. Its output is
# kept in target/chaos/, and the run ends with the suite's summary line
# (`chaos: seed=S faults=N changes=C rows=R missing=0 extra=0 different=0`) and its exit status.
set -uo pipefail
cd "$(dirname "$0")/../.."
mkdir -p target/chaos
log="target/chaos/chaos-$(date -u +%Y%m%dT%H%M%SZ).log"
PG2BQ_CHAOS_SECS="${PG2BQ_CHAOS_SECS:-180}" "${CARGO:-cargo}" test -p pg2bq-e2e --test chaos \
  -- --nocapture 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo "chaos: the whole output is in $log"
if ! grep -E '^chaos: seed=[0-9]+ faults=' "$log" | tail -1; then
  echo "chaos: the suite stopped before its summary line (see above)"
fi
exit "$status"
