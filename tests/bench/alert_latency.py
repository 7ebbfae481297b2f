#!/usr/bin/env python3
"""Delay from `POST /v1/events` to the webhook delivery, on the local stack.

One tenant, one rule matching one action with no quiet period, one receiver on loopback
(tests/alerts/receiver.py). Events go one per request at a steady pace from one
connection; each event's delay is its delivery's arrival at the receiver minus the moment
its POST was sent (same process, same clock). Prints deliveries received, the delay's
median, p90, p99 and max, and the POST round trip's median beside it for scale.

usage: alert_latency.py API_URL [--events N] [--rate R] [--wait S] [--json OUT]
  --rate: events sent per second (default 20); --wait: how long to wait for the last
  deliveries after the last POST (default 30 s); --json: also writes the figures to OUT.
(environment: the local stack's, from infra/local/lib.sh start_stack)
"""
import argparse, http.client, json, os, pathlib, statistics, sys, time, urllib.parse, uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "alerts")]
from local_app import token  # noqa: E402
from receiver import Receiver  # noqa: E402
from standardwebhooks.webhooks import Webhook  # noqa: E402

ACTION = "bench.fire"


class Client:
    def __init__(self, url, tenant):
        u = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        self.admin = token(tenant, "audit:admin", "bench")
        self.writer = token(tenant, "audit:write", "bench")

    def call(self, method, path, tok, body):
        self.conn.request(method, path, json.dumps(body), {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = json.loads(resp.read() or b"null")
        return resp.status, data

    def post(self, event_id):
        status, data = self.call("POST", "/v1/events", self.writer, {
            "id": event_id, "action": ACTION, "actor": {"type": "service", "id": "bench"},
            "resource": {"type": "job", "id": "j-1"}})
        if status != 202 or data["results"][0]["status"] != "created":
            raise SystemExit(f"ingest failed: {status} {data}")


def pct(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[min(len(sorted_values) - 1, max(0, -(-len(sorted_values) * p // 100) - 1))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--wait", type=float, default=30.0)
    p.add_argument("--json")
    a = p.parse_args()

    receiver = Receiver()
    tenant = f"bench-alerts-{uuid.uuid4().hex[:8]}"
    client = Client(a.url, tenant)
    status, rule = client.call("POST", "/v1/alerts", client.admin, {
        "name": "bench", "match": {"action": ACTION}, "quiet_minutes": 0,
        "destination": {"type": "webhook", "url": receiver.url("/bench")}})
    if status != 201:
        raise SystemExit(f"rule not created: {status} {rule}")
    time.sleep(float(os.environ.get("AUDIT_ALERT_RULES_TTL_SECONDS", "1")) + 0.5)
    # A warm-up delivery (connections, the first rules load), not measured.
    client.post(f"warm-{uuid.uuid4().hex[:8]}")
    receiver.wait(1, "/bench", timeout=a.wait)

    sent, round_trips = {}, []
    start = time.perf_counter()
    for i in range(a.events):
        # Open loop: each POST is due at its slot, whatever the previous one took.
        pause = start + i / a.rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        event_id = f"ev-{i:06d}"
        t0, c0 = time.time(), time.perf_counter()
        client.post(event_id)
        round_trips.append(time.perf_counter() - c0)
        sent[event_id] = t0
    deadline = time.monotonic() + a.wait
    while len(receiver.received("/bench")) < a.events + 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # anything sent twice arrives here too
    got = receiver.received("/bench")[1:]
    receiver.close()

    webhook = Webhook(rule["secret"])
    delays, ids, unknown = [], [], 0
    for d in got:
        event_id = webhook.verify(d.body, d.headers)["data"]["events"][0]["id"]
        ids.append(d.headers["webhook-id"])
        if event_id in sent:
            delays.append((d.at - sent[event_id]) * 1000)
        else:
            unknown += 1
    delays.sort()
    figures = {
        "events": a.events, "rate_per_s": a.rate, "delivered": len(delays),
        "duplicates": len(ids) - len(set(ids)), "unexpected": unknown,
        "delay_ms": {"median": statistics.median(delays), "p90": pct(delays, 90), "p99": pct(delays, 99),
                     "max": delays[-1]} if delays else None,
        "post_round_trip_ms": {"median": statistics.median(round_trips) * 1000,
                               "p99": pct(sorted(round_trips), 99) * 1000},
    }
    print(f"alert delivery: {len(delays)} of {a.events} events delivered "
          f"({figures['duplicates']} duplicates, {unknown} unexpected), {a.rate:g} events/s, one per POST")
    if delays:
        d = figures["delay_ms"]
        print(f"  POST sent -> webhook arrival: median {d['median']:7.1f} ms  p90 {d['p90']:7.1f}  "
              f"p99 {d['p99']:7.1f}  max {d['max']:7.1f}")
    r = figures["post_round_trip_ms"]
    print(f"  POST /v1/events round trip:   median {r['median']:7.1f} ms  p99 {r['p99']:7.1f}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)
    if len(delays) != a.events or figures["duplicates"] or unknown:
        sys.exit(1)


if __name__ == "__main__":
    main()
