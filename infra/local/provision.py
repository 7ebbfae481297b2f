#!/usr/bin/env python3
"""Creates the local stack's table, queues, buckets and signing key from template.yaml itself.

The template is the single definition: this reads each AWS::DynamoDB::Table (with its
TTL setting and stream), AWS::SQS::Queue, AWS::S3::Bucket and AWS::KMS::Key (its key
spec and usage; moto signs and verifies ECDSA) resource and creates its local twin,
and reads the `AUDIT_*: !Ref Resource` lines of the template's Globals to know which
environment variable names which resource. It prints those variables as shell `export`
lines, `AUDIT_STREAM_ARN` (the table's stream, which the local runner reads in place
of Lambda's event source mapping) and `AUDIT_STREAM_FILTER` (that mapping's filter
patterns, as a JSON list, which the runner applies as Lambda does before batching).

usage: provision.py TEMPLATE  (with AWS_ENDPOINT_URL_{DYNAMODB,SQS,S3,KMS} set)
"""
import json
import re
import shlex
import sys

import boto3
import yaml


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !GetAtt, !Sub, ...)."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def local_name(logical_id):
    """EventsTable -> audit-events-table: stable, readable names for the local twins."""
    return "audit-" + re.sub(r"(?<!^)(?=[A-Z])", "-", logical_id).lower()


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        template = yaml.load(f, Loader=CfnLoader)
    resources = template["Resources"]
    ddb, sqs, s3, kms = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("s3"), boto3.client("kms")
    refs = {}  # logical id -> what !Ref returns (table name, queue URL, bucket name)
    arns = {}
    streams = []

    for lid, res in resources.items():
        if res["Type"] == "AWS::DynamoDB::Table":
            p = res["Properties"]
            name = local_name(lid)
            args = {k: p[k] for k in ("AttributeDefinitions", "KeySchema", "BillingMode") if k in p}
            if "GlobalSecondaryIndexes" in p:
                args["GlobalSecondaryIndexes"] = p["GlobalSecondaryIndexes"]
            if "StreamSpecification" in p:
                # CloudFormation enables the stream by giving its view type; the API asks for both.
                args["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
            table = ddb.create_table(TableName=name, **args)["TableDescription"]
            if "LatestStreamArn" in table:
                streams.append(table["LatestStreamArn"])
            ddb.get_waiter("table_exists").wait(TableName=name)
            if "TimeToLiveSpecification" in p:
                # DynamoDB Local records the setting but never deletes expired items.
                ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=p["TimeToLiveSpecification"])
            refs[lid] = name

    # Dead-letter queues first: a redrive policy names its target's ARN.
    queues = [(lid, r) for lid, r in resources.items() if r["Type"] == "AWS::SQS::Queue"]
    queues.sort(key=lambda q: "RedrivePolicy" in q[1].get("Properties", {}))
    for lid, res in queues:
        p = res.get("Properties", {})
        attrs = {k: str(p[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize")
                 if k in p}
        if "RedrivePolicy" in p:
            rp = p["RedrivePolicy"]
            target = rp["deadLetterTargetArn"]["Fn::GetAtt"][0]
            attrs["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arns[target], "maxReceiveCount": str(rp["maxReceiveCount"])}
            )
        url = sqs.create_queue(QueueName=local_name(lid), Attributes=attrs)["QueueUrl"]
        refs[lid] = url
        arns[lid] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    for lid, res in resources.items():
        if res["Type"] == "AWS::S3::Bucket":
            name = local_name(lid)
            s3.create_bucket(Bucket=name)
            refs[lid] = name

    for lid, res in resources.items():
        if res["Type"] == "AWS::KMS::Key":
            p = res["Properties"]
            key = kms.create_key(Description=p.get("Description", lid), KeySpec=p["KeySpec"], KeyUsage=p["KeyUsage"])
            refs[lid] = key["KeyMetadata"]["KeyId"]

    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    for var, value in variables.items():
        if isinstance(value, dict) and value.get("Ref") in refs:
            print(f"export {var}={refs[value['Ref']]}")
    # One table has a stream; a second would need a name of its own here.
    assert len(streams) <= 1, streams
    for arn in streams:
        print(f"export AUDIT_STREAM_ARN={arn}")
    patterns = stream_filters(resources)
    print(f"export AUDIT_STREAM_FILTER={shlex.quote(json.dumps(patterns))}")


def stream_filters(resources):
    """The filter patterns of the one DynamoDB stream event source (none: every record)."""
    sources = [
        event["Properties"]
        for res in resources.values()
        if res["Type"] == "AWS::Serverless::Function"
        for event in res.get("Properties", {}).get("Events", {}).values()
        if event.get("Type") == "DynamoDB"
    ]
    assert len(sources) <= 1, "the runner follows one stream consumer"
    filters = sources[0].get("FilterCriteria", {}).get("Filters", []) if sources else []
    return [f["Pattern"] for f in filters]


if __name__ == "__main__":
    main()
