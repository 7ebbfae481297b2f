#!/usr/bin/env python3
"""End-to-end HTTP ingest beside a plain boto3 batch_writer, on the same DynamoDB Local.

Both sides write the same events with the same concurrency into the same table: ours
through POST /v1/events (validation, hashing, conditional puts, catalogs), the reference
as plain BatchWriteItem of items of the same shape (same keys and index attributes, so
DynamoDB Local maintains the same GSIs). Runs alternate; the medians and their ratio are
printed.

usage: ingest_e2e.py API_URL [--events N] [--concurrency C] [--runs R]
(environment: the local stack's, from infra/local/lib.sh start_stack)
"""
import argparse, base64, hashlib, hmac, json, os, statistics, subprocess, sys, time
import http.client, urllib.parse
from concurrent.futures import ThreadPoolExecutor

import boto3

GEN = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "bench", "gen_events.py")


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(tenant):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"tenant": tenant, "sub": "bench", "scope": "audit:write", "exp": int(time.time()) + 3600}).encode())
    sig = hmac.new(os.environ["AUDIT_JWT_SECRET"].encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(sig)}"


def batches(events, size=500):
    by_tenant = {}
    for e in events:
        by_tenant.setdefault(e["tenant_id"], []).append(e)
    for tenant, evs in by_tenant.items():
        for i in range(0, len(evs), size):
            yield tenant, evs[i:i + size]


def ours(url, events, concurrency):
    u = urllib.parse.urlparse(url)
    work = list(batches(events))

    def post(job):
        tenant, evs = job
        body = json.dumps({"events": [{k: v for k, v in e.items() if k != "tenant_id"} for e in evs]})
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        conn.request("POST", "/v1/events", body, {"Authorization": f"Bearer {token(tenant)}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        data = json.loads(resp.read())
        conn.close()
        bad = [r for r in data.get("results", []) if r["status"] != "created"]
        if resp.status != 202 or bad:
            raise SystemExit(f"ingest failed: {resp.status} {bad[:2]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, work))
    return len(events) / (time.perf_counter() - start)


def item(e):
        t, i, ts = "ref-" + e["tenant_id"], e["id"], e["occurred_at"]
        res = e.get("resource", {})
        it = {"pk": f"EV#{t}#{i}", "sk": "EV", "ts": f"{ts}#{i}", "gt": f"{t}#0",
              "ga": f"{t}#0#{e['actor']['id']}", "gc": f"{t}#0#{e['action']}",
              "doc": json.dumps(e, separators=(",", ":"), sort_keys=True), "tenant_id": t, "id": i}
        if res.get("id"):
            it["gr"] = f"{t}#0#{res['id']}"
        return it


def reference(table, events, concurrency):
    """boto3's batch_writer, items shaped like ours (keys, index attributes, doc)."""
    chunks = [events[k::concurrency] for k in range(concurrency)]

    def load(chunk):
        t = boto3.resource("dynamodb").Table(table)
        with t.batch_writer() as w:
            for e in chunk:
                w.put_item(Item=item(e))

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(load, chunks))
    return len(events) / (time.perf_counter() - start)


def conditional(table, events, threads=32):
    """boto3 put_item with attribute_not_exists(pk), one per event: the write idempotency
    needs (BatchWriteItem cannot carry a condition), without anything else of ours."""
    t = boto3.resource("dynamodb").Table(table)

    def put(e):
        it = item(e)
        it["pk"] = "C" + it["pk"]
        t.put_item(Item=it, ConditionExpression="attribute_not_exists(pk)")

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, events))
    return len(events) / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    lines = subprocess.run([sys.executable, GEN, str(a.events), "--seed", "3"], check=True, capture_output=True, text=True).stdout
    base = [json.loads(l) for l in lines.splitlines() if l.strip()]
    mine, ref, cond = [], [], []
    for run in range(a.runs):
        events = [dict(e, id=f"{e['id']}-r{run}") for e in base]
        mine.append(ours(a.url, events, a.concurrency))
        ref.append(reference(os.environ["AUDIT_TABLE"], events, a.concurrency))
        cond.append(conditional(os.environ["AUDIT_TABLE"], events))
        print(f"run {run}: ours {mine[-1]:.0f} events/s, boto3 batch_writer {ref[-1]:.0f} events/s, "
              f"boto3 conditional put_item {cond[-1]:.0f} events/s", file=sys.stderr)
    m, r, c = statistics.median(mine), statistics.median(ref), statistics.median(cond)
    print(f"ingest_e2e: {a.events} events x {a.runs} runs, concurrency {a.concurrency}: "
          f"ours median {m:.0f} events/s, boto3 batch_writer median {r:.0f} events/s (ratio {m / r:.2f}), "
          f"boto3 conditional put_item median {c:.0f} events/s (ratio {m / c:.2f})")


if __name__ == "__main__":
    main()
