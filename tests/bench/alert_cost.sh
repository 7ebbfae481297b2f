#!/usr/bin/env bash
# Benchmark (issue 13): what alerting costs per event in DynamoDB with 100 rules on the
# tenant, beside what storing the event costs, both measured by capacity_proxy.py from
# DynamoDB Local's ConsumedCapacity on one private stack: the stream consumer's requests
# and units on the alerts' items (rules AL, markers AM, deliveries AD) per event, split
# into events that matched no rule and those that did. Counts, not times: the dev build.
#
# usage: tests/bench/alert_cost.sh [EVENTS]   (default 2000, generated, batches of 100)
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
ensure_tools
events=${1:-2000}
cargo build --quiet -p audit-local
STATE=$(mktemp -d "$LOCAL/bench.XXXXXX")
trap 'stop_stack "$STATE"; rm -rf "$STATE"' EXIT
AUDIT_PORT=$(free_port) start_stack "$STATE"
# shellcheck disable=SC1091
source "$STATE/env"
proxy=$(free_port)
"$VENV/bin/python" tests/bench/capacity_proxy.py "$proxy" "$AWS_ENDPOINT_URL_DYNAMODB" >"$STATE/proxy.log" 2>&1 &
echo $! >>"$STATE/pids"
wait_port "$proxy" "the capacity proxy"
# The stream is read from DynamoDB Local itself (AWS_ENDPOINT_URL_DYNAMODB_STREAMS): only
# table requests go through the proxy, as only they are billed in capacity units.
AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$proxy RUST_LOG=warn target/debug/audit-local >"$STATE/app.log" 2>&1 &
echo $! >>"$STATE/pids"
wait_port "$AUDIT_PORT" "the API"
"$VENV/bin/python" tests/bench/alert_cost.py "http://127.0.0.1:$AUDIT_PORT" "http://127.0.0.1:$proxy" --events "$events"
