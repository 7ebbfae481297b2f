#!/usr/bin/env bash
# Benchmark on the local stack: archive one tenant-day of N events (events/s and peak
# memory of `auditlog archive`), then export every row of that tenant across the archived
# day and N/4 online events, capped at EXPORT_MAX_ROWS (rows/s of the job, and peak memory
# of the process that ran the export worker).
# usage: tests/bench/archive_export.sh [N]   (default: 1000000)
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
ensure_tools
n=${1:-1000000}
cargo build --release --quiet -p audit-cli --bin auditlog
cargo build --release --quiet -p audit-tests --example bulk_load
start_app_stack
WORK="$STATE/work"; mkdir -p "$WORK"
BENCH="$ROOT/../shared/bench"
old_end=$(date -u -d "120 days ago" +%Y-%m-%dT00:00:00+00:00)
old_day=$(date -u -d "121 days ago" +%Y-%m-%d)

python3 "$BENCH/gen_events.py" "$n" --tenants 1 --days 1 --end "$old_end" >"$WORK/old.jsonl"
python3 "$BENCH/gen_events.py" "$((n / 4))" --tenants 1 --days 3 --seed 8 --end "$(date -u +%Y-%m-%dT%H:00:00+00:00)" >"$WORK/recent.jsonl"
log "loading $n events on $old_day"
target/release/examples/bulk_load "$WORK/old.jsonl"
log "archiving"
/usr/bin/time -f "%e %M" -o "$WORK/archive.time" target/release/auditlog archive --tenant tenant-0 >"$WORK/archive.json"
read -r secs kb <"$WORK/archive.time"
rows=$(python3 -c 'import json,sys; print(sum(d["rows"] for d in json.load(open(sys.argv[1]))["days"]))' "$WORK/archive.json")
echo "archive: $rows events of one day in $secs s ($(python3 -c "print(round($rows / $secs))") events/s), peak $((kb / 1024)) MiB"

log "loading $((n / 4)) online events"
target/release/examples/bulk_load "$WORK/recent.jsonl"
pid=$(sed -n 4p "$STATE/pids")
before=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
token=$(target/release/auditlog token --tenant tenant-0 --scope audit:export)
from="${old_day}T00:00:00Z"
start=$(date +%s.%N)
id=$(curl -fsS -X POST "http://127.0.0.1:$AUDIT_PORT/v1/exports" -H "authorization: Bearer $token" \
  -d "{\"from\": \"$from\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
while :; do
  job=$(curl -fsS "http://127.0.0.1:$AUDIT_PORT/v1/exports/$id" -H "authorization: Bearer $token")
  status=$(echo "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$status" = queued ] || [ "$status" = running ] || break
  sleep 0.5
done
end=$(date +%s.%N)
after=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "$job" | python3 -c 'import json,sys; j=json.load(sys.stdin); print("export job:", j["status"], j["rows"], "rows,", j["bytes"], "bytes, truncated", j["truncated"], j["error"] or "")'
rows=$(echo "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"])')
echo "export: $rows rows in $(python3 -c "print(round($end - $start, 1))") s ($(python3 -c "print(round($rows / ($end - $start)))") rows/s); runner peak memory $((before / 1024)) MiB before, $((after / 1024)) MiB after (API, consumers and export worker in one process)"
