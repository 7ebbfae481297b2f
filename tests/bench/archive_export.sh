#!/usr/bin/env bash
# Benchmark on the local stack: archive one tenant-day of N events (events/s and peak
# memory of `auditlog archive`), then export every row of that tenant across the archived
# day and N/4 online events as CSV and as Parquet (rows/s, parts and files of each job, and
# peak memory of the process that ran the export workers), and time the auditor's verifier
# (tools/verify) over the Parquet export as an auditor downloads it.
# usage: tests/bench/archive_export.sh [N] [RUN_FOR]   (defaults: 1000000, one unbounded run)
#   RUN_FOR (for example 60s) archives in runs of that deadline, as the scheduled Lambda
#   does, until a run reports nothing unfinished. PAD_KIB=60 makes every archived event
#   about 60 KiB (tests/bench/lib/exports.sh, pad_events).
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
bench_profile
ensure_tools
# shellcheck source=tests/bench/lib/exports.sh
source tests/bench/lib/exports.sh
n=${1:-1000000}
run_for=${2:-}
cargo build --profile "$PROFILE" --quiet -p audit-cli --bin auditlog
# The loader is a dev build (the tests' profile): it only sets the stage, and a release
# build of it alone would rebuild the SDK with the tests crate's features.
cargo build --quiet -p audit-tests --example bulk_load
start_app_stack "$PROFILE"
WORK="$STATE/work"; mkdir -p "$WORK"
BENCH=$(bench_inputs)
old_end=$(date -u -d "120 days ago" +%Y-%m-%dT00:00:00+00:00)
old_day=$(date -u -d "121 days ago" +%Y-%m-%d)

python3 "$BENCH/gen_events.py" "$n" --tenants 1 --days 1 --end "$old_end" >"$WORK/old.jsonl"
pad_events "$WORK/old.jsonl"
python3 "$BENCH/gen_events.py" "$((n / 4))" --tenants 1 --days 3 --seed 8 --end "$(date -u +%Y-%m-%dT%H:00:00+00:00)" >"$WORK/recent.jsonl"
log "loading $n events on $old_day"
target/debug/examples/bulk_load "$WORK/old.jsonl"
log "archiving in runs of ${run_for:-one unbounded run}"
runs=0 rows=0 peak=0 started=$(date +%s.%N)
while :; do
  runs=$((runs + 1))
  /usr/bin/time -f "%e %M" -o "$WORK/archive.time" "$BIN/auditlog" archive --tenant tenant-0 \
    ${run_for:+--for "$run_for"} >"$WORK/archive.json"
  read -r secs kb <"$WORK/archive.time"
  [ "$kb" -gt "$peak" ] && peak=$kb
  moved=$(python3 -c 'import json,sys; print(sum(c["rows"] for c in json.load(open(sys.argv[1]))["committed"]))' "$WORK/archive.json")
  unfinished=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["unfinished"])' "$WORK/archive.json")
  lag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lag_days"])' "$WORK/archive.json")
  rows=$((rows + moved))
  echo "  run $runs: $moved events in $secs s, unfinished $unfinished, lag $lag days"
  [ "$unfinished" = True ] || break
done
secs=$(python3 -c "print(round($(date +%s.%N) - $started, 1))")
echo "archive: $rows events of one day in $secs s over $runs run(s) ($(python3 -c "print(round($rows / $secs))") events/s), peak $((peak / 1024)) MiB"
[ "$rows" -eq "$n" ] || { echo "archive moved $rows of $n events" >&2; exit 1; }

log "loading $((n / 4)) online events"
target/debug/examples/bulk_load "$WORK/recent.jsonl"
pid=$(sed -n 4p "$STATE/pids")
before=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
token=$("$BIN/auditlog" token --tenant tenant-0 --scope audit:export)
from="${old_day}T00:00:00Z"

export_job csv
after=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "runner peak memory $((before / 1024)) MiB before, $((after / 1024)) MiB after the CSV export (API, consumers and export workers in one process)"
export_job parquet

verify_download parquet
