#!/usr/bin/env python3
"""The measuring half of alert_cost.sh: 100 rules on one tenant (the kinds a tenant sets:
exact actions, some with an outcome or an operator, categories, resource types, a
keyword), webhooks to a loopback receiver, then generated events in batches of 100; once
the stream is drained, the capacity units and requests of the ingest's items and of the
alerts' items, per event.

usage: alert_cost.py API_URL PROXY_URL [--events N]
"""
import argparse, importlib.util, json, pathlib, subprocess, sys, time, urllib.request, uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "alerts")]
from local_app import token  # noqa: E402
from receiver import Receiver  # noqa: E402

# The event generator beside the clone, found as the Python tests find it.
_spec = importlib.util.spec_from_file_location("python_conftest", HERE.parent / "python" / "conftest.py")
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)
GEN = _conftest.GEN

ACTIONS = ["auth.login", "auth.logout", "api_key.create", "api_key.delete", "knowledge.create", "knowledge.update",
           "channel.create", "channel.connect", "message.send", "db.update", "member.invite", "member.delete",
           "member.enable", "member.disable", "app.publish", "app.export_dsl", "app.import_dsl", "workspace.create",
           "workspace.delete", "escalation_rule.update", "password.modify", "mfa.enable", "mfa.disable", "file.upload"]
ALERT_KINDS = ("AL", "AM", "AD")


def matches():
    """The same 100 rules as adapters/aws/examples/alert_matching.rs."""
    out = []
    for i, a in enumerate(ACTIONS):
        out += [{"action": a}, {"action": a, "outcome": "failure"}, {"actor": f"u-0-{i}", "action": a}]
    out += [{"action": f"{c}.*"} for c in ["auth", "api_key", "member", "mfa", "workspace", "app", "db", "password",
                                           "file", "channel"]]
    out += [{"resource_type": "api_key", "action": ["api_key.create", "api_key.delete"]}, {"q": "escalation"}]
    for i, r in enumerate(["channel", "knowledge", "user", "api_key", "application", "workspace", "member", "file"]):
        out += [{"resource_type": r, "outcome": "failure"}, {"workspace": f"ws-0-{i}", "action": "member.*"}]
    assert len(out) == 100
    return out


def call(url, method, path, tok, body=None):
    req = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def stats(proxy):
    with urllib.request.urlopen(proxy + "/__stats", timeout=10) as r:
        return json.loads(r.read())


def sums(snapshot, kinds, exclude=False):
    units = requests = 0.0
    for key, s in snapshot.items():
        kind = key.split(" ", 1)[1]
        if (kind in kinds) != exclude:
            units += s["units"]
            requests += s["requests"]
    return units, requests


def main():
    p = argparse.ArgumentParser()
    p.add_argument("api")
    p.add_argument("proxy")
    p.add_argument("--events", type=int, default=2000)
    a = p.parse_args()
    tenant = "cost-" + uuid.uuid4().hex[:8]
    admin, write = token(tenant, "audit:admin", "bench"), token(tenant, "audit:write", "bench")
    receiver = Receiver()
    for i, m in enumerate(matches()):
        call(a.api, "POST", "/v1/alerts", admin, {"name": f"rule {i}", "match": m,
                                                 "destination": {"type": "webhook", "url": receiver.url(f"/r{i}")}})
    out = subprocess.run([sys.executable, str(GEN), str(a.events), "--tenants", "1", "--seed", "13"],
                         check=True, capture_output=True, text=True).stdout
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    evs = []
    for line in out.splitlines():
        e = json.loads(line)
        e.pop("tenant_id")
        e["occurred_at"] = now
        evs.append(e)
    time.sleep(2)  # the rules' own audit events pass through the stream first
    urllib.request.urlopen(urllib.request.Request(a.proxy + "/__reset", method="POST", data=b""), timeout=10).read()
    for i in range(0, len(evs), 100):
        call(a.api, "POST", "/v1/events", write, {"events": evs[i:i + 100]})
    # Drained: nothing more spent for 5 s.
    last, still = None, 0
    while still < 5:
        time.sleep(1)
        snap = stats(a.proxy)
        still = still + 1 if snap == last else 0
        last = snap
    n = len(evs)
    ingest_units, ingest_requests = sums(last, ALERT_KINDS, exclude=True)
    alert_units, alert_requests = sums(last, ALERT_KINDS)
    deliveries = len(receiver.received())
    print(f"{n} events, 100 rules, {deliveries} notifications delivered "
          f"(default quiet period of 5 minutes: one per rule and burst)")
    print(f"ingest (events, catalogs, emails, tenant): {ingest_units / n:.2f} units/event, "
          f"{ingest_requests / n:.2f} requests/event")
    print(f"alerts (rules, states, markers, deliveries): {alert_units / n:.2f} units/event, "
          f"{alert_requests / n:.2f} requests/event, {alert_units / max(ingest_units, 1e-9):.2f}x the ingest's units")
    for key in sorted(k for k in last if k.split(" ", 1)[1] in ALERT_KINDS):
        s = last[key]
        print(f"  {key:32} {s['requests']:7.0f} requests {s['units']:9.1f} units")


if __name__ == "__main__":
    main()
