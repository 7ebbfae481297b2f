#!/usr/bin/env bash
# Benchmark on the local stack: exports of a range of N archived events of one tenant
# (DAYS days, put into the archive directly as parts by tests/examples/seed_archive.rs:
# the archive's own code writes them, reading from memory instead of the table). Each
# export runs in a freshly started runner, so its peak memory is that export's alone:
#   1. CSV and 2. Parquet as deployed (parts fanned out, two of the tenant's at a time),
#      with the auditor's verifier (tools/verify) timed over the Parquet download;
#   3. CSV with one part of the tenant running at a time: one worker's rows/s and memory;
#   4. today's export of the same request beside them: REFERENCE_BIN (an audit-local of
#      the design before parts) if set, else this build as one part with the
#      1,000,000-row guard.
# usage: tests/bench/export_large.sh [N] [DAYS]   (defaults: 10000000, 20)
#   PAD_KIB=60 makes every event about 60 KiB (tests/bench/lib/exports.sh, pad_events).
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
bench_profile
ensure_tools
# shellcheck source=tests/bench/lib/exports.sh
source tests/bench/lib/exports.sh
n=${1:-10000000}
days=${2:-20}
per=$((n / days))
cargo build --profile "$PROFILE" --quiet -p audit-cli --bin auditlog
cargo build --profile "$PROFILE" --quiet -p audit-tests --example seed_archive
start_app_stack "$PROFILE"
WORK="$STATE/work"; mkdir -p "$WORK"
BENCH=$(bench_inputs)

# Day i of DAYS (1 the oldest) ends 100 + DAYS - i days ago: all past the 90-day window.
gen_day() {
  python3 "$BENCH/gen_events.py" "$per" --tenants 1 --days 1 --seed "$((100 + $1))" \
    --end "$(date -u -d "$((100 + days - $1)) days ago" +%Y-%m-%dT00:00:00+00:00)" >"$WORK/day$1.jsonl"
  pad_events "$WORK/day$1.jsonl"
}
log "putting $((per * days)) events of $days days into the archive"
started=$SECONDS
gen_day 1
for i in $(seq 1 "$days"); do
  next=
  if [ "$i" -lt "$days" ]; then gen_day "$((i + 1))" & next=$!; fi
  "$BIN/examples/seed_archive" tenant-0 "$WORK/day$i.jsonl"
  [ -z "$next" ] || wait "$next"
  rm -f "$WORK/day$i.jsonl"
done
echo "archive set up: $((per * days)) events in $((SECONDS - started)) s"

token=$("$BIN/auditlog" token --tenant tenant-0 --scope audit:export)
from="$(date -u -d "$((100 + days)) days ago" +%Y-%m-%d)T00:00:00Z"
export token from

# run_app BINARY [VAR=value ...]: restarts the runner (the stack's last process) as BINARY
# with these settings on top of the stack's, so its peak memory starts afresh.
run_app() {
  local bin=$1 pid
  shift
  pid=$(tail -n 1 "$STATE/pids")
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  # moto finishes a killed runner's long polls of the queues (2 s) as if someone still
  # waited, and a message arriving meanwhile would be hidden for the visibility timeout.
  sleep 3
  env "$@" RUST_LOG=warn "$bin" >>"$STATE/app.log" 2>&1 &
  echo $! >>"$STATE/pids"
  wait_port "$AUDIT_PORT" "the API"
}
# peak LABEL: the runner's peak memory so far, and the exported files are removed (the
# next run does not need them, the disk might).
peak() {
  echo "$1: runner peak memory $(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$(tail -n 1 "$STATE/pids")/status") MiB (API, consumers and export workers in one process; idle $idle MiB)"
  rm -rf "$STATE/s3/$AUDIT_EXPORT_BUCKET/exports"
}

run_app "$BIN/audit-local"
idle=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$(tail -n 1 "$STATE/pids")/status")
export_job csv
peak "CSV"
run_app "$BIN/audit-local"
export_job parquet
verify_download parquet
peak "Parquet"
run_app "$BIN/audit-local" AUDIT_EXPORT_RUNNING_PER_TENANT=1
export_job csv "CSV, one part at a time"
peak "CSV, one part at a time"
run_app "${REFERENCE_BIN:-$BIN/audit-local}" AUDIT_EXPORT_MAX_ROWS=1000000 AUDIT_EXPORT_PART_ROWS=1000000000 \
  AUDIT_EXPORT_FILE_ROWS=1000000000
export_job csv "today's export${REFERENCE_BIN:+ ($REFERENCE_BIN)}"
peak "today's export"
