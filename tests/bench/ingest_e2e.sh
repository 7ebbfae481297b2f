#!/usr/bin/env bash
# Benchmark: end-to-end HTTP ingest against a plain boto3 batch_writer on a private local
# stack (release build). Arguments go to ingest_e2e.py (--events, --concurrency, --runs).
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
bench_profile
ensure_tools
start_app_stack "$PROFILE"
"$VENV/bin/python" tests/bench/ingest_e2e.py "http://127.0.0.1:$AUDIT_PORT" "$@"
