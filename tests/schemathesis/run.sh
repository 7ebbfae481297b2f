#!/usr/bin/env bash
# Schemathesis (an API checker no one here wrote) against the local stack, driven by
# openapi.yaml: every operation, a bounded number of generated requests each, checking
# that the server never answers 5xx for them, and that every answer's status code, content
# type, headers and body are the ones the document gives.
#
# usage: tests/schemathesis/run.sh [--max-examples N] [other schemathesis run options]
#   Default 25 examples per operation, one seed, one worker: about a minute, run by
#   ./infra/local/test. What it found and how each was fixed: tests/schemathesis/FINDINGS.md.
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"

ensure_tools
start_app_stack dev
cargo build --quiet -p audit-cli --bin auditlog
API="http://127.0.0.1:$AUDIT_PORT"

# A tenant of its own with something to read: events of the last minutes (so the default
# 7-day window holds them) and one export.
TOKEN=$(target/debug/auditlog token --tenant schemathesis --sub schemathesis --scope "audit:admin" --ttl 2h)
"$VENV/bin/python" - "$API" "$TOKEN" <<'PY'
import json, sys, urllib.request
api, token = sys.argv[1], sys.argv[2]
def post(path, body):
    req = urllib.request.Request(api + path, json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)
events = []
with open("events/sample-events.jsonl", encoding="utf-8") as f:
    for line in list(f)[:50]:
        e = json.loads(line)
        e.pop("tenant_id"); e.pop("occurred_at")
        events.append(e)
results = post("/v1/events", {"events": events})["results"]
assert all(r["status"] == "created" for r in results), results
post("/v1/exports", {"format": "jsonl"})
PY

REPORT="$ROOT/target/schemathesis"
mkdir -p "$REPORT"
set +e
"$VENV/bin/schemathesis" run openapi.yaml \
  --url "$API" \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples 25 \
  --seed 11 \
  --workers 1 \
  --request-timeout 30 \
  --report junit,ndjson --report-dir "$REPORT" \
  "$@"
status=$?
set -e
echo "report: $REPORT (app log kept in $REPORT/app.log)" >&2
cp "$STATE/app.log" "$REPORT/app.log"
exit $status
