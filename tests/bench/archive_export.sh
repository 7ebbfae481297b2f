#!/usr/bin/env bash
# Benchmark on the local stack: archive one tenant-day of N events (events/s and peak
# memory of `auditlog archive`), then export every row of that tenant across the archived
# day and N/4 online events as CSV and as Parquet (rows/s, parts and files of each job, and
# peak memory of the process that ran the export workers), and time the auditor's verifier
# (tools/verify) over the Parquet export as an auditor downloads it.
# usage: tests/bench/archive_export.sh [N] [RUN_FOR]   (defaults: 1000000, one unbounded run)
#   RUN_FOR (for example 60s) archives in runs of that deadline, as the scheduled Lambda
#   does, until a run reports nothing unfinished.
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
bench_profile
ensure_tools
n=${1:-1000000}
run_for=${2:-}
cargo build --profile "$PROFILE" --quiet -p audit-cli --bin auditlog
# The loader is a dev build (the tests' profile): it only sets the stage, and a release
# build of it alone would rebuild the SDK with the tests crate's features.
cargo build --quiet -p audit-tests --example bulk_load
start_app_stack "$PROFILE"
WORK="$STATE/work"; mkdir -p "$WORK"
BENCH="$ROOT/../shared/bench"
# In a git worktree, `shared` sits beside the main checkout (as tests/python/conftest.py finds it).
[ -d "$BENCH" ] || BENCH="$(cd "$(git rev-parse --path-format=absolute --git-common-dir)/../.." && pwd)/shared/bench"
old_end=$(date -u -d "120 days ago" +%Y-%m-%dT00:00:00+00:00)
old_day=$(date -u -d "121 days ago" +%Y-%m-%d)

python3 "$BENCH/gen_events.py" "$n" --tenants 1 --days 1 --end "$old_end" >"$WORK/old.jsonl"
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

# export FORMAT: asks for an export of every row since the archived day, waits for it, and
# prints its rows, parts, files, time and rows/s; leaves the job in $WORK/FORMAT.job.json.
export_job() {
  local format=$1 start end id job status rows
  start=$(date +%s.%N)
  id=$(curl -fsS -X POST "http://127.0.0.1:$AUDIT_PORT/v1/exports" -H "authorization: Bearer $token" \
    -d "{\"from\": \"$from\", \"format\": \"$format\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  while :; do
    job=$(curl -fsS "http://127.0.0.1:$AUDIT_PORT/v1/exports/$id" -H "authorization: Bearer $token")
    status=$(echo "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [ "$status" = queued ] || [ "$status" = running ] || break
    sleep 0.5
  done
  end=$(date +%s.%N)
  echo "$job" >"$WORK/$format.job.json"
  echo "$job" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(f"export job ({sys.argv[1]}):", j["status"], j["rows"], "rows,", j["bytes"], "bytes,", (j["progress"] or {}).get("parts"), "parts,", len(j["files"] or []), "files, truncated", j["truncated"], j["error"] or "")' "$format"
  rows=$(echo "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"])')
  echo "export ($format): $rows rows in $(python3 -c "print(round($end - $start, 1))") s ($(python3 -c "print(round($rows / ($end - $start)))") rows/s)"
}

export_job csv
after=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "runner peak memory $((before / 1024)) MiB before, $((after / 1024)) MiB after the CSV export (API, consumers and export workers in one process)"
export_job parquet

log "the auditor's verifier (tools/verify) over the Parquet export, as downloaded"
python3 - "$WORK/parquet.job.json" "$WORK/download" "http://127.0.0.1:$AUDIT_PORT/v1/keys" <<'PY'
import json, os, sys, urllib.request
job, folder, keys = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
os.makedirs(folder, exist_ok=True)
for f in job["files"]:
    urllib.request.urlretrieve(f["download_url"], os.path.join(folder, f["name"]))
urllib.request.urlretrieve(job["manifest_url"], os.path.join(folder, "manifest.json"))
urllib.request.urlretrieve(keys, os.path.join(folder, "..", "keys.json"))
PY
vstart=$(date +%s.%N)
"$VENV/bin/python" tools/verify/auditlog_verify.py export "$WORK/download" --keys "$WORK/keys.json"
echo "verifier: $(python3 -c "print(round($(date +%s.%N) - $vstart, 1))") s over the Parquet export"
