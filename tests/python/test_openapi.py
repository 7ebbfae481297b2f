"""openapi.yaml: a valid OpenAPI 3.1 document that describes every route template.yaml
deploys and every error code of the contract, whose event schema accepts the sample
events and refuses what the service refuses."""
import copy
import functools
import json
import re

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate

from conftest import ROOT, SHARED
from test_template import FUNCTIONS, prop

DOC = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
CONTRACT = (SHARED / "CONTRACT.md").read_text(encoding="utf-8")
SAMPLES = [json.loads(l) for l in (ROOT / "events" / "sample-events.jsonl").read_text().splitlines() if l.strip()]


@functools.cache
def validator(component):
    schema = copy.deepcopy(DOC)
    schema["$ref"] = f"#/components/schemas/{component}"
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_the_document_is_valid_openapi_3_1():
    assert DOC["openapi"].startswith("3.1")
    validate(DOC)


def test_every_deployed_route_is_described_and_nothing_else():
    deployed = set()
    for f in FUNCTIONS:
        for event in prop(f, "Events").values():
            if event["Type"] == "HttpApi" and event["Properties"]["Path"] != "$default":
                deployed.add((event["Properties"]["Method"].lower(), event["Properties"]["Path"]))
    described = {(method, path) for path, item in DOC["paths"].items() for method in item}
    assert described == deployed


def test_the_contract_error_codes_are_the_documented_ones():
    listed = re.search(r"with stable codes \(([^)]*)\)", CONTRACT).group(1)
    codes = set(re.findall(r"`([a-z_]+)`", listed))
    # Beyond the contract's list, proposed for it: an item altered in the table is named
    # as such (500 `data_integrity`), not as an `internal` error.
    assert set(DOC["components"]["schemas"]["ErrorCode"]["enum"]) == codes | {"data_integrity"}


def test_every_operation_documents_its_auth_and_server_errors():
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            if op.get("security") == []:
                continue
            assert {"401", "403", "500"} <= set(responses), (method, path)
            scope = re.search(r"Scope `(audit:[a-z]+)`", op["description"])
            assert scope, f"{method} {path}: which scope?"


def test_the_sample_events_are_valid_queue_messages_and_events():
    queue, event = validator("QueueMessage"), validator("Event")
    for sample in SAMPLES:
        queue.validate(sample)
        event.validate({k: v for k, v in sample.items() if k != "tenant_id"})


BASE = {"action": "channel.create", "actor": {"type": "member", "id": "u-1"}}


@pytest.mark.parametrize("change", [
    {"tenant_id": "acme"},
    {"action": "login"},
    {"action": "Channel.Create"},
    {"actor": {"type": "robot", "id": "u-1"}},
    {"actor": {"type": "member"}},
    {"actor": {"type": "member", "id": "u-1", "extra": 1}},
    {"id": "has space"},
    {"id": "x" * 129},
    {"outcome": "maybe"},
    {"description": ""},
    {"description": "x" * 2049},
    {"source": {"ip": "300.1.1.1"}},
    {"request_id": "a\u0000b"},
    {"changes": [{"old": 1}]},
    {"changes": [{"field": "a"}] * 101},
    {"metadata": []},
    {"occurred_at": "yesterday"},
])
def test_the_event_schema_refuses_what_the_service_refuses(change):
    event = {**BASE, **change}
    with pytest.raises(jsonschema.ValidationError):
        validator("Event").validate(event)


def test_the_event_schema_takes_nulls_as_absent_and_both_ip_families():
    v = validator("Event")
    v.validate({**BASE, "id": None, "outcome": None, "resource": None, "metadata": None})
    v.validate({**BASE, "source": {"ip": "2001:db8::1"}, "changes": [{"field": "a", "old": None, "new": [1]}]})


def test_a_stored_event_as_the_api_returns_it_matches_its_schema():
    stored = {"tenant_id": "acme", "id": "evt-1", "occurred_at": "2026-11-05T22:25:20.138832Z",
              "action": "channel.create", "outcome": "success", "actor": {"type": "member", "id": "u-1"},
              "received_at": "2026-11-05T22:25:21.000000Z", "hash": "0" * 64}
    validator("StoredEvent").validate(stored)
    with pytest.raises(jsonschema.ValidationError):
        validator("StoredEvent").validate({**stored, "occurred_at": "2026-11-05T22:25:20Z"})


RULE = {"id": "019a8f6e-1c2b-7d3e-8f40-123456789abc", "name": "API key deleted", "enabled": True,
        "match": {"action": ["api_key.delete"], "q": "prod"}, "threshold": None, "quiet_minutes": 5,
        "destination": {"type": "webhook", "url": "https://hooks.example.com/audit?x=1"},
        "created_at": "2026-11-05T22:25:20.138832Z", "updated_at": "2026-11-05T22:25:20.138832Z",
        "delivery": {"last_attempt_at": None, "last_delivered_at": None, "last_error": None, "last_error_at": None,
                     "failed_attempts": 0, "dead_letters": 0, "last_dead_letter": None}}
SECRET = "whsec_" + "A" * 43 + "="


def test_the_alert_examples_are_valid_rules():
    for name, example in DOC["paths"]["/v1/alerts"]["post"]["requestBody"]["content"]["application/json"]["examples"].items():
        validator("AlertRuleNew").validate(example["value"])
    for example in DOC["paths"]["/v1/alerts/{id}"]["patch"]["requestBody"]["content"]["application/json"]["examples"].values():
        validator("AlertRulePatch").validate(example["value"])


def test_a_rule_as_the_api_returns_it_matches_its_schema_and_the_secret_only_when_made():
    dead = {"webhook_id": "msg_" + "0" * 32, "at": "2026-11-06T22:25:20.000000Z", "attempts": 8,
            "event_ids": ["evt-1"], "error": "HTTP 500"}
    shown = {**RULE, "threshold": {"count": 5, "window_minutes": 10},
             "destination": {"type": "sns", "topic_arn": "arn:aws:sns:us-east-1:123456789012:audit-alerts-acme"},
             "delivery": {**RULE["delivery"], "last_error": "timed out", "last_error_at": "2026-11-06T22:25:20.000000Z",
                          "failed_attempts": 8, "dead_letters": 1, "last_dead_letter": dead}}
    validator("AlertRuleShown").validate(shown)
    validator("AlertRuleWithSecret").validate({**RULE, "secret": SECRET})
    with pytest.raises(jsonschema.ValidationError):
        validator("AlertRuleShown").validate({**RULE, "secret": SECRET})
    with pytest.raises(jsonschema.ValidationError):
        validator("AlertRuleWithSecret").validate(RULE)
    with pytest.raises(jsonschema.ValidationError):
        validator("AlertRuleShown").validate({k: v for k, v in RULE.items() if k != "delivery"})


NEW = {"name": "n", "match": {"action": "api_key.delete"}, "destination": {"type": "webhook", "url": "https://h.example/x"}}


@pytest.mark.parametrize("change", [
    {"name": ""},
    {"name": "x" * 129},
    {"match": {}},
    {"match": {"from": "2026-01-01T00:00:00Z"}},
    {"match": {"action": ["a.b"] * 21}},
    {"threshold": {"count": 1, "window_minutes": 10}},
    {"threshold": {"count": 1001, "window_minutes": 10}},
    {"threshold": {"count": 5, "window_minutes": 1441}},
    {"threshold": {"count": 5}},
    {"quiet_minutes": -1},
    {"quiet_minutes": 1441},
    {"enabled": None},
    {"secret": SECRET},
    {"destination": {"type": "webhook", "url": "ftp://h.example/x"}},
    {"destination": {"type": "webhook", "url": "https://user@h.example/x"}},
    {"destination": {"type": "webhook", "url": "https://h.example/x#frag"}},
    {"destination": {"type": "webhook", "url": "https://h.example/a b"}},
    {"destination": {"type": "webhook", "topic_arn": "arn:aws:sns:us-east-1:123456789012:t"}},
    {"destination": {"type": "sns", "topic_arn": "arn:aws:sns:us-east-1:123456789012:t.fifo"}},
    {"destination": {"type": "email", "url": "https://h.example/x"}},
])
def test_the_alert_rule_schema_refuses_what_the_service_refuses(change):
    with pytest.raises(jsonschema.ValidationError):
        validator("AlertRuleNew").validate({**NEW, **change})


def test_a_patch_changes_something():
    with pytest.raises(jsonschema.ValidationError):
        validator("AlertRulePatch").validate({})
    validator("AlertRulePatch").validate({"threshold": None})
