#!/usr/bin/env bash
# Benchmark: query latency per filter path beside raw DynamoDB Local queries, on a
# private local stack (release build). Arguments go to query_paths.py (--events N).
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
bench_profile
ensure_tools
DYNAMODB_HEAP=${DYNAMODB_HEAP:-16g} start_app_stack "$PROFILE"
"$VENV/bin/python" tests/bench/query_paths.py "http://127.0.0.1:$AUDIT_PORT" "$@"
