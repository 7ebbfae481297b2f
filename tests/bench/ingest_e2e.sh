#!/usr/bin/env bash
# Benchmark: end-to-end HTTP ingest against a plain boto3 batch_writer on a private local
# stack (release build). Arguments go to ingest_e2e.py (--events, --concurrency, --runs).
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
ensure_tools
cargo build --release --quiet -p audit-local
STATE=$(mktemp -d "$LOCAL/bench.XXXXXX")
trap 'stop_stack "$STATE"; rm -rf "$STATE"' EXIT
AUDIT_PORT=$(free_port) start_stack "$STATE"
# shellcheck disable=SC1091
source "$STATE/env"
RUST_LOG=warn target/release/audit-local >"$STATE/app.log" 2>&1 &
echo $! >>"$STATE/pids"
wait_port "$AUDIT_PORT" "the API"
"$VENV/bin/python" tests/bench/ingest_e2e.py "http://127.0.0.1:$AUDIT_PORT" "$@"
