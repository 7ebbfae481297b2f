#!/usr/bin/env bash
# Benchmark: query latency per filter path beside raw DynamoDB Local queries, on a
# private local stack (release build). Arguments go to query_paths.py (--events N).
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
ensure_tools
cargo build --release --quiet -p audit-local
STATE=$(mktemp -d "$LOCAL/bench.XXXXXX")
trap 'stop_stack "$STATE"; rm -rf "$STATE"' EXIT
DYNAMODB_HEAP=${DYNAMODB_HEAP:-16g} AUDIT_PORT=$(free_port) start_stack "$STATE"
# shellcheck disable=SC1091
source "$STATE/env"
RUST_LOG=warn target/release/audit-local >"$STATE/app.log" 2>&1 &
echo $! >>"$STATE/pids"
wait_port "$AUDIT_PORT" "the API"
"$VENV/bin/python" tests/bench/query_paths.py "http://127.0.0.1:$AUDIT_PORT" "$@"
