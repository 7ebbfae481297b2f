#!/usr/bin/env bash
# Benchmark (issue 20): a quiet tenant beside a hostile one on one private local stack
# (release build). The quiet tenant has one rule and sends one matching event a second,
# and asks for one export; the hostile tenant has 100 rules without a quiet period on its
# own action, pointed at a receiver that answers 500 after 2 s, sends ten batches of 500
# matching events, and asks for 50 exports of its whole range. Prints the quiet tenant's
# alert delay (p50, p99) and export wait, alone and then beside the hostile tenant, and the
# hostile tenant's outbound POSTs against the documented rates.
#
# usage: tests/bench/neighbours.sh [--seconds S] [--rules R] [--batches B] [--json OUT]
#   (defaults: 60 s per phase, 100 rules, 10 batches of 500)
#   PROFILE  the runner's build (release, the default; dev to skip a release build)
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
ensure_tools
# Deployed settings where they matter: the 10 s attempt timeout (the hostile receiver
# answers after 2 s) and the default retry schedule.
export AUDIT_ALERT_TIMEOUT_SECONDS=10 AUDIT_ALERT_RETRY_SCHEDULE=5s,5m,30m,2h,5h,10h,10h
start_app_stack "${PROFILE:-release}"
"$VENV/bin/python" tests/bench/neighbours.py "http://127.0.0.1:$AUDIT_PORT" "$@"
