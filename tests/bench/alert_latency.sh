#!/usr/bin/env bash
# Benchmark (issue 13): the delay from POST /v1/events to the alert's webhook delivery on
# a private local stack (release build): one rule, one receiver on loopback, EVENTS events
# sent one per request at a steady pace; prints the delay's median, p90, p99 and max, and
# the POST round trip beside it. The alerts path is the local one: DynamoDB Local's stream
# polled by the runner, so its poll interval is part of the figure.
#
# usage: tests/bench/alert_latency.sh [EVENTS] [--rate R] [--json OUT]   (default 1000, 20/s)
#   PROFILE  the runner's build (release, the default; dev to skip a release build)
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
bench_profile
ensure_tools
events=1000
if [ $# -gt 0 ] && [[ $1 != -* ]]; then events=$1; shift; fi
start_app_stack "$PROFILE"
"$VENV/bin/python" tests/bench/alert_latency.py "http://127.0.0.1:$AUDIT_PORT" --events "$events" "$@"
