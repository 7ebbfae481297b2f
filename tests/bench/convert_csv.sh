#!/usr/bin/env bash
# Benchmark: `auditlog convert day.parquet out.csv` beside DuckDB's
# `COPY (SELECT * ... ORDER BY occurred_at DESC) TO ... (FORMAT csv, HEADER)` on the same
# archive part, runs interleaved; prints median wall time and peak memory of each.
# usage: tests/bench/convert_csv.sh [N]   (default: 1000000 events)
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
bench_profile
ensure_tools
cargo build --profile "$PROFILE" --quiet -p audit-cli --bin auditlog
BENCH=$(bench_inputs)
WORK=$(mktemp -d "$LOCAL/convert-csv.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
RUNS=${RUNS:-3}
n=${1:-1000000}
COLS="id, strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS occurred_at, action, outcome, actor_type, actor_id, actor_name, actor_email, resource_type, resource_id, resource_name, workspace_id, workspace_name, source_ip, user_agent, request_id, description, changes, metadata"

measure() { # label cmd... -> "label seconds maxrss_kb"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  echo "$label $(cat "$WORK/time")"
}

python3 "$BENCH/gen_events.py" "$n" --tenants 1 --days 1 >"$WORK/events.jsonl"
"$BIN/auditlog" convert "$WORK/events.jsonl" "$WORK/day.parquet" 2>/dev/null
rm "$WORK/events.jsonl"
: >"$WORK/results"
for _ in $(seq "$RUNS"); do
  measure ours "$BIN/auditlog" convert "$WORK/day.parquet" "$WORK/ours.csv" >>"$WORK/results"
  measure duckdb "$VENV/bin/python" "$BENCH/ref_csv_duckdb.py" "$WORK/day.parquet" "$WORK/duckdb.csv" >>"$WORK/results"
  # The reference writes all 27 columns; this one writes the export's 19, in its order.
  measure duckdb19 "$VENV/bin/python" -c "import sys, duckdb; duckdb.sql(f\"COPY (SELECT $COLS FROM read_parquet('{sys.argv[1]}') ORDER BY occurred_at DESC, id DESC) TO '{sys.argv[2]}' (FORMAT csv, HEADER)\")" "$WORK/day.parquet" "$WORK/duckdb19.csv" >>"$WORK/results"
done
"$VENV/bin/python" - "$WORK" "$n" <<'PY'
import os, statistics, sys
work, n = sys.argv[1], int(sys.argv[2])
rows = [l.split() for l in open(os.path.join(work, "results"))]
med = {k: (statistics.median(float(r[1]) for r in rows if r[0] == k), statistics.median(int(r[2]) for r in rows if r[0] == k)) for k in ("ours", "duckdb", "duckdb19")}
for k, (t, m) in med.items():
    size = os.path.getsize(os.path.join(work, f"{k}.csv"))
    print(f"parquet->csv {n} rows: {k:6s} median {t:6.2f} s ({n / t:8.0f} rows/s), peak {m / 1024:7.0f} MiB, file {size / 1e6:6.1f} MB")
o, d, d19 = med["ours"], med["duckdb"], med["duckdb19"]
print(f"parquet->csv {n} rows: throughput vs duckdb {d[0] / o[0]:.2f}x (vs its 19 columns {d19[0] / o[0]:.2f}x); "
      f"memory vs duckdb {o[1] / d[1]:.2f} (vs its 19 columns {o[1] / d19[1]:.2f})")
PY
