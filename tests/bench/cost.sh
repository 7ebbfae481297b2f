#!/usr/bin/env bash
# Benchmark (issue 14): what an event and a console page cost in DynamoDB, for this tree
# beside a reference design, each on its own private local stack made from its own
# template.yaml, measured the same way by cost.py through capacity_proxy.py: write units
# per event (one per request, and batches of 100) from DynamoDB Local's ConsumedCapacity,
# bytes stored per event across table and indexes, read units and requests per page.
# The figures are counts, not times, so the dev build serves (no release build).
#
# usage: tests/bench/cost.sh [REF]
#   REF            git revision of the reference design (default: the merge base with main)
#   REFERENCE_BIN  an audit-local binary already built from REF (else it is built)
#   SINGLE, BATCHED  events sent one per request and in batches of 100 (500, 5000)
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
ensure_tools
REF=${1:-$(git merge-base HEAD main)}
cargo build --quiet -p audit-local
reference_design dev "$REF"

# measure LABEL BINARY TEMPLATE OUT
measure() {
  local state proxy
  state=$WORK/stack-$1
  mkdir -p "$state"
  STATES+=("$state")
  (
    AUDIT_TEMPLATE=$3 AUDIT_PORT=$(free_port) start_stack "$state"
    # shellcheck disable=SC1091
    source "$state/env"
    proxy=$(free_port)
    "$VENV/bin/python" tests/bench/capacity_proxy.py "$proxy" "$AWS_ENDPOINT_URL_DYNAMODB" >"$state/proxy.log" 2>&1 &
    echo $! >>"$state/pids"
    wait_port "$proxy" "the capacity proxy"
    AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$proxy RUST_LOG=warn "$2" >"$state/app.log" 2>&1 &
    echo $! >>"$state/pids"
    wait_port "$AUDIT_PORT" "the API"
    "$VENV/bin/python" tests/bench/cost.py measure "http://127.0.0.1:$AUDIT_PORT" "http://127.0.0.1:$proxy" \
      "$AWS_ENDPOINT_URL_DYNAMODB" --label "$1" --out "$4" --single "${SINGLE:-500}" --batched "${BATCHED:-5000}"
  )
  stop_stack "$state"
}

measure "${REF:0:10}" "$REFERENCE_BIN" "$WORK/ref/template.yaml" "$WORK/reference.json"
measure "this tree" "target/debug/audit-local" "$ROOT/template.yaml" "$WORK/current.json"
"$VENV/bin/python" tests/bench/cost.py report "$WORK/reference.json" "$WORK/current.json"
