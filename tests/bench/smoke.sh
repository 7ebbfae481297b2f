#!/usr/bin/env bash
# Every benchmark of tests/bench run to its end at a tiny size, on dev builds, so each
# keeps working on today's design (./infra/local/test runs this; the figures are not
# checked: docs/benchmarks.md has the real runs). Each script starts its own stack. A
# benchmark added to tests/bench must be added here too, or this fails.
#
# usage: tests/bench/smoke.sh [NAME.sh ...]   (default: all of them)
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
# Dev builds (the suite has them already), small stacks, one round of everything; the two
# comparisons measure this tree against itself, so no second design is built.
export PROFILE=dev DYNAMODB_HEAP=1g RUNS=1 REFERENCE_BIN=$ROOT/target/debug/audit-local
export SINGLE=20 BATCHED=200 EVENTS=300 SAMPLES=2
declare -A ARGS=(
  [alert_cost.sh]="40"
  [alert_latency.sh]="10 --rate 50 --wait 30"
  [archive_export.sh]="1000"
  [cold_start.sh]="1"
  [convert.sh]="300"
  [convert_csv.sh]="300"
  [export_large.sh]="2000 2"
  [cost.sh]="HEAD"
  [ingest_e2e.sh]="--events 300 --runs 1"
  [neighbours.sh]="--seconds 4 --rules 3 --batches 1"
  [query_compare.sh]="HEAD"
  [query_paths.sh]="--events 300 --samples 2"
)
for script in tests/bench/*.sh; do
  name=$(basename "$script")
  [ "$name" = smoke.sh ] || [ -n "${ARGS[$name]+set}" ] || { echo "tests/bench/smoke.sh does not run $name: add it" >&2; exit 1; }
done
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${!ARGS[@]}")
mkdir -p "$ROOT/target/bench-smoke"
for name in $(printf '%s\n' "${names[@]}" | sort); do
  out=$ROOT/target/bench-smoke/${name%.sh}.log
  started=$SECONDS
  # shellcheck disable=SC2086 # the arguments are words
  if ! "tests/bench/$name" ${ARGS[$name]} >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    echo "bench smoke: $name failed (whole output: $out)" >&2
    exit 1
  fi
  log "bench smoke: $name ran to its end in $((SECONDS - started)) s"
done
