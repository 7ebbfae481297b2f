#!/usr/bin/env bash
# Benchmark (issue 14): the console's pages (first page and page 50 of 10 rows, per filter
# path) on this tree beside a reference design, each a release build on its own private
# stack made from its own template.yaml, loaded with the same generated events through its
# own API; prints each side's median and p99 and the ratio of the medians.
#
# usage: tests/bench/query_compare.sh [REF]
#   REF            git revision of the reference design (default: the merge base with main)
#   REFERENCE_BIN  an audit-local release binary already built from REF (else it is built)
#   EVENTS, SAMPLES  events loaded (default 1,000,000) and samples per page (30)
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
bench_profile
ensure_tools
REF=${1:-$(git merge-base HEAD main)}
cargo build --profile "$PROFILE" --quiet -p audit-local
reference_design "$PROFILE" "$REF"

# measure LABEL BINARY TEMPLATE OUT
measure() {
  local state=$WORK/stack-$1
  mkdir -p "$state"
  STATES+=("$state")
  (
    DYNAMODB_HEAP=${DYNAMODB_HEAP:-8g} AUDIT_TEMPLATE=$3 AUDIT_PORT=$(free_port) start_stack "$state"
    # shellcheck disable=SC1091
    source "$state/env"
    RUST_LOG=warn "$2" >"$state/app.log" 2>&1 &
    echo $! >>"$state/pids"
    wait_port "$AUDIT_PORT" "the API"
    echo "== $1" >&2
    "$VENV/bin/python" tests/bench/query_paths.py "http://127.0.0.1:$AUDIT_PORT" --no-raw \
      --events "${EVENTS:-1000000}" --samples "${SAMPLES:-30}" --json "$4"
  )
  stop_stack "$state"
}

measure reference "$REFERENCE_BIN" "$WORK/ref/template.yaml" "$WORK/reference.json"
measure current "$BIN/audit-local" "$ROOT/template.yaml" "$WORK/current.json"
"$VENV/bin/python" - "$WORK/reference.json" "$WORK/current.json" "${REF:0:10}" <<'PY'
import json, sys
ref = {(f["path"], f["page"]): f for f in json.load(open(sys.argv[1]))}
cur = {(f["path"], f["page"]): f for f in json.load(open(sys.argv[2]))}
print(f"{'path':12} {'page':>4} | {sys.argv[3] + ' median/p99 ms, requests':>36} | {'this tree':>30} | ratio of medians")
for key, c in cur.items():
    r = ref.get(key)
    if r is None:
        continue
    print(f"{key[0]:12} {key[1]:4d} | {r['median_ms']:9.1f} {r['p99_ms']:9.1f} {r['requests']:8.0f}         | "
          f"{c['median_ms']:9.1f} {c['p99_ms']:9.1f} {c['requests']:8.0f}  | {c['median_ms'] / r['median_ms']:.2f}x")
PY
