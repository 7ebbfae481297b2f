#!/usr/bin/env bash
# Benchmark: `auditlog convert events.jsonl out.parquet` beside pyarrow and DuckDB on the
# same file, runs interleaved; prints median wall time, peak memory and file size of each.
# usage: tests/bench/convert.sh [N ...]   (default: 200000 1000000 events)
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
bench_profile
ensure_tools
cargo build --profile "$PROFILE" --quiet -p audit-cli --bin auditlog
BENCH=$(bench_inputs)
WORK=$(mktemp -d "$LOCAL/convert.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
RUNS=${RUNS:-3}

measure() { # label cmd... -> "label seconds maxrss_kb"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  echo "$label $(cat "$WORK/time")"
}

for n in "${@:-200000 1000000}"; do
  python3 "$BENCH/gen_events.py" "$n" >"$WORK/events.jsonl"
  : >"$WORK/results"
  for _ in $(seq "$RUNS"); do
    measure ours "$BIN/auditlog" convert "$WORK/events.jsonl" "$WORK/ours.parquet" >>"$WORK/results"
    measure pyarrow "$VENV/bin/python" "$BENCH/ref_parquet_pyarrow.py" "$WORK/events.jsonl" "$WORK/pyarrow.parquet" >>"$WORK/results"
    measure duckdb "$VENV/bin/python" "$BENCH/ref_parquet_duckdb.py" "$WORK/events.jsonl" "$WORK/duckdb.parquet" >>"$WORK/results"
  done
  "$VENV/bin/python" - "$WORK" "$n" <<'PY'
import os, statistics, sys
work, n = sys.argv[1], int(sys.argv[2])
rows = [l.split() for l in open(os.path.join(work, "results"))]
med = {k: (statistics.median(float(r[1]) for r in rows if r[0] == k), statistics.median(int(r[2]) for r in rows if r[0] == k)) for k in ("ours", "pyarrow", "duckdb")}
size = {k: os.path.getsize(os.path.join(work, f"{k}.parquet")) for k in med}
for k, (t, m) in med.items():
    print(f"convert {n} events: {k:8s} median {t:6.2f} s ({n / t:8.0f} events/s), peak {m / 1024:7.0f} MiB, file {size[k] / 1e6:6.1f} MB")
o, p, d = med["ours"], med["pyarrow"], med["duckdb"]
print(f"convert {n} events: throughput vs pyarrow {p[0] / o[0]:.2f}x, vs duckdb {d[0] / o[0]:.2f}x; "
      f"memory vs pyarrow {o[1] / p[1]:.2f}; file size vs duckdb {size['ours'] / size['duckdb']:.2f}")
PY
done
