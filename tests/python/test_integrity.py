"""An event altered in DynamoDB is never served, through every read, and says so: the local
runner (`audit-local`) on the private stack, the item changed with boto3 behind its back,
and the runner's own output read for the log line and the metric (CloudWatch's Embedded
Metric Format, as Lambda would ship it)."""
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import local_app  # noqa: E402

LOG = "integrity-audit-local.log"


def call(base, method, path, tok, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, method=method, data=data,
                                 headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def emitted(predicate, timeout=30.0):
    """The runner's output lines `predicate` keeps, once there is one (a generous bound)."""
    path = os.path.join(ROOT, "target", LOG)
    give_up = time.monotonic() + timeout
    while True:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line for line in f if predicate(line)]
        if lines or time.monotonic() > give_up:
            return lines
        time.sleep(0.2)


def metric(line, name):
    """The EMF datapoint of `name` in `line`, if it is one."""
    try:
        point = json.loads(line)
    except ValueError:
        return None
    names = [m["Name"] for d in point.get("_aws", {}).get("CloudWatchMetrics", []) for m in d["Metrics"]]
    return point if name in names else None


def test_an_altered_event_is_never_served_and_the_operators_hear_of_it(monkeypatch):
    monkeypatch.setenv("AUDIT_METRICS_NAMESPACE", "AuditLog")
    monkeypatch.setenv("AUDIT_METRICS_STACK", "integrity-test")
    tenant = f"integ-{uuid.uuid4().hex[:12]}"
    write, read, export = (local_app.token(tenant, s, "integrity") for s in ("audit:write", "audit:read", "audit:export"))
    now = datetime.now(timezone.utc)
    events = [{"id": f"e{i}", "occurred_at": (now - timedelta(hours=i + 1)).isoformat().replace("+00:00", "Z"),
               "action": "channel.create", "actor": {"type": "member", "id": f"u-{i}"},
               "resource": {"type": "channel", "id": f"c-{i}"}, "description": f"event {i}"} for i in range(5)]
    with local_app.audit_local(LOG) as base:
        status, body = call(base, "POST", "/v1/events", write, {"events": events})
        assert status == 202, body
        assert call(base, "GET", "/v1/events/e2", read)[0] == 200

        # Given: e2's stored text swapped for e3's (each still a valid event, hashing to
        # the other's hash), behind the service's back
        ddb = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
        table = os.environ["AUDIT_TABLE"]
        key = lambda i: {"pk": {"S": f"EV#{tenant}#{i}"}, "sk": {"S": "EV"}}  # noqa: E731
        other = ddb.get_item(TableName=table, Key=key("e3"), ConsistentRead=True)["Item"]["d"]
        ddb.update_item(TableName=table, Key=key("e2"), UpdateExpression="SET d = :d",
                        ExpressionAttributeValues={":d": other})

        # Then: no read serves it; each answers 500 data_integrity naming it
        for path in ["/v1/events/e2", "/v1/events", "/v1/events?order=asc&limit=100", "/v1/events/count?q=event"]:
            status, body = call(base, "GET", path, read)
            assert status == 500, (path, body)
            assert body["error"]["code"] == "data_integrity", (path, body)
            assert "e2" in body["error"]["message"], (path, body)
        # The others still are, and a count of index keys alone reads no event's text.
        status, body = call(base, "GET", "/v1/events/e1", read)
        assert (status, body["description"]) == (200, "event 1")
        status, body = call(base, "GET", "/v1/events?resource_id=c-1", read)
        assert (status, [e["id"] for e in body["items"]]) == (200, ["e1"])
        assert call(base, "GET", "/v1/events/count", read)[1]["count"] == 5
        # An export that reaches it fails with the same code.
        status, job = call(base, "POST", "/v1/exports", export, {})
        assert status == 202, job
        give_up = time.monotonic() + 60
        while job["status"] in ("queued", "running") and time.monotonic() < give_up:
            time.sleep(0.3)
            job = call(base, "GET", f"/v1/exports/{job['id']}", export)[1]
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "data_integrity" and "e2" in job["error"]["message"], job

        # And the log line and the metric name the tenant and the event.
        logged = emitted(lambda l: "stored event failed its integrity check" in l and tenant in l)
        assert logged and all("e2" in line for line in logged), logged
        points = [p for p in map(lambda l: metric(l, "DataIntegrityErrors"), emitted(lambda l: tenant in l)) if p]
        reads = [p for p in points if p.get("event") == "e2"]
        assert len(reads) == 4 and all(p["tenant"] == tenant and p["DataIntegrityErrors"] == 1 for p in reads), points
        exports = emitted(lambda l: (metric(l, "DataIntegrityErrors") or {}).get("export") == job["id"])
        assert exports and "e2" in json.loads(exports[0])["error"], exports
