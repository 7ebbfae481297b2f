#!/usr/bin/env python3
"""Sends a JSON-lines file of events (each with its tenant_id) to the ingest queue,
grouped per tenant into batch messages under the SQS size limit, dated relative to now:
every `occurred_at` moves by the same amount, so the newest is a few minutes old and the
file's spread is kept (the sample's four months reach past the 90-day online window, so
the archive has days to move). Then waits until the queue is drained, so what follows
(the archive run, the console) sees every event.

usage: load_events.py FILE  (with AUDIT_INGEST_QUEUE_URL and AWS_ENDPOINT_URL_SQS set)
"""
import datetime
import json
import os
import sys
import time
from collections import defaultdict

LIMIT = 200 * 1024
# How old the newest event is once moved.
NEWEST_AGE = datetime.timedelta(minutes=3)
# How long the runner's consumer may take to store the file.
DRAIN_TIMEOUT = 300


def parse(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def relative_to_now(events, now):
    """The events with `occurred_at` moved so the newest is NEWEST_AGE before `now`
    (microseconds kept: each event's time is as distinct as in the file)."""
    shift = now - NEWEST_AGE - max(parse(e["occurred_at"]) for e in events)
    return [{**e, "occurred_at": (parse(e["occurred_at"]) + shift).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
            for e in events]


def batches(events):
    """(tenant, events) messages: per tenant, at most 500 events and LIMIT bytes each."""
    by_tenant = defaultdict(list)
    for event in events:
        event = dict(event)
        by_tenant[event.pop("tenant_id")].append(event)
    for tenant, events in by_tenant.items():
        batch, size = [], 0
        for e in events:
            text = json.dumps(e)
            if batch and (len(batch) == 500 or size + len(text) > LIMIT):
                yield tenant, batch
                batch, size = [], 0
            batch.append(e)
            size += len(text) + 1
        if batch:
            yield tenant, batch


def drained(sqs, url):
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return all(int(v) == 0 for v in attrs.values())


def main():
    import boto3

    with open(sys.argv[1], encoding="utf-8") as f:
        events = [json.loads(line) for line in f if line.strip()]
    events = relative_to_now(events, datetime.datetime.now(datetime.timezone.utc))
    sqs = boto3.client("sqs")
    url = os.environ["AUDIT_INGEST_QUEUE_URL"]
    sent, tenants = 0, set()
    for tenant, batch in batches(events):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"tenant_id": tenant, "events": batch}))
        sent += len(batch)
        tenants.add(tenant)
    first, last = min(e["occurred_at"] for e in events), max(e["occurred_at"] for e in events)
    print(f"queued {sent} events for {len(tenants)} tenants, {first} to {last}", file=sys.stderr)
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while not drained(sqs, url):
        if time.monotonic() > deadline:
            sys.exit(f"the ingest queue was not drained within {DRAIN_TIMEOUT} s: is audit-local running?")
        time.sleep(0.5)


if __name__ == "__main__":
    main()
