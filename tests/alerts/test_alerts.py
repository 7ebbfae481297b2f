"""Alerts (issue 13) over HTTP only: rules through /v1/alerts, events through /v1/events,
deliveries as a receiver on loopback gets them, verified by the `standardwebhooks`
package (the specification's own Python library, not ours), SNS through moto."""
import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta

import boto3
import pytest
from standardwebhooks import webhooks
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import local_app
from conftest import DELIVERY_TIMEOUT, SUB, event, iso, quiet, request, settle, token

USER_AGENT = "audit-log-alerts"
# moto's account, as the local stack's AUDIT_ALERT_TOPIC_PREFIX names it.
TOPIC_PREFIX = os.environ.get("AUDIT_ALERT_TOPIC_PREFIX", "arn:aws:sns:us-east-1:123456789012:audit-alerts-")


def public(rule):
    """A rule as the API shows it anywhere but its creation: no secret, no delivery summary."""
    return {k: v for k, v in rule.items() if k not in ("secret", "delivery")}


def shown(rule):
    """A rule as a notification's body shows it: public, and without its destination."""
    return {k: v for k, v in public(rule).items() if k != "destination"}


def verified(secret, delivery):
    """The payload, once the library accepts the delivery."""
    return Webhook(secret).verify(delivery.body, delivery.headers)


def rejected(secret, body, headers):
    with pytest.raises(WebhookVerificationError) as e:
        Webhook(secret).verify(body, headers)
    return str(e.value)


def summary(tenant, rule_id, until=lambda d: True, timeout=DELIVERY_TIMEOUT):
    """`delivery` of GET /v1/alerts/{id}, polled until `until(delivery)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        r = tenant.call("GET", f"/v1/alerts/{rule_id}")
        assert r.status == 200, r
        if until(r.body["delivery"]) or time.monotonic() > deadline:
            return r.body["delivery"]
        time.sleep(0.2)


def test_each_matching_event_is_delivered_once_signed_with_the_rule_and_the_event(tenant, receiver, monkeypatch):
    rule = tenant.create_rule(receiver.url("/hook"), match={"action": "member.delete"}, quiet_minutes=0)
    secret = rule["secret"]
    assert secret.startswith("whsec_")
    stored = tenant.call("GET", f"/v1/alerts/{rule['id']}")
    assert stored.status == 200 and "secret" not in stored.body, stored
    assert public(stored.body) == public(rule)
    settle()

    original = event()
    [first] = tenant.post(original)
    tenant.post(event("member.invite"), event("member.create"))
    [second] = tenant.post(event())
    got = receiver.wait(2, "/hook")

    by_event = {}
    for d in got:
        assert d.method == "POST"
        assert d.headers["content-type"].startswith("application/json")
        assert d.headers["user-agent"] == USER_AGENT
        assert secret.encode() not in d.body and b"whsec_" not in d.body
        payload = verified(secret, d)
        assert payload["type"] == "audit_log.alert"
        data = payload["data"]
        assert data["rule"] == shown(rule)
        assert b"/hook" not in d.body, "the body never carries the destination"
        assert data["count"] == 1 and len(data["events"]) == 1 and data["folded"] == 0
        ev = data["events"][0]
        assert data["event_ids"] == [ev["id"]]
        assert ev == tenant.event(ev["id"]), "the event as GET /v1/events/{id} returns it"
        assert payload["timestamp"] == ev["received_at"]
        by_event[ev["id"]] = d
    assert sorted(by_event) == sorted([first, second]), "the non-matching events sent nothing"
    assert by_event[first].headers["webhook-id"] != by_event[second].headers["webhook-id"]

    # Tampering and replays, as the receiver's library judges them.
    d = by_event[first]
    altered = d.body.replace(first.encode(), second.encode())
    assert altered != d.body
    rejected(secret, altered, d.headers)
    rejected(secret, d.body + b" ", d.headers)
    rejected("whsec_" + base64.b64encode(os.urandom(32)).decode(), d.body, d.headers)
    stale = {**d.headers, "webhook-timestamp": str(int(d.headers["webhook-timestamp"]) - 600)}
    assert "too old" in rejected(secret, d.body, stale)

    class TenMinutesLater(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(minutes=10)

    monkeypatch.setattr(webhooks, "datetime", TenMinutesLater)
    assert "too old" in rejected(secret, d.body, d.headers), "the same delivery replayed later"
    monkeypatch.undo()

    # A duplicate at ingest stores nothing, so it alerts nothing; the next match still does.
    tenant.post(original, expect="duplicate")
    [third] = tenant.post(event())
    receiver.wait(3, "/hook")
    quiet(receiver)
    ids = [verified(secret, d)["data"]["events"][0]["id"] for d in receiver.received("/hook")]
    assert sorted(ids) == sorted([first, second, third]), ids


def test_a_threshold_rule_fires_once_for_a_burst(tenant, receiver):
    rule = tenant.create_rule(receiver.url("/burst"), match={"action": "auth.login", "outcome": "failure"},
                              threshold={"count": 5, "window_minutes": 5})
    assert rule["quiet_minutes"] == 5 and rule["threshold"] == {"count": 5, "window_minutes": 5}
    settle()
    burst = []
    for i in range(12):
        burst += tenant.post(event("auth.login", outcome="failure"))
        if i % 3 == 0:
            tenant.post(event("auth.login"))  # a success: not counted
    [d] = receiver.wait(1, "/burst")
    quiet(receiver)
    assert len(receiver.received("/burst")) == 1
    data = verified(rule["secret"], d)["data"]
    assert data["count"] == 5
    [ev] = data["events"]
    assert ev["id"] in burst[4:], "set off by the event that reached the count"
    assert ev["outcome"] == "failure"


def dead_lettered(tenant, receiver, path, status=500, headers=None):
    """A rule whose receiver answers `status` to everything, one matching event, and what
    came of it once the delivery is dead: (rule, event id, attempts received, summary)."""
    receiver.answer(path, status=status, headers=headers)
    rule = tenant.create_rule(receiver.url(path), quiet_minutes=0)
    settle()
    [eid] = tenant.post(event())
    receiver.wait(3, path)
    delivery = summary(tenant, rule["id"], lambda d: d["dead_letters"] >= 1)
    quiet(receiver)
    return rule, eid, receiver.received(path), delivery


def arrivals(got):
    return [(round(d.at - got[0].at, 3), d.headers["webhook-timestamp"]) for d in got]


def test_a_failing_receiver_is_retried_with_one_webhook_id_then_dead_lettered(tenant, receiver):
    rule, eid, got, delivery = dead_lettered(tenant, receiver, "/down")
    assert len({d.headers["webhook-id"] for d in got}) == 1
    assert len({d.body for d in got}) == 1, "every attempt sends the same bytes"
    stamps = [int(d.headers["webhook-timestamp"]) for d in got]
    assert stamps == sorted(stamps), f"each attempt signs anew: {arrivals(got)}"
    for d in got:
        assert verified(rule["secret"], d)["data"]["events"][0]["id"] == eid, "signed at its own time"

    assert delivery["dead_letters"] == 1
    assert delivery["failed_attempts"] == len(got) >= 3, (delivery, arrivals(got))
    assert delivery["last_error"] == "HTTP 500"
    assert delivery["last_delivered_at"] is None
    assert delivery["last_attempt_at"] and delivery["last_error_at"]
    dead = delivery["last_dead_letter"]
    assert dead["event_ids"] == [eid]
    assert dead["webhook_id"] == got[0].headers["webhook-id"]
    assert dead["error"] == "HTTP 500"
    listed = tenant.call("GET", "/v1/alerts")
    assert [r["delivery"] for r in listed.body["items"] if r["id"] == rule["id"]] == [delivery]


def test_retries_follow_the_schedule_exactly(tenant, receiver):
    """The local schedule `1s,1s`: three attempts in all, a second apart."""
    _, _, got, delivery = dead_lettered(tenant, receiver, "/down")
    assert len(got) == 3, f"three attempts, not {arrivals(got)}"
    for a, b in zip(got, got[1:]):
        assert b.at - a.at >= 0.9, f"attempts wait the schedule's second: {arrivals(got)}"
    assert int(got[-1].headers["webhook-timestamp"]) > int(got[0].headers["webhook-timestamp"])
    assert delivery["failed_attempts"] == 3 and delivery["last_dead_letter"]["attempts"] == 3, delivery


def test_a_redirect_is_not_followed(tenant, receiver):
    _, _, _, delivery = dead_lettered(tenant, receiver, "/moved", 302, {"Location": receiver.url("/target")})
    assert receiver.received("/target") == []
    assert delivery["dead_letters"] == 1 and delivery["last_error"] == "HTTP 302", delivery


def test_a_slow_receiver_times_out_and_a_recovered_one_is_delivered(tenant, receiver):
    """The local attempt timeout is 2 s: a receiver answering its first request after 5 s
    fails it; it answers the retry at once, which is delivered, and the summary says so."""
    receiver.answer("/slow", status=200, delay=5, times=1)
    rule = tenant.create_rule(receiver.url("/slow"), quiet_minutes=0)
    settle()
    tenant.post(event())
    receiver.wait(2, "/slow")
    delivery = summary(tenant, rule["id"], lambda d: d["last_delivered_at"] is not None)
    assert delivery["last_error"].startswith("timed out"), delivery
    assert delivery["failed_attempts"] == 1, delivery
    assert delivery["last_delivered_at"] is not None, delivery
    assert delivery["dead_letters"] == 0
    ids = {d.headers["webhook-id"] for d in receiver.received("/slow")}
    assert len(ids) == 1


def test_another_tenants_events_never_reach_a_rule(tenant, other_tenant, receiver):
    mine = tenant.create_rule(receiver.url("/a"), quiet_minutes=0)
    theirs = other_tenant.create_rule(receiver.url("/b"), quiet_minutes=0)
    settle()
    b_ids = [other_tenant.post(event())[0] for _ in range(3)]
    [a_id] = tenant.post(event())
    receiver.wait(3, "/b")
    receiver.wait(1, "/a")
    quiet(receiver)
    a = [verified(mine["secret"], d)["data"] for d in receiver.received("/a")]
    b = [verified(theirs["secret"], d)["data"] for d in receiver.received("/b")]
    assert [e["id"] for x in a for e in x["events"]] == [a_id]
    assert {e["tenant_id"] for x in a for e in x["events"]} == {tenant.name}
    assert sorted(e["id"] for x in b for e in x["events"]) == sorted(b_ids)
    assert {e["tenant_id"] for x in b for e in x["events"]} == {other_tenant.name}
    # Nor can one tenant see, change or delete another's rule.
    for method, body in [("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)]:
        r = other_tenant.call(method, f"/v1/alerts/{mine['id']}", body=body)
        assert r.status == 404 and r.body["error"]["code"] == "not_found", (method, r)
    assert [r["id"] for r in other_tenant.call("GET", "/v1/alerts").body["items"]] == [theirs["id"]]


REFUSED_URLS = [
    "https://10.0.0.1/x",
    "https://169.254.169.254/",
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "https://[fd00:ec2::254]/",
    "https://172.16.0.1/",
    "https://192.168.1.1:8443/hook",
    "https://[fe80::1]/",
    "https://[fd00::1]/",
    "https://[::ffff:10.0.0.1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://0.0.0.0/",
    "https://100.64.0.1/",
    "https://167772161/",  # 10.0.0.1 as a number, which URL parsers turn into the address
    "https://0xa9fea9fe/",  # 169.254.169.254 in hex
    "http://example.com/hook",  # plain http is for loopback receivers of the local stack only
    "ftp://example.com/",
    "https://user:pass@example.com/",
    "https://example.com/#frag",
    "hook.example.com",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_a_rule_pointed_at_a_private_address_is_refused(tenant, url):
    body = {"name": "x", "match": {"action": "member.delete"}, "destination": {"type": "webhook", "url": url}}
    r = tenant.call("POST", "/v1/alerts", body=body)
    assert r.status == 400 and r.body["error"]["code"] == "invalid_request", r
    assert r.fields() == ["destination.url"], r
    rule = tenant.create_rule("http://127.0.0.1:9/ok")
    r = tenant.call("PATCH", f"/v1/alerts/{rule['id']}", body={"destination": {"type": "webhook", "url": url}})
    assert r.status == 400 and r.fields() == ["destination.url"], r
    assert tenant.call("GET", "/v1/alerts").body["items"][0]["destination"]["url"] == "http://127.0.0.1:9/ok"


VALID = {"name": "n", "match": {"action": "member.delete"}, "destination": {"type": "webhook", "url": "http://127.0.0.1:9/"}}
INVALID_BODIES = [
    ({**VALID, "colour": "red"}, "colour"),
    ({k: v for k, v in VALID.items() if k != "name"}, "name"),
    ({k: v for k, v in VALID.items() if k != "match"}, "match"),
    ({k: v for k, v in VALID.items() if k != "destination"}, "destination"),
    ({**VALID, "name": ""}, "name"),
    ({**VALID, "name": "x" * 129}, "name"),
    ({**VALID, "name": 7}, "name"),
    ({**VALID, "match": {}}, "match"),
    ({**VALID, "match": {"colour": "red"}}, "match.colour"),
    ({**VALID, "match": {"action": "member.delete", "from": "2026-01-01T00:00:00Z"}}, "match.from"),
    ({**VALID, "match": {"action": "Not An Action"}}, "match.action"),
    ({**VALID, "match": {"action": [1]}}, "match.action"),
    ({**VALID, "match": {"outcome": "maybe"}}, "match.outcome"),
    ({**VALID, "threshold": {"count": 1, "window_minutes": 5}}, "threshold.count"),
    ({**VALID, "threshold": {"count": 1001, "window_minutes": 5}}, "threshold.count"),
    ({**VALID, "threshold": {"count": 5, "window_minutes": 0}}, "threshold.window_minutes"),
    ({**VALID, "threshold": {"count": 5, "window_minutes": 1441}}, "threshold.window_minutes"),
    ({**VALID, "threshold": {"count": 5}}, "threshold.window_minutes"),
    ({**VALID, "threshold": {"count": "5", "window_minutes": 5}}, "threshold.count"),
    ({**VALID, "threshold": {"count": 5, "window_minutes": 5, "every": 2}}, "threshold.every"),
    ({**VALID, "threshold": 5}, "threshold"),
    ({**VALID, "quiet_minutes": -1}, "quiet_minutes"),
    ({**VALID, "quiet_minutes": 1441}, "quiet_minutes"),
    ({**VALID, "quiet_minutes": 2.5}, "quiet_minutes"),
    ({**VALID, "enabled": "yes"}, "enabled"),
    ({**VALID, "destination": {"type": "email", "to": "a@example.com"}}, "destination.type"),
    ({**VALID, "destination": {"type": "webhook"}}, "destination.url"),
    ({**VALID, "destination": {"type": "sns", "topic_arn": "audit-alerts-x"}}, "destination.topic_arn"),
    ({**VALID, "destination": {"type": "webhook", "url": "https://example.com/", "topic_arn": "x"}},
     "destination.topic_arn"),
    ({**VALID, "rotate_secret": True}, "rotate_secret"),
]


@pytest.mark.parametrize("body,field", INVALID_BODIES, ids=lambda x: x if isinstance(x, str) else None)
def test_invalid_rules_are_refused_naming_the_field(tenant, body, field):
    r = tenant.call("POST", "/v1/alerts", body=body)
    assert r.status == 400 and r.body["error"]["code"] == "invalid_request", r
    assert field in r.fields(), r
    assert tenant.call("GET", "/v1/alerts").body["items"] == []


def test_unreadable_bodies_and_patches_are_refused(tenant):
    for raw in [b"not json", b"[1]", b'"rule"', b"\xff\xfe{}", json.dumps({**VALID, "name": "a\u0000b"}).encode()]:
        r = tenant.call("POST", "/v1/alerts", raw=raw)
        assert r.status == 400 and r.body["error"]["code"] == "invalid_request", (raw, r)
    big = {**VALID, "name": "n", "match": {"q": "x" * 200, "action": [f"a.b{i}" for i in range(20)]},
           "padding": "x" * 17000}
    r = tenant.call("POST", "/v1/alerts", body=big)
    assert r.status == 413 and r.body["error"]["code"] == "payload_too_large", r
    rule = tenant.create_rule("http://127.0.0.1:9/")
    path = f"/v1/alerts/{rule['id']}"
    for body, field in [({}, ""), ({"id": "x"}, "id"), ({"rotate_secret": "yes"}, "rotate_secret"),
                        ({"threshold": {"count": 0, "window_minutes": 1}}, "threshold.count"),
                        ({"secret": "whsec_" + "A" * 43 + "="}, "secret")]:
        r = tenant.call("PATCH", path, body=body)
        assert r.status == 400 and field in r.fields(), (body, r)
    assert public(tenant.call("GET", path).body) == public(rule), "refused patches changed nothing"


def test_scopes_tokens_and_ids(tenant, app):
    rule = tenant.create_rule("http://127.0.0.1:9/")
    path = f"/v1/alerts/{rule['id']}"
    for tok in [tenant.reader, tenant.writer, token(tenant.name, "audit:read audit:write audit:export")]:
        for method, p, body in [("GET", "/v1/alerts", None), ("POST", "/v1/alerts", VALID), ("GET", path, None),
                                ("PATCH", path, {"enabled": False}), ("DELETE", path, None)]:
            r = tenant.call(method, p, tok, body=body)
            assert r.status == 403 and r.body["error"]["code"] == "forbidden", (method, p, r)
    r = tenant.call("GET", "/v1/alerts", "not-a-token")
    assert r.status == 401 and r.body["error"]["code"] == "unauthorized", r
    assert request(app, "GET", "/v1/alerts").status == 401
    for bad in ["nope", str(uuid.uuid4()), rule["id"].upper() + "0", "../events"]:
        for method, body in [("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)]:
            r = tenant.call(method, f"/v1/alerts/{bad}", body=body)
            assert r.status == 404 and r.body["error"]["code"] == "not_found", (bad, method, r)
    assert tenant.call("DELETE", path).status == 204
    assert tenant.call("DELETE", path).status == 404
    assert tenant.call("GET", path).status == 404


def test_a_tenant_has_at_most_100_rules(tenant):
    ids = [tenant.create_rule("http://127.0.0.1:9/", name=f"rule {i}")["id"] for i in range(100)]
    r = tenant.call("POST", "/v1/alerts", body=VALID)
    assert r.status == 409 and r.body["error"]["code"] == "conflict", r
    listed = tenant.call("GET", "/v1/alerts").body["items"]
    assert [x["id"] for x in listed] == ids, "oldest first"
    assert tenant.call("DELETE", f"/v1/alerts/{ids[0]}").status == 204
    assert tenant.call("POST", "/v1/alerts", body=VALID).status == 201, "a deleted rule frees its place"
    assert tenant.call("POST", "/v1/alerts", body=VALID).status == 409


def test_rule_changes_are_in_the_audit_log(tenant):
    rule = tenant.create_rule("http://127.0.0.1:9/", name="deletions")
    path = f"/v1/alerts/{rule['id']}"
    r = tenant.call("PATCH", path, body={"name": "member deletions", "quiet_minutes": 30})
    assert r.status == 200 and r.body["name"] == "member deletions" and r.body["quiet_minutes"] == 30, r
    assert "secret" not in r.body
    rotated = tenant.call("PATCH", path, body={"rotate_secret": True}).body
    assert tenant.call("DELETE", path).status == 204

    r = tenant.call("GET", "/v1/events", tenant.reader, params={"action": "audit_log.*", "order": "asc", "limit": 100})
    assert r.status == 200, r
    logged = r.body["items"]
    assert [e["action"] for e in logged] == ["audit_log.alert_create", "audit_log.alert_update",
                                              "audit_log.alert_update", "audit_log.alert_delete"], logged
    for e in logged:
        assert e["resource"]["type"] == "alert_rule" and e["resource"]["id"] == rule["id"], e
        assert e["actor"]["id"] == SUB, e
        assert e["tenant_id"] == tenant.name
        text = json.dumps(e)
        assert rule["secret"] not in text and rotated["secret"] not in text and "whsec_" not in text
    for action in ["audit_log.alert_create", "audit_log.alert_update", "audit_log.alert_delete"]:
        r = tenant.call("GET", "/v1/events", tenant.reader, params={"action": action})
        assert r.body["items"] and all(e["action"] == action for e in r.body["items"]), (action, r)


def test_a_disabled_rule_stops_and_a_rotated_secret_signs_with_both(tenant, receiver):
    rule = tenant.create_rule(receiver.url("/hook"), quiet_minutes=0)
    # A second rule on the same events: the sign that an event was processed.
    witness = tenant.create_rule(receiver.url("/witness"), quiet_minutes=0)
    path = f"/v1/alerts/{rule['id']}"
    settle()
    tenant.post(event())
    receiver.wait(1, "/hook")
    receiver.wait(1, "/witness")

    r = tenant.call("PATCH", path, body={"enabled": False})
    assert r.status == 200 and r.body["enabled"] is False, r
    settle()
    [off] = tenant.post(event())
    receiver.wait(2, "/witness")
    quiet(receiver, 2)
    assert len(receiver.received("/hook")) == 1, "a disabled rule sends nothing"

    r = tenant.call("PATCH", path, body={"enabled": True, "rotate_secret": True})
    assert r.status == 200 and r.body["enabled"] is True, r
    new = r.body["secret"]
    assert new.startswith("whsec_") and new != rule["secret"]
    assert "secret" not in tenant.call("GET", path).body
    settle()
    [on] = tenant.post(event())
    got = receiver.wait(2, "/hook")
    d = got[-1]
    assert len(d.headers["webhook-signature"].split(" ")) == 2, "both secrets sign during the overlap"
    for secret in [rule["secret"], new]:
        assert verified(secret, d)["data"]["events"][0]["id"] == on
    assert verified(new, d)["data"]["rule"] == shown(r.body)
    assert off not in [verified(rule["secret"], x)["data"]["events"][0]["id"] for x in got]
    # The witness rule was never rotated: one signature, its own secret.
    w = receiver.wait(3, "/witness")[-1]
    assert len(w.headers["webhook-signature"].split(" ")) == 1
    verified(witness["secret"], w)
    rejected(new, w.body, w.headers)


def test_a_rule_matches_what_the_same_filters_list(tenant, receiver):
    """A rule's `match` is GET /v1/events's filters: category actions, actor email in any
    case, resource, workspace, keyword."""
    match = {"action": ["api_key.*", "member.delete"], "actor": "Ada@Example.com", "workspace": "ws-eu", "q": "prod"}
    rule = tenant.create_rule(receiver.url("/f"), match=match, quiet_minutes=0)
    settle()
    eu = {"id": "ws-eu", "name": "EU"}
    candidates = [
        event("api_key.create", workspace=eu, description="prod deploy key"),
        event("api_key.delete", workspace=eu, description="PROD key revoked"),
        event("member.delete", workspace=eu, resource={"type": "member", "id": "m-1", "name": "Prod admin"}),
        event("api_key.create", workspace={"id": "ws-us"}, description="prod"),
        event("api_key.create", workspace=eu, description="staging"),
        event("channel.delete", workspace=eu, description="prod"),
        event("api_key.create", workspace=eu, description="prod",
              actor={"type": "member", "id": "u-bob", "email": "bob@example.com"}),
    ]
    tenant.post(*candidates)
    params = {k: v for k, v in match.items()}
    listed = tenant.call("GET", "/v1/events", tenant.reader, params={**params, "limit": 100}).body["items"]
    expected = sorted(e["id"] for e in listed)
    assert len(expected) == 3, listed
    receiver.wait(len(expected), "/f")
    quiet(receiver)
    got = sorted(verified(rule["secret"], d)["data"]["events"][0]["id"] for d in receiver.received("/f"))
    assert got == expected


def sns():
    endpoint = os.environ.get("AWS_ENDPOINT_URL_SNS") or os.environ["AWS_ENDPOINT_URL_SQS"]
    return boto3.client("sns", endpoint_url=endpoint), boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL_SQS"])


def test_an_sns_rule_publishes_to_the_tenants_topic(tenant, other_tenant):
    topics, queues = sns()
    arn = topics.create_topic(Name=f"audit-alerts-{tenant.name}")["TopicArn"]
    assert arn == TOPIC_PREFIX + tenant.name
    queue = queues.create_queue(QueueName=f"alerts-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    queue_arn = queues.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topics.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)

    body = {"name": "Member deleted", "match": {"action": "member.delete"}, "quiet_minutes": 0,
            "destination": {"type": "sns", "topic_arn": arn}}
    r = tenant.call("POST", "/v1/alerts", body=body)
    assert r.status == 201 and r.body["destination"] == {"type": "sns", "topic_arn": arn}, r
    rule = r.body
    # Another tenant's topic, or any other, is refused.
    for foreign in [TOPIC_PREFIX + other_tenant.name, TOPIC_PREFIX + tenant.name + "-x",
                    f"arn:aws:sns:us-east-1:999999999999:audit-alerts-{tenant.name}"]:
        r = tenant.call("POST", "/v1/alerts", body={**body, "destination": {"type": "sns", "topic_arn": foreign}})
        assert r.status == 400 and r.fields() == ["destination.topic_arn"], (foreign, r)
        r = tenant.call("PATCH", f"/v1/alerts/{rule['id']}", body={"destination": {"type": "sns", "topic_arn": foreign}})
        assert r.status == 400 and r.fields() == ["destination.topic_arn"], (foreign, r)
    settle()

    [eid] = tenant.post(event())
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    messages = []
    while not messages and time.monotonic() < deadline:
        messages = queues.receive_message(QueueUrl=queue, WaitTimeSeconds=1, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1, "one SNS message within the deadline"
    envelope = json.loads(messages[0]["Body"])
    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == arn
    assert envelope["Subject"] == "Audit log alert: Member deleted"
    payload = json.loads(envelope["Message"])
    assert payload["type"] == "audit_log.alert"
    assert payload["data"]["rule"] == shown(rule)
    assert payload["data"]["events"] == [tenant.event(eid)]
    assert "webhook-id" in envelope.get("MessageAttributes", {}), envelope
    assert envelope["MessageAttributes"]["webhook-id"]["Value"].startswith("msg_")
    assert "whsec_" not in messages[0]["Body"]
    delivery = summary(tenant, rule["id"], lambda d: d["last_delivered_at"] is not None)
    assert delivery["last_delivered_at"] is not None and delivery["failed_attempts"] == 0, delivery


def test_the_readme_receiver_verifies_and_prints_a_delivery(tenant):
    """The receiver example of the README, run as it is written (with its secret and port
    filled in), gets a real delivery."""
    readme = (local_app.ROOT / "README.md").read_text(encoding="utf-8")
    code = readme.split("## Alerts", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    port = local_app.free_port()
    rule = tenant.create_rule(f"http://127.0.0.1:{port}/", name="readme receiver", quiet_minutes=0)
    code = code.replace('"whsec_..."', repr(rule["secret"])).replace("8080", str(port))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        settle()
        [eid] = tenant.post(event())
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while not lines and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert lines == [f"readme receiver 1 ['{eid}']\n"], (lines, proc.poll())
        delivery = summary(tenant, rule["id"], lambda d: d["last_delivered_at"] is not None)
        assert delivery["last_delivered_at"] and delivery["failed_attempts"] == 0, delivery
    finally:
        proc.kill()
        proc.wait()


def test_archiving_events_that_alerted_alerts_nothing(tenant, receiver):
    """The archive turns each moved event's item into a tombstone (a modification of the
    item): no stream record of it is a new event, so nothing alerts again."""
    rule = tenant.create_rule(receiver.url("/old"), quiet_minutes=0)
    settle()
    start = time.time() - 120 * 86400
    old = [event(occurred_at=iso(start + i)) for i in range(3)]
    tenant.post(*old)
    receiver.wait(3, "/old")
    auditlog = local_app.ROOT / "target" / "debug" / "auditlog"
    assert auditlog.exists(), "build it first: cargo build -p audit-cli --bin auditlog"
    run = subprocess.run([str(auditlog), "archive", "--tenant", tenant.name], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert sum(c["rows"] for c in report["committed"]) == 3, report
    for e in old:
        assert tenant.event(e["id"]).get("archived") is True
    # A new match still alerts, and is the only delivery after the archive's.
    [new] = tenant.post(event())
    receiver.wait(4, "/old")
    quiet(receiver)
    ids = [verified(rule["secret"], d)["data"]["events"][0]["id"] for d in receiver.received("/old")]
    assert sorted(ids) == sorted([e["id"] for e in old] + [new]), ids


def test_a_hostile_neighbour_never_holds_back_another_tenants_alert(tenant, other_tenant, receiver):
    """Tenant A: 100 rules without a quiet period on its own action, all to a receiver that
    answers 500, and 50 matching events (5,000 matches) at once. Tenant B's one rule still
    delivers its event at once: A's matches, attempts and retries are A's own turn's work
    (before, B's alert waited minutes behind them)."""
    receiver.answer("/a", status=500)
    for i in range(100):
        tenant.create_rule(receiver.url("/a"), match={"action": "flood.event"}, quiet_minutes=0, name=f"flood {i}")
    other_tenant.create_rule(receiver.url("/b"), quiet_minutes=0)
    settle()
    tenant.post(*[event("flood.event") for _ in range(50)])
    posted = time.time()
    [bid] = other_tenant.post(event())
    [d] = receiver.wait(1, "/b", timeout=30)
    assert json.loads(d.body)["data"]["events"][0]["id"] == bid
    print(f"tenant B's alert {d.at - posted:.2f} s after its POST, beside A's flood")
    # A's failing destination is paused after 5 failures in a row (a few more were in
    # flight): A's flood is not 5,000 requests (nor 15,000 with retries) but a handful,
    # then a probe each 30 s.
    receiver.wait(5, "/a", timeout=60)
    for _ in range(25):
        assert len(receiver.received("/a")) <= 12, len(receiver.received("/a"))
        time.sleep(0.2)


def test_retries_end_when_their_rule_is_disabled_deleted_or_pointed_elsewhere(tenant, receiver):
    """The first attempt fails; before its retry the rule changes: the retry is not made
    (and for a rule pointed elsewhere, never goes to the new destination), and the
    delivery ends a dead letter saying why."""
    changes = [
        ("/disabled", {"enabled": False}, "the rule was disabled"),
        ("/moved", {"destination": {"type": "webhook", "url": receiver.url("/new")}}, "the rule's destination changed"),
        ("/deleted", None, None),
    ]
    made = {}
    for path, patch, why in changes:
        receiver.hold(path, 500)
        action = f"member{path.replace('/', '.')}"
        rule = tenant.create_rule(receiver.url(path + "?token=s3cret"), match={"action": action}, quiet_minutes=0)
        settle()
        tenant.post(event(action))
        [first] = receiver.wait(1, path)
        # The first attempt is in the receiver's hands: change the rule, then let it fail.
        r = tenant.call("PATCH" if patch else "DELETE", f"/v1/alerts/{rule['id']}", body=patch)
        assert r.status in (200, 204), r
        # Attempts made before the change was answered (one, or two when a slow change let
        # the first time out and a retry start) are all there will be.
        made[path] = len(receiver.received(path))
        receiver.release(path)
        assert b"s3cret" not in first.body and b"/disabled" not in first.body, "no URL in the body"
        if why:
            delivery = summary(tenant, rule["id"], lambda d: d["dead_letters"] >= 1)
            assert delivery["last_dead_letter"]["error"] == why, delivery
            assert delivery["failed_attempts"] == made[path], delivery
    quiet(receiver)
    for path, _, _ in changes:
        assert len(receiver.received(path)) == made[path], (path, "no attempt after the change")
    assert receiver.received("/new") == [], "a delivery made for one destination never goes to another"


def test_a_burst_past_the_rule_rate_is_folded_and_the_counts_add_up(tenant, receiver):
    """100 matches at once against 60 notifications a minute per rule: 60 go at once, the
    other 40 are folded into one more as soon as the rule's rate allows, which says how
    many events it stands for and names the first ten."""
    rule = tenant.create_rule(receiver.url("/burst"), quiet_minutes=0)
    settle()
    started = time.monotonic()
    ids = tenant.post(*[event() for _ in range(100)])
    deadline = time.monotonic() + 30
    while True:
        datas = [verified(rule["secret"], d)["data"] for d in receiver.received("/burst")]
        if sum(d["count"] for d in datas) >= 100 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    quiet(receiver)
    datas = [verified(rule["secret"], d)["data"] for d in receiver.received("/burst")]
    assert sum(d["count"] for d in datas) == 100, [d["count"] for d in datas]
    single = [d for d in datas if d["folded"] == 0]
    folded = [d for d in datas if d["folded"] > 0]
    # A full minute's 60 at once, then one a second: as many more as seconds went by.
    assert 60 <= len(datas) <= 60 + elapsed + 1, (len(datas), elapsed)
    assert all(d["count"] == 1 for d in single) and folded, [d["count"] for d in datas]
    alone = {d["events"][0]["id"] for d in single}
    assert len(alone) == len(single), "each event in one notification"
    for d in folded:
        assert d["count"] == d["folded"] + len(d["events"])
        named = d["event_ids"]
        assert len(named) == min(10, d["count"]) and set(named) <= set(ids) - alone, "the first folded ones, by name"
