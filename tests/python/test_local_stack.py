"""What ./infra/local/run gives a newcomer, and the local stack's twins of deployed
limits: Ctrl-C stops every process within seconds, the banner names every route, the
sample events are recent, and the ingest queue refuses what its consumer cannot take."""
import datetime
import importlib.util
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import ROOT

LIB = ROOT / "infra" / "local" / "lib.sh"

_spec = importlib.util.spec_from_file_location("load_events", ROOT / "infra" / "local" / "load_events.py")
load_events = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load_events)


def alive(pid):
    """Exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(") ", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# A stand-in for the stack's servers as `run` starts them, one of them deaf to TERM and busy
# (as DynamoDB Local was, for 50 s, after minutes of use), then run's own ending: waiting
# until Ctrl-C.
RUN = r"""
source "$1"
STATE=$2
: >"$STATE/pids"
stop_on_exit "$STATE"
sleep 300 &
echo $! >>"$STATE/pids"
python3 -c 'import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); print("ready", flush=True)
while True: pass' &
echo $! >>"$STATE/pids"
wait
"""


def test_ctrl_c_stops_every_process_within_seconds_whatever_they_are_doing(tmp_path):
    # Given: the stack's processes running, one of them ignoring TERM
    proc = subprocess.Popen(["bash", "-c", RUN, "run", str(LIB), str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        # When: Ctrl-C, which the terminal sends to the whole foreground process group
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        took = time.monotonic() - started
        # Then: all gone within the grace period and a little
        assert not [p for p in pids if alive(p)]
        assert took < 10, f"{took:.1f} s"
        assert not (tmp_path / "pids").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_the_banner_names_every_route():
    import yaml

    banner = (ROOT / "infra" / "local" / "run").read_text(encoding="utf-8").split("<<MSG", 1)[1]
    with open(ROOT / "openapi.yaml", encoding="utf-8") as f:
        paths = yaml.safe_load(f)["paths"]
    listed = set(re.findall(r"(/[a-z0-9/{}]+)", banner))
    missing = [p for p in [*paths, "/console"] if p not in listed]
    assert not missing, missing


def test_sample_events_are_recent_with_their_spread_and_reach_past_the_online_window():
    lines = (ROOT / "events" / "sample-events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    now = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.timezone.utc)
    moved = load_events.relative_to_now(events, now)
    times = [load_events.parse(e["occurred_at"]) for e in moved]
    before = [load_events.parse(e["occurred_at"]) for e in events]
    # The newest minutes ago, never in the future; the same gaps between every event.
    assert datetime.timedelta(0) < now - max(times) <= datetime.timedelta(minutes=5)
    assert {t - b for t, b in zip(times, before)} == {times[0] - before[0]}
    # The console's default view (the last 7 days) and the archive (past 90 days) both
    # have something to show.
    assert sum(now - t <= datetime.timedelta(days=7) for t in times) >= 20
    assert sum(now - t > datetime.timedelta(days=91) for t in times) >= 20
    assert [{k: v for k, v in e.items() if k != "occurred_at"} for e in moved] == \
        [{k: v for k, v in e.items() if k != "occurred_at"} for e in events]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", e["occurred_at"]) for e in moved)


def test_sample_batches_fit_the_ingest_queue():
    events = [json.loads(line) for line in (ROOT / "events" / "sample-events.jsonl").read_text().splitlines() if line]
    batches = list(load_events.batches(events))
    assert sum(len(b) for _, b in batches) == len(events)
    for tenant, batch in batches:
        assert len(batch) <= 500
        assert len(json.dumps({"tenant_id": tenant, "events": batch}).encode()) <= 256 * 1024


@pytest.fixture()
def sqs():
    import boto3

    return boto3.client("sqs")


def test_the_ingest_queue_refuses_at_once_a_message_its_consumer_cannot_take(sqs):
    from botocore.exceptions import ClientError

    url = os.environ["AUDIT_INGEST_QUEUE_URL"]
    with pytest.raises(ClientError) as refused:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"tenant_id": "t", "events": ["x" * 300_000]}))
    assert refused.value.response["Error"]["Code"] in ("InvalidParameterValue", "InvalidParameterValueException")
    size = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])["Attributes"]
    assert size == {"MaximumMessageSize": str(256 * 1024)}
