"""Alerts end to end, black box: the local runner (`audit-local`) on the private stack that
`./infra/local/test` started (its DynamoDB Local stream drives the alerts handler, moto
stands in for SQS and SNS), a webhook receiver on loopback (`AUDIT_ALERT_EGRESS=local`
lets deliveries reach it over http), and a fresh tenant per test: the runner caches each
tenant's rules, and tests sharing one process must not see each other's rules."""
import json
import os
import pathlib
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import local_app  # noqa: E402
from receiver import Receiver  # noqa: E402

SUB = "alerts-test"
# How long the runner may serve a tenant's rules from its cache (the local stack's
# AUDIT_ALERT_RULES_TTL_SECONDS is 1 s): after a rule changes, events posted later than
# this see the change.
RULES_TTL = float(os.environ.get("AUDIT_ALERT_RULES_TTL_SECONDS", "1"))
# How long a delivery may take: a stream poll, the rule lookup, an attempt.
DELIVERY_TIMEOUT = 20.0


def token(tenant, scope):
    return local_app.token(tenant, scope, SUB)


class Response:
    def __init__(self, status, body):
        self.status, self.body = status, body

    def __repr__(self):
        return f"{self.status} {json.dumps(self.body)[:400]}"

    def fields(self):
        """The `field` of every detail of an error body."""
        return [d.get("field") for d in (self.body or {}).get("error", {}).get("details", [])]


def request(base, method, path, tok=None, body=None, params=None, raw=None):
    qs = "?" + urllib.parse.urlencode(params, doseq=True) if params else ""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"}
    if tok:
        headers["Authorization"] = f"Bearer {tok}"
    req = urllib.request.Request(base + path + qs, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    return Response(status, json.loads(text) if text else None)


class Tenant:
    """A tenant of its own, with a token for each scope the tests use."""

    def __init__(self, base, name=None):
        self.base = base
        self.name = name or f"al-{uuid.uuid4().hex[:16]}"
        self.admin = token(self.name, "audit:admin")
        self.writer = token(self.name, "audit:write")
        self.reader = token(self.name, "audit:read")

    def call(self, method, path, tok=None, **kw):
        return request(self.base, method, path, tok or self.admin, **kw)

    def create_rule(self, url, match=None, **settings):
        """POST /v1/alerts of a webhook rule; the created rule (with its `secret`)."""
        body = {"name": settings.pop("name", "test rule"), "match": match or {"action": "member.delete"},
                "destination": {"type": "webhook", "url": url}, **settings}
        r = self.call("POST", "/v1/alerts", body=body)
        assert r.status == 201, r
        return r.body

    def post(self, *events, expect="created"):
        """POST /v1/events, one request; the ids, each stored with status `expect`."""
        body = events[0] if len(events) == 1 else {"events": list(events)}
        r = self.call("POST", "/v1/events", self.writer, body=body)
        assert r.status == 202, r
        assert [x["status"] for x in r.body["results"]] == [expect] * len(events), r
        return [x["id"] for x in r.body["results"]]

    def event(self, event_id):
        r = self.call("GET", f"/v1/events/{urllib.parse.quote(event_id, safe='')}", self.reader)
        assert r.status == 200, r
        return r.body


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1_000_000:06d}Z"


def event(action="member.delete", **fields):
    """A valid event with an id and a time of its own (so that sending it again is a
    duplicate, not a conflict)."""
    return {"id": f"evt-{uuid.uuid4().hex[:12]}", "occurred_at": iso(time.time()), "action": action,
            "actor": {"type": "member", "id": "u-ada", "name": "Ada", "email": "ada@example.com"},
            "resource": {"type": "member", "id": "m-7", "name": "Grace"}, **fields}


def settle():
    """Waits out the runner's rules cache, so events posted next see the last rule change.

    A fixed wait, because nothing observable says the cache has expired: the product
    promises a change takes effect within the cache lifetime, no sooner."""
    time.sleep(RULES_TTL + 0.5)


def quiet(receiver, seconds=3.0):
    """Asserts that nothing more reaches `receiver` for `seconds`: how long a stream
    poll and an attempt take locally, several times over. (Absence cannot be polled
    for; tests first wait for a later delivery that must arrive, then call this.)"""
    before = len(receiver.received())
    time.sleep(seconds)
    after = receiver.received()
    assert len(after) == before, [(r.path, r.headers.get("webhook-id")) for r in after[before:]]


# How long a fresh runner's first delivery may take. It reads the table's stream from
# where the stream was at its start-up, as the deployed event source (StartingPosition
# LATEST) does, and takes that position before its API answers: earlier tests' events on
# the stream are not replayed, and the first event posted here is seen.
CATCH_UP_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def app():
    """The local runner, once its stream follower delivers: a first rule's first delivery
    has arrived."""
    with local_app.audit_local("alerts-test-app.log") as base:
        receiver = Receiver()
        try:
            first = Tenant(base)
            first.create_rule(receiver.url("/first"), quiet_minutes=0)
            settle()
            first.post(event())
            receiver.wait(1, "/first", timeout=CATCH_UP_TIMEOUT)
        finally:
            receiver.close()
        yield base


@pytest.fixture()
def tenant(app):
    return Tenant(app)


@pytest.fixture()
def other_tenant(app):
    return Tenant(app)


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()
