#!/usr/bin/env python3
"""Sends a JSON-lines file of events (each with its tenant_id) to the ingest queue,
grouped per tenant into batch messages under the SQS size limit.

usage: load_events.py FILE  (with AUDIT_INGEST_QUEUE_URL and AWS_ENDPOINT_URL_SQS set)
"""
import json
import os
import sys
from collections import defaultdict

import boto3

LIMIT = 200 * 1024


def main():
    by_tenant = defaultdict(list)
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                event = json.loads(line)
                by_tenant[event.pop("tenant_id")].append(event)
    sqs = boto3.client("sqs")
    url = os.environ["AUDIT_INGEST_QUEUE_URL"]
    sent = 0
    for tenant, events in by_tenant.items():
        batch, size = [], 0
        for e in events + [None]:
            text = json.dumps(e) if e is not None else ""
            if e is None or len(batch) == 500 or size + len(text) > LIMIT:
                if batch:
                    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"tenant_id": tenant, "events": batch}))
                    sent += len(batch)
                batch, size = [], 0
            if e is not None:
                batch.append(e)
                size += len(text) + 1
    print(f"queued {sent} events for {len(by_tenant)} tenants", file=sys.stderr)


if __name__ == "__main__":
    main()
