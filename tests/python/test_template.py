"""template.yaml against docs/operations.md: every IAM statement is in the permissions
table and nothing else is, and the production settings the operations doc promises
(log groups, alarms with runbooks, canaries, bounded consumers, Rules) are there."""
import fnmatch
import importlib.util
import re

import pytest

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("provision", ROOT / "infra" / "local" / "provision.py")
provision = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(provision)

OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def load_template():
    import yaml

    with open(ROOT / "template.yaml", encoding="utf-8") as f:
        return yaml.load(f, Loader=provision.CfnLoader)


TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
GLOBALS = TEMPLATE["Globals"]["Function"]


def of_type(kind):
    return {lid: r for lid, r in RESOURCES.items() if r["Type"] == kind}


FUNCTIONS = of_type("AWS::Serverless::Function")
ALARMS = of_type("AWS::CloudWatch::Alarm")


def prop(function, name):
    """A function property with the Globals applied (maps are merged, as SAM does)."""
    own = FUNCTIONS[function]["Properties"].get(name)
    glob = GLOBALS.get(name)
    if isinstance(own, dict) and isinstance(glob, dict):
        return {**glob, **own}
    return glob if own is None else own


def true_branch(value):
    """The value a condition selects when it holds (secrets set, and so on)."""
    if isinstance(value, dict) and "Fn::If" in value:
        return true_branch(value["Fn::If"][1])
    return value


def render(value):
    """A resource expression as the permissions table writes it."""
    if isinstance(value, str):
        return value
    if "Fn::GetAtt" in value:
        lid, attr = value["Fn::GetAtt"]
        assert attr in ("Arn", "StreamArn"), value
        return lid if attr == "Arn" else f"{lid}.{attr}"
    if "Fn::Sub" in value:
        return re.sub(r"\$\{(\w+)\.Arn\}", r"\1", value["Fn::Sub"])
    if "Ref" in value:
        return value["Ref"]
    if "Fn::If" in value:
        _, yes, no = value["Fn::If"]
        return f"{render(yes)} or {render(no)}"
    raise AssertionError(f"cannot render {value}")


def as_list(v):
    return v if isinstance(v, list) else [v]


def policies():
    """(policy logical id, statement) for every managed policy and role inline policy."""
    for lid, res in of_type("AWS::IAM::ManagedPolicy").items():
        for st in res["Properties"]["PolicyDocument"]["Statement"]:
            yield lid, true_branch(st)
    for lid, res in of_type("AWS::IAM::Role").items():
        if lid not in {prop_role(f) for f in FUNCTIONS}:
            continue
        for policy in res["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                yield lid, true_branch(st)


def prop_role(function):
    role = FUNCTIONS[function]["Properties"]["Role"]
    return role["Fn::GetAtt"][0]


def condition_values(st, key):
    values = set()
    for op, keys in st.get("Condition", {}).items():
        if key in keys:
            values |= set(as_list(keys[key]))
    return values


def row_of(lid, st):
    return (
        lid,
        st.get("Sid", ""),
        frozenset(as_list(st["Action"])),
        frozenset(render(r) for r in as_list(st["Resource"])),
        frozenset(condition_values(st, "dynamodb:LeadingKeys")),
        frozenset(condition_values(st, "dynamodb:Attributes")),
    )


def doc_table(header_start):
    """The rows of the markdown table whose header starts with `header_start`."""
    lines = OPERATIONS.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().replace("`", "") for c in line.strip().strip("|").split("|")])
    return rows


def cells(text, sep=","):
    return frozenset(x.strip() for x in text.split(sep) if x.strip())


def test_every_statement_is_in_the_permissions_table_and_nothing_else():
    documented = {
        (p, sid, cells(a), cells(r), cells(k), cells(attrs))
        for p, sid, a, r, k, attrs in doc_table("| policy | sid |")
    }
    actual = {row_of(lid, st) for lid, st in policies() if st["Effect"] == "Allow"}
    assert not actual - documented, f"in template.yaml, not in docs/operations.md: {sorted(actual - documented)}"
    assert not documented - actual, f"in docs/operations.md, not in template.yaml: {sorted(documented - actual)}"


def test_each_function_has_the_role_and_managed_policies_the_table_gives():
    documented = {f: (role, cells(managed)) for f, role, managed in doc_table("| function | role |")}
    actual = {}
    for f in FUNCTIONS:
        role = prop_role(f)
        arns = RESOURCES[role]["Properties"].get("ManagedPolicyArns", [])
        managed = frozenset(true_branch(a)["Ref"] for a in arns if true_branch(a) != {"Ref": "AWS::NoValue"})
        actual[f] = (role, managed)
    assert actual == documented


def test_no_function_gets_permissions_from_sam():
    roles = [prop_role(f) for f in FUNCTIONS]
    assert len(set(roles)) == len(roles), "one role per function"
    for f, res in FUNCTIONS.items():
        assert "Policies" not in res["Properties"], f"{f}: SAM would add managed policies beside these"
        assert RESOURCES[prop_role(f)]["Type"] == "AWS::IAM::Role"


def test_no_wildcard_actions_and_star_resources_only_for_xray():
    for lid, st in policies():
        for action in as_list(st["Action"]):
            assert "*" not in action, (lid, st)
        if "*" in [render(r) for r in as_list(st["Resource"])]:
            assert all(a.startswith("xray:") for a in as_list(st["Action"])), (lid, st)


def table_statements():
    for lid, st in policies():
        if "EventsTable" in {render(r) for r in as_list(st["Resource"])}:
            yield lid, st


def test_every_statement_on_table_items_is_held_to_key_prefixes():
    for lid, st in table_statements():
        ops = [op for op, keys in st.get("Condition", {}).items() if "dynamodb:LeadingKeys" in keys]
        assert ops, f"{lid} {st.get('Sid')}: no dynamodb:LeadingKeys condition"
        # ForAnyValue would pass a batch with one allowed key among others.
        assert all(op.startswith("ForAllValues:") for op in ops), (lid, st)
        for op, keys in st["Condition"].items():
            assert op.startswith("ForAllValues:"), (lid, op)


WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}


# The table items a role may delete, and only these: alert rules, by the alerts API (a
# tenant's configuration, not evidence: each change is itself an event), and the alerts'
# agenda, by alerts (work to do: a matched entry is deleted in the transaction that
# applies it and writes its marker). BatchWriteItem deletes as well as puts.
DELETABLE = {"AlertsApiRole": {"AL#*"}, "AlertsRole": {"AQ#*"}}


def test_no_role_deletes_evidence_and_only_the_archive_updates_events():
    for lid, st in policies():
        actions = set(as_list(st["Action"]))
        if "EventsTable" in {render(r) for r in as_list(st["Resource"])}:
            keys = condition_values(st, "dynamodb:LeadingKeys")
            # An archived event's item stays as a tombstone: its id is never freed.
            if actions & {"dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}:
                assert keys and keys <= DELETABLE.get(lid, set()), (lid, st)
            if "dynamodb:UpdateItem" in actions and any(fnmatch.fnmatchcase("EV#x", k) for k in keys):
                assert lid == "ArchiveRole" and keys == {"EV#*"}, (lid, st)
        else:
            assert "dynamodb:BatchWriteItem" not in actions, (lid, st)
        if "s3:DeleteObject" in actions:
            assert all(not render(r).startswith("ArchiveBucket") for r in as_list(st["Resource"])), (lid, st)


def test_export_jobs_expire_by_ttl_after_their_files():
    ttl = RESOURCES["EventsTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "ttl", "Enabled": True}
    # Whoever finishes a job sets its expiry too.
    for lid, st in table_statements():
        attrs = condition_values(st, "dynamodb:Attributes")
        if "completed_at" in attrs:
            assert "ttl" in attrs, (lid, st.get("Sid"))


def test_only_the_archive_names_the_registry_archive_attributes():
    for lid, st in table_statements():
        actions = set(as_list(st["Action"])) & WRITES
        keys = condition_values(st, "dynamodb:LeadingKeys")
        if not actions or not any(fnmatch.fnmatchcase("TENANTS", k) for k in keys):
            continue
        # A put replaces the whole item, archive state included.
        assert "dynamodb:PutItem" not in actions, (lid, st)
        attrs = condition_values(st, "dynamodb:Attributes")
        assert attrs, f"{lid} {st.get('Sid')}: an update of the registry without an attribute list"
        archive_attrs = {a for a in attrs if a.startswith("archive_")}
        assert not archive_attrs or lid == "ArchiveRole", (lid, archive_attrs)


def test_the_query_role_cannot_write():
    for lid, st in policies():
        if lid == "QueryRole":
            assert not set(as_list(st["Action"])) & (WRITES | {"s3:PutObject", "s3:DeleteObject", "sqs:SendMessage"})
    for managed in RESOURCES["QueryRole"]["Properties"]["ManagedPolicyArns"]:
        assert true_branch(managed)["Ref"] != "EventWriterPolicy"


def test_each_function_logs_to_its_own_group_with_retention():
    groups = set()
    for f in FUNCTIONS:
        config = prop(f, "LoggingConfig")
        assert config["LogFormat"] == "JSON", f
        group = config["LogGroup"]["Ref"]
        assert RESOURCES[group]["Type"] == "AWS::Logs::LogGroup"
        assert RESOURCES[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        groups.add(group)
        logs = [st for lid, st in policies() if lid == prop_role(f) and st.get("Sid") == "Logs"]
        assert [render(st["Resource"]) for st in logs] == [group], f
    assert len(groups) == len(FUNCTIONS)
    access = RESOURCES["HttpApi"]["Properties"]["AccessLogSettings"]
    assert render(access["DestinationArn"]) == "ApiAccessLogGroup"
    assert "$context.requestId" in access["Format"] and "querystring" not in access["Format"].lower()


def http_functions():
    return [f for f in FUNCTIONS if any(e["Type"] == "HttpApi" for e in prop(f, "Events").values())]


def test_api_functions_answer_before_api_gateway_gives_up():
    assert set(http_functions()) == {"IngestApiFunction", "QueryFunction", "ExportApiFunction", "AlertsApiFunction"}
    for f in http_functions():
        timeout = prop(f, "Timeout")
        assert timeout <= 25, f"{f}: API Gateway stops waiting at 30 s"
        deadline = int(prop(f, "Environment")["Variables"]["AUDIT_REQUEST_DEADLINE_MS"])
        assert deadline <= (timeout - 5) * 1000, f"{f}: too little time left to answer throttled"


def test_unknown_routes_reach_the_router_for_the_contract_404():
    paths = [e["Properties"]["Path"] for f in http_functions() for e in prop(f, "Events").values()]
    assert "$default" in paths


def test_queue_consumers_are_bounded_and_report_partial_failures():
    consumers = [(f, e) for f in FUNCTIONS for e in prop(f, "Events").values() if e["Type"] == "SQS"]
    assert {f for f, _ in consumers} == {"IngestQueueFunction", "ExportWorkerFunction", "AlertsFunction"}
    for f, e in consumers:
        p = e["Properties"]
        assert "MaximumConcurrency" in p["ScalingConfig"], f
        assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        queue = RESOURCES[p["Queue"]["Fn::GetAtt"][0]]["Properties"]
        assert queue["VisibilityTimeout"] >= 6 * prop(f, "Timeout"), f


def test_the_export_worker_ends_the_jobs_of_its_dead_letter_queue():
    queues = [e["Properties"]["Queue"]["Fn::GetAtt"][0] for e in prop("ExportWorkerFunction", "Events").values()]
    assert sorted(queues) == ["ExportDeadLetterQueue", "ExportQueue"]
    # It tells the two apart by the dead-letter queue's URL.
    assert GLOBALS["Environment"]["Variables"]["AUDIT_EXPORT_DLQ_URL"] == {"Ref": "ExportDeadLetterQueue"}


def test_the_alerts_function_reads_new_events_from_the_stream_and_records_what_it_gave_up_on():
    spec = RESOURCES["EventsTable"]["Properties"]["StreamSpecification"]
    assert spec == {"StreamViewType": "NEW_IMAGE"}
    streams = [e["Properties"] for f in FUNCTIONS for e in prop(f, "Events").values() if e["Type"] == "DynamoDB"]
    assert len(streams) == 1
    s = streams[0]
    assert render(s["Stream"]) == "EventsTable.StreamArn"
    assert s["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and s["BisectBatchOnFunctionError"] is True
    # Bounded: a poisoned record cannot hold its shard for the stream's whole 24 hours.
    assert 0 < s["MaximumRetryAttempts"] <= 10 and s["MaximumRecordAgeInSeconds"] <= 86400
    assert render(s["DestinationConfig"]["OnFailure"]["Destination"]) == "AlertStreamFailureQueue"
    import json
    patterns = [json.loads(f["Pattern"]) for f in s["FilterCriteria"]["Filters"]]
    # Inserts of event items only: no tombstone (a MODIFY), delete, job or alert item.
    assert patterns == [{"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "EV#"}]}}}}]
    work = RESOURCES["AlertWorkQueue"]["Properties"]
    assert render(work["RedrivePolicy"]["deadLetterTargetArn"]) == "AlertWorkDeadLetterQueue"
    assert GLOBALS["Environment"]["Variables"]["AUDIT_ALERT_WORK_QUEUE_URL"] == {"Ref": "AlertWorkQueue"}
    # Turns are served side by side by more than one invocation, so one tenant's turn
    # never holds the only worker.
    w = prop("AlertsFunction", "Events")["Work"]["Properties"]
    assert render(w["Queue"]) == "AlertWorkQueue" and w["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert w["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "AlertWorkConcurrency"}
    assert TEMPLATE["Parameters"]["AlertWorkConcurrency"]["MinValue"] >= 2
    assert "IteratorAge" in {a["Properties"]["MetricName"] for a in ALARMS.values()}


def test_the_alerts_function_cannot_change_a_rule_or_read_an_event_item():
    for lid, st in table_statements():
        if lid != "AlertsRole":
            continue
        keys = condition_values(st, "dynamodb:LeadingKeys")
        assert not any(fnmatch.fnmatchcase("EV#x", k) for k in keys), st
        if set(as_list(st["Action"])) & WRITES and any(fnmatch.fnmatchcase("AL#x", k) for k in keys):
            attrs = condition_values(st, "dynamodb:Attributes")
            assert attrs and not attrs & {"doc", "ua"}, (st.get("Sid"), attrs)


def test_alert_topics_are_the_tenants_own_under_one_prefix():
    prefix = {"Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:${AlertTopicNamePrefix}"}
    for f in ["AlertsApiFunction", "AlertsFunction"]:
        assert prop(f, "Environment")["Variables"]["AUDIT_ALERT_TOPIC_PREFIX"] == prefix, f
    publish = [st for lid, st in policies() if "sns:Publish" in as_list(st["Action"])]
    assert [(render(st["Resource"])) for st in publish] == [prefix["Fn::Sub"] + "*"]


def test_the_archive_runs_hourly_and_records_failures():
    events = prop("ArchiveFunction", "Events")
    schedules = [e["Properties"] for e in events.values() if e["Type"] == "Schedule"]
    assert [s["Schedule"] for s in schedules] == ["cron(15 * * * ? *)"]
    assert render(schedules[0]["DeadLetterConfig"]["Arn"]) == "ArchiveFailureQueue"
    on_failure = prop("ArchiveFunction", "EventInvokeConfig")["DestinationConfig"]["OnFailure"]
    assert render(on_failure["Destination"]) == "ArchiveFailureQueue"


def test_the_archive_reserves_concurrency_only_when_asked():
    # Lambda keeps 100 executions unreserved per account: a reservation by default would
    # roll a first deploy back on an account whose quota is 10.
    reserved = prop("ArchiveFunction", "ReservedConcurrentExecutions")
    assert reserved == {"Fn::If": ["ReserveArchiveConcurrency", {"Ref": "ArchiveReservedConcurrency"},
                                   {"Ref": "AWS::NoValue"}]}
    parameter = TEMPLATE["Parameters"]["ArchiveReservedConcurrency"]
    condition = TEMPLATE["Conditions"]["ReserveArchiveConcurrency"]
    params = {"ArchiveReservedConcurrency": str(parameter["Default"])}
    assert not evaluate(condition, params), "reserved by default"
    assert evaluate(condition, {"ArchiveReservedConcurrency": "1"})
    assert (parameter["MinValue"], parameter["MaxValue"]) == (0, 1)
    assert "101" in parameter["Description"] and "ArchiveReservedConcurrency" in OPERATIONS


def test_new_versions_go_out_as_canaries_rolled_back_by_their_own_alarms():
    assert GLOBALS["AutoPublishAlias"] == "live"
    for f in FUNCTIONS:
        preference = prop(f, "DeploymentPreference")
        if f == "ArchiveFunction":
            assert preference is None  # docs/operations.md, "Deployments"
            continue
        assert preference["Type"] == {"Ref": "DeploymentType"}
        watched = {a["Ref"] for a in preference["Alarms"]}
        metrics = set()
        for alarm in watched:
            p = ALARMS[alarm]["Properties"]
            dims = {d["Name"]: d["Value"] for d in p["Dimensions"]}
            assert {"Ref": f} in dims.values(), f"{f} is rolled back by {alarm}, which watches another function"
            metrics.add(p["MetricName"])
        assert {"Errors", "Throttles"} <= metrics, f
        if f in http_functions():
            assert "HttpServerErrors" in metrics, f


def section(anchor):
    """The text of the operations doc under the heading whose GitHub anchor is `anchor`."""
    lines = OPERATIONS.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#"):
            title = line.lstrip("#").strip()
            if re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-") == anchor:
                rest = [l for l in lines[i + 1:]]
                end = next((j for j, l in enumerate(rest) if l.startswith("#")), len(rest))
                return "\n".join(rest[:end])
    raise AssertionError(f"no heading for #{anchor} in docs/operations.md")


def test_every_alarm_notifies_the_topic_and_has_a_runbook():
    assert len(ALARMS) >= 20
    topic = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
    for lid, res in ALARMS.items():
        p = res["Properties"]
        assert p["AlarmActions"] == [topic] and p["OKActions"] == [topic], lid
        found = re.search(r"docs/operations\.md#([a-z0-9-]+)", p["AlarmDescription"])
        assert found, f"{lid}: no runbook link"
        assert lid in section(found.group(1)), f"{lid} is not named in its runbook #{found.group(1)}"
        assert lid in section("alarms"), f"{lid} is not in the alarms table"


def test_alarms_cover_what_the_operations_doc_promises():
    watched = {(p["Properties"]["Namespace"], p["Properties"]["MetricName"]) for p in ALARMS.values()}
    for metric in [("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
                   ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles"), ("AWS/ApiGateway", "5xx"),
                   ("AuditLog", "ArchiveLagDays"), ("AuditLog", "ExportsReclaimed")]:
        assert metric in watched, metric
    dead_letters = {p["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for p in ALARMS.values()
                    if p["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"}
    assert dead_letters == {"IngestDeadLetterQueue", "ExportDeadLetterQueue", "ArchiveFailureQueue",
                            "AlertWorkDeadLetterQueue", "AlertStreamFailureQueue"}
    for f in FUNCTIONS:
        for metric in ["Errors", "Throttles"]:
            assert any(p["Properties"]["MetricName"] == metric and
                       p["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": f}}]
                       for p in ALARMS.values()), (f, metric)


def test_custom_metrics_of_alarms_are_documented_with_their_dimensions():
    documented = {name: [cells(s) for s in dims.split(";")]
                  for name, _unit, dims, *_ in doc_table("| metric | unit |")}
    for lid, res in ALARMS.items():
        p = res["Properties"]
        if p["Namespace"] != "AuditLog":
            continue
        assert p["MetricName"] in documented, lid
        dims = frozenset(d["Name"] for d in p["Dimensions"])
        assert dims in documented[p["MetricName"]], f"{lid}: dimensions {set(dims)} are not emitted"
    assert GLOBALS["Environment"]["Variables"]["AUDIT_METRICS_NAMESPACE"] == "AuditLog"


def test_every_environment_variable_is_documented():
    names = set(GLOBALS["Environment"]["Variables"])
    for f in FUNCTIONS:
        names |= set(FUNCTIONS[f]["Properties"].get("Environment", {}).get("Variables", {}))
    table = " ".join(row[0] for row in doc_table("| variable | read by |"))
    for name in names - {"RUST_LOG"}:
        assert name in table, f"{name} is not in docs/operations.md, Configuration"


def test_secrets_come_from_secrets_manager_not_plain_parameters():
    for f in FUNCTIONS:
        variables = prop(f, "Environment")["Variables"]
        assert "AUDIT_JWT_SECRET" not in variables and "AUDIT_CURSOR_SECRET" not in variables, f
    for f in http_functions():
        assert "AUDIT_JWT_SECRET_ARN" in prop(f, "Environment")["Variables"], f
    assert "AUDIT_CURSOR_SECRET_ARN" in prop("QueryFunction", "Environment")["Variables"]
    for name, p in TEMPLATE["Parameters"].items():
        assert "Secret" not in name or name.endswith("Arn"), f"{name}: a secret as a plain parameter"


def evaluate(expr, params):
    """CloudFormation's rule functions, for the ones the template uses."""
    if isinstance(expr, dict):
        (fn, args), = expr.items()
        if fn == "Ref":
            return params[args]
        if fn == "Fn::Equals":
            return evaluate(args[0], params) == evaluate(args[1], params)
        if fn == "Fn::Not":
            return not evaluate(args[0], params)
        if fn == "Fn::Or":
            return any(evaluate(a, params) for a in args)
        if fn == "Fn::And":
            return all(evaluate(a, params) for a in args)
        raise AssertionError(f"unexpected {fn}")
    return expr


def refused(**given):
    params = {name: str(p.get("Default", "")) for name, p in TEMPLATE["Parameters"].items()}
    params.update(given)
    failures = []
    for name, rule in TEMPLATE["Rules"].items():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], params):
            continue
        failures += [name for a in rule["Assertions"] if not evaluate(a["Assert"], params)]
    return failures


SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:audit/jwt-AbCdEf"


@pytest.mark.parametrize("given, expected", [
    ({}, ["TokensNeedAVerifier"]),
    ({"JwtSecretArn": SECRET}, []),
    ({"JwksUrl": "https://idp.example.com/.well-known/jwks.json"}, []),
    ({"JwtSecretArn": SECRET, "CursorSecretArn": SECRET}, ["CursorSecretIsNotTheTokenSecret"]),
    ({"JwtSecretArn": SECRET, "JwtAudience": "audit"}, ["AudienceNeedsIssuer"]),
    ({"JwksUrl": "https://idp.example.com/jwks", "JwtIssuer": "https://idp.example.com/", "JwtAudience": "audit"}, []),
])
def test_rules_refuse_impossible_parameter_combinations(given, expected):
    assert refused(**given) == expected


def test_a_jwks_only_deploy_always_has_a_cursor_secret():
    secret = RESOURCES["CursorSecret"]
    assert secret["Condition"] == "CreateCursorSecret"
    assert TEMPLATE["Conditions"]["CreateCursorSecret"] == {"Fn::Equals": [{"Ref": "CursorSecretArn"}, ""]}


def test_archive_lock_and_lifecycle_are_parameters():
    p = RESOURCES["ArchiveBucket"]["Properties"]
    retention = p["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention == {"Mode": {"Ref": "ObjectLockMode"}, "Days": {"Ref": "ArchiveRetentionDays"}}
    assert TEMPLATE["Parameters"]["ObjectLockMode"]["Default"] == "GOVERNANCE"
    transitions = [t for r in p["LifecycleConfiguration"]["Rules"] for t in r.get("Transitions", [])]
    assert transitions == [{"StorageClass": "GLACIER_IR", "TransitionInDays": {"Ref": "ArchiveColdAfterDays"}}]
    athena = RESOURCES["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert athena["EnforceWorkGroupConfiguration"] is True
    assert "AthenaResultsBucket" in str(athena["ResultConfiguration"]["OutputLocation"])


def rust_bytes(path, name):
    """A `const NAME: usize = a * b * ...;` of the Rust sources, evaluated."""
    text = (ROOT / path).read_text(encoding="utf-8")
    found = re.search(rf"const {name}: usize = ([0-9_ *]+);", text)
    assert found, f"{name} not in {path}"
    value = 1
    for factor in found.group(1).split("*"):
        value *= int(factor.strip().replace("_", ""))
    return value


def test_the_ingest_queue_refuses_at_once_what_its_consumer_cannot_take():
    consumer = rust_bytes("shared/src/domain/ingest.rs", "MAX_MESSAGE_BYTES")
    assert RESOURCES["IngestQueue"]["Properties"]["MaximumMessageSize"] == consumer
    # A dead letter is the message plus its reasons (at most 16 KiB): SQS's default 1 MiB.
    reasons = rust_bytes("shared/src/usecases/consume.rs", "MAX_REASON_BYTES")
    dlq = RESOURCES["IngestDeadLetterQueue"]["Properties"].get("MaximumMessageSize", 1024 * 1024)
    assert dlq >= consumer + reasons + 1024
    # The local stack's twin refuses the same (tests/python/test_local_stack.py sends one).
    assert '"MaximumMessageSize"' in (ROOT / "infra" / "local" / "provision.py").read_text(encoding="utf-8")


FULL = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:audit/jwt-AbC9eF"


@pytest.mark.parametrize("name", ["JwtSecretArn", "CursorSecretArn"])
@pytest.mark.parametrize("value, accepted", [
    ("", True),
    (FULL, True),
    ("arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:a_b+c=d.e@f-123456", True),
    # Partial ARNs: the roles' GetSecretValue on exactly this ARN would not match the secret.
    ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:audit/jwt", False),
    ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:audit/jwt-AbC9e", False),
    (FULL + "?", False),
    ("audit/jwt", False),
    (FULL.replace("secretsmanager", "ssm"), False),
])
def test_secret_parameters_take_full_arns_only(name, value, accepted):
    # CloudFormation matches AllowedPattern against the whole value.
    pattern = TEMPLATE["Parameters"][name]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is accepted, value
    assert "six" in TEMPLATE["Parameters"][name]["ConstraintDescription"]


def test_whoever_reads_the_archive_can_list_it_so_a_missing_object_reads_as_absent():
    # S3 answers a missing key with 403 to a principal without s3:ListBucket.
    readers, listers = set(), set()
    for lid, st in policies():
        resources = {render(r) for r in as_list(st["Resource"])}
        if "s3:GetObject" in as_list(st["Action"]) and any(r.startswith("ArchiveBucket/") for r in resources):
            readers.add(lid)
        if "s3:ListBucket" in as_list(st["Action"]) and "ArchiveBucket" in resources:
            listers.add(lid)
    assert "QueryRole" in readers
    assert readers <= listers, readers - listers


def test_cross_origin_callers_are_a_parameter_the_api_functions_read():
    variables = GLOBALS["Environment"]["Variables"]
    assert variables["AUDIT_CORS_ORIGINS"] == {"Ref": "CorsAllowedOrigins"}
    assert 'pub const CORS_ORIGINS: &str = "AUDIT_CORS_ORIGINS";' in (ROOT / "runtime" / "src" / "config.rs").read_text()
    parameter = TEMPLATE["Parameters"]["CorsAllowedOrigins"]
    assert parameter["Default"] == ""
    for value, accepted in [("", True), ("https://app.example.com", True),
                            ("https://app.example.com,http://localhost:8080", True),
                            ("https://app.example.com/", False), ("https://a.example.com/console", False),
                            ("https://a.example.com, https://b.example.com", False), ("*", False),
                            ("app.example.com", False)]:
        assert bool(re.fullmatch(parameter["AllowedPattern"], value)) is accepted, value
    # No API Gateway CorsConfiguration: it would answer preflights itself and drop the
    # functions' headers. Preflights reach the router through $default.
    assert "CorsConfiguration" not in RESOURCES["HttpApi"]["Properties"]
    unknown = [e for e in prop("QueryFunction", "Events").values() if e["Properties"].get("Path") == "$default"]
    assert [e["Properties"]["Method"] for e in unknown] == ["ANY"]


def test_the_x86_64_template_changes_the_architecture_and_every_code_uri_only():
    import subprocess

    import yaml

    text = subprocess.run([str(ROOT / "infra" / "aws" / "x86_64-template")], capture_output=True, text=True,
                          check=True).stdout
    x86 = yaml.load(text, Loader=provision.CfnLoader)
    assert x86["Globals"]["Function"]["Architectures"] == ["x86_64"]
    expected = load_template()
    expected["Globals"]["Function"]["Architectures"] = ["x86_64"]
    for f in FUNCTIONS:
        uri = FUNCTIONS[f]["Properties"]["CodeUri"]
        assert "Architectures" not in FUNCTIONS[f]["Properties"], f
        assert re.fullmatch(r"target/lambda/arm64/[a-z-]+/bootstrap\.zip", uri), (f, uri)
        expected["Resources"][f]["Properties"]["CodeUri"] = uri.replace("/arm64/", "/x86_64/")
    assert x86 == expected
