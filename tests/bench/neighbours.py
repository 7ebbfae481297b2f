#!/usr/bin/env python3
"""A quiet tenant's alerts and export, alone and beside a hostile tenant (issue 20).

Phase 1 (alone): the quiet tenant has one rule (no quiet period) to a receiver that
answers at once, posts one matching event a second for S seconds, and asks for one export
of its events; its alert delays (POST sent to webhook arrival) and its export's wait
(request to `running`, and to `succeeded`) are measured.
Phase 2 (beside): the same, while the hostile tenant, with 100 rules without a quiet
period on its own action pointed at a receiver that answers 500 after 2 s, posts ten
batches of 500 matching events (5,000 events, 500,000 matches) and asks for 50 exports of
its whole range. Also counted: the POSTs the hostile receiver got, against what the
documented rates allow (600 notifications a minute per tenant, and a paused destination
gets one probe per pause).

usage: neighbours.py API_URL [--seconds S] [--rules R] [--batches B] [--json OUT]
(--rules and --batches scale the hostile tenant down for smoke runs: 100 and 10)
(environment: the local stack's, from infra/local/lib.sh start_stack)
"""
import argparse, http.client, json, pathlib, statistics, sys, threading, time, urllib.parse, uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "alerts")]
from local_app import token  # noqa: E402
from receiver import Receiver  # noqa: E402


class Client:
    """One tenant's connection and tokens."""

    def __init__(self, url, tenant):
        self.url, self.tenant = urllib.parse.urlparse(url), tenant
        self.conn = None
        self.tokens = {s: token(tenant, f"audit:{s}", "bench") for s in ("admin", "write", "export")}

    def call(self, method, path, scope, body=None):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=120)
                headers = {"Authorization": f"Bearer {self.tokens[scope]}", "Content-Type": "application/json"}
                self.conn.request(method, path, json.dumps(body) if body is not None else None, headers)
                resp = self.conn.getresponse()
                return resp.status, json.loads(resp.read() or b"null")
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise

    def rule(self, url, action, name):
        status, rule = self.call("POST", "/v1/alerts", "admin", {
            "name": name, "match": {"action": action}, "quiet_minutes": 0,
            "destination": {"type": "webhook", "url": url}})
        assert status == 201, (status, rule)
        return rule

    def post(self, events):
        status, data = self.call("POST", "/v1/events", "write", {"events": events})
        assert status == 202, (status, data)

    def export(self):
        status, job = self.call("POST", "/v1/exports", "export", {"from": "2020-01-01T00:00:00Z", "format": "csv"})
        return status, job


def event(action, i):
    return {"id": f"{action}-{i}-{uuid.uuid4().hex[:8]}", "action": action,
            "actor": {"type": "service", "id": "bench"}, "resource": {"type": "job", "id": f"j-{i}"}}


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, -(-len(v) * p // 100) - 1))] if v else None


def watch_export(url, tenant, out):
    """Asks for the quiet tenant's export and watches it from then on: seconds to
    `running` (or later) and to its end."""
    client = Client(url, tenant)
    asked = time.time()
    status, job = client.export()
    assert status == 202, (status, job)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status, view = client.call("GET", f"/v1/exports/{job['id']}", "export")
        if "started" not in out and view["status"] in ("running", "succeeded", "failed"):
            out["started"] = time.time() - asked
        if view["status"] in ("succeeded", "failed"):
            out["done"], out["status"] = time.time() - asked, view["status"]
            return
        time.sleep(0.25)


def fmt(v, digits=2):
    return "none" if v is None else f"{v:.{digits}f}"


def quiet_phase(url, seconds, receiver, label):
    """The quiet tenant: one event a second for `seconds`, one export; its figures."""
    quiet = Client(url, f"bench-quiet-{uuid.uuid4().hex[:8]}")
    quiet.rule(receiver.url(f"/quiet-{label}"), "quiet.fire", "quiet")
    time.sleep(1.5)  # the rules cache
    sent = {}
    export = {}
    start = time.time()
    for i in range(int(seconds)):
        pause = start + i - time.time()
        if pause > 0:
            time.sleep(pause)
        e = event("quiet.fire", i)
        sent[e["id"]] = time.time()
        quiet.post([e])
        if i == 2:
            watcher = threading.Thread(target=watch_export, args=(url, quiet.tenant, export), daemon=True)
            watcher.start()
    deadline = time.monotonic() + 60
    while len(receiver.received(f"/quiet-{label}")) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.2)
    delays = []
    for d in receiver.received(f"/quiet-{label}"):
        # A notification names the first 10 events it stands for (more when folded).
        for event_id in json.loads(d.body)["data"]["event_ids"]:
            if event_id in sent:
                delays.append(d.at - sent.pop(event_id))
    watcher.join(600)
    started, finished = export.get("started"), export.get("done")
    return {"events": len(delays) + len(sent), "delivered": len(delays),
            "alert_delay_s": {"p50": statistics.median(delays) if delays else None, "p99": pct(delays, 99),
                              "max": max(delays) if delays else None},
            "export_started_s": started, "export_done_s": finished}


def hostile(url, receiver, stop, out, rules, batches):
    h = Client(url, f"bench-hostile-{uuid.uuid4().hex[:8]}")
    receiver.answer("/hostile", status=500, delay=2)
    for i in range(rules):
        h.rule(receiver.url("/hostile"), "hostile.fire", f"flood {i}")
    time.sleep(1.5)
    out["started"] = time.time()
    for b in range(batches):
        h.post([event("hostile.fire", b * 500 + i) for i in range(500)])
    exports = [h.export()[0] for _ in range(50)]
    out["exports"] = {str(s): exports.count(s) for s in set(exports)}
    out["posted"] = time.time()
    stop.wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rules", type=int, default=100)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--json")
    a = p.parse_args()
    receiver = Receiver()

    alone = quiet_phase(a.url, a.seconds, receiver, "alone")
    stop, h = threading.Event(), {}
    flood = threading.Thread(target=hostile, args=(a.url, receiver, stop, h, a.rules, a.batches), daemon=True)
    flood.start()
    while "posted" not in h and flood.is_alive():
        time.sleep(0.5)
    beside = quiet_phase(a.url, a.seconds, receiver, "beside")
    stop.set()
    elapsed = time.time() - h["started"]
    posts = len(receiver.received("/hostile"))
    receiver.close()

    # 600 a minute, plus a first minute's burst; and a failing destination pauses after 5.
    allowed = 600 + 600 * elapsed / 60
    figures = {"alone": alone, "beside": beside,
               "hostile": {"matches": 500 * a.batches * a.rules, "exports": h.get("exports"), "seconds": round(elapsed, 1),
                           "outbound_posts": posts, "rate_allows": int(allowed)}}
    for name, f in (("alone", alone), ("beside the hostile tenant", beside)):
        d = f["alert_delay_s"]
        print(f"quiet tenant {name}: {f['delivered']} of {f['events']} alerts, delay p50 {fmt(d['p50'])} s, "
              f"p99 {fmt(d['p99'])} s, max {fmt(d['max'])} s; export started after "
              f"{fmt(f['export_started_s'], 1)} s, done after {fmt(f['export_done_s'], 1)} s")
    print(f"hostile tenant: {500 * a.batches * a.rules:,} matches over {elapsed:.0f} s, {posts} outbound POSTs "
          f"(its rates allow {int(allowed)}; a paused destination gets a probe per pause); exports {h.get('exports')}")
    p99 = beside["alert_delay_s"]["p99"]
    print(f"targets: p99 < 5 s {'met' if p99 is not None and p99 < 5 else 'MISSED'}; "
          f"export started < 60 s {'met' if (beside['export_started_s'] or 1e9) < 60 else 'MISSED'}; "
          f"POSTs within the rates {'met' if posts <= allowed else 'MISSED'}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
