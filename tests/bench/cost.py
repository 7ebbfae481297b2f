#!/usr/bin/env python3
"""What an event costs in DynamoDB, and what a console page costs, measured on one design.

`measure`: through the API of a running stack whose DynamoDB traffic passes through
capacity_proxy.py, ingests generated events one per request and then in batches of 100,
and reads the write units DynamoDB Local reported (ConsumedCapacity) per event, split by
the kind of item written (events, catalogs, email directory, tenant registry). Then it
reads console pages (first page and page 50 of 10 rows on each filter path) and records
the read units and DynamoDB requests each page cost. Last it scans the table (a benchmark
may; the service never does) and adds up the bytes stored in the table and in each index
by DynamoDB's item-size rules (attribute names plus values, plus 100 bytes per item and
per index entry; each index keeps the table's and its own keys and what it projects, as
DescribeTable reports), independently of the service's own model
(adapters/aws/src/dynamodb/cost.rs). `report`: prints two such measurements side by side.

usage: cost.py measure API_URL PROXY_URL DYNAMODB_URL --label L --out OUT.json
                      [--single N] [--batched N]
       cost.py report REFERENCE.json CURRENT.json
"""
import argparse, base64, hashlib, hmac, json, os, statistics, subprocess, sys, time
import http.client, urllib.parse
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _shared():
    """`../shared` beside the clone, or beside the main checkout when this is a git worktree."""
    beside = os.path.join(os.path.dirname(ROOT), "shared")
    if os.path.exists(beside):
        return beside
    common = subprocess.run(["git", "-C", ROOT, "rev-parse", "--path-format=absolute", "--git-common-dir"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return os.path.join(os.path.dirname(os.path.dirname(common)), "shared") if common else beside


GEN = os.path.join(_shared(), "bench", "gen_events.py")
TENANT = "tenant-0"
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(scope):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"tenant": TENANT, "sub": "bench", "scope": scope, "exp": int(time.time()) + 36000}).encode())
    sig = hmac.new(os.environ["AUDIT_JWT_SECRET"].encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(sig)}"


def http_call(url, method, path, body=None, headers=None):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    conn.request(method, path, body, headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data or b"null"), resp


def stats(proxy, reset=False):
    _, body, _ = http_call(proxy, "POST" if reset else "GET", "/__reset" if reset else "/__stats", b"" if reset else None)
    return body


def events(n, seed):
    end = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 120))
    out = subprocess.run([sys.executable, GEN, str(n), "--tenants", "1", "--days", "89", "--seed", str(seed), "--end", end],
                         check=True, capture_output=True, text=True).stdout
    evs = []
    for line in out.splitlines():
        e = json.loads(line)
        e.pop("tenant_id")
        evs.append(e)
    return evs


def ingest(api, evs, per_request, concurrency=4):
    write = token("audit:write")
    chunks = [evs[i:i + per_request] for i in range(0, len(evs), per_request)]

    def post(chunk):
        body = json.dumps(chunk[0] if per_request == 1 else {"events": chunk})
        status, answer, _ = http_call(api, "POST", "/v1/events", body,
                                      {"Authorization": f"Bearer {write}", "Content-Type": "application/json"})
        created = [r for r in answer.get("results", []) if r["status"] == "created"]
        if status != 202 or len(created) != len(chunk):
            raise SystemExit(f"ingest failed: {status} {answer}")

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, chunks))


def write_units(snapshot, n):
    """Write units per event, in all and by kind of item."""
    by_kind = {}
    for key, s in snapshot.items():
        op, kind = key.split(" ", 1)
        if op in WRITES:
            k = by_kind.setdefault(kind, {"units": 0.0, "requests": 0})
            k["units"] += s["units"]
            k["requests"] += s["requests"]
    total = sum(k["units"] for k in by_kind.values())
    return {"per_event": total / n, "by_kind": {k: {"units_per_event": v["units"] / n, "requests_per_event": v["requests"] / n}
                                                for k, v in sorted(by_kind.items())}}


def page_cost(api, proxy, read, q, page_no):
    """(read units, DynamoDB requests, items) of page `page_no` of query `q`."""
    cursor = None
    for _ in range(page_no - 1):
        _, body, _ = http_call(api, "GET", f"/v1/events?{q}&limit=10" + (f"&cursor={cursor}" if cursor else ""),
                               headers={"Authorization": f"Bearer {read}"})
        cursor = body["next_cursor"]
        if cursor is None:
            return None
    stats(proxy, reset=True)
    status, body, _ = http_call(api, "GET", f"/v1/events?{q}&limit=10" + (f"&cursor={cursor}" if cursor else ""),
                                headers={"Authorization": f"Bearer {read}"})
    if status != 200:
        raise SystemExit(f"{q}: {status} {body}")
    snap = stats(proxy)
    units = sum(s["units"] for k, s in snap.items() if k.split(" ")[0] not in WRITES)
    requests = sum(s["requests"] for k, s in snap.items() if k.split(" ")[0] not in WRITES)
    return {"rcu": units, "requests": requests, "items": len(body["items"])}


def value_size(v):
    """DynamoDB's size of one attribute value (developer guide, "Item sizes and formats")."""
    (t, x), = v.items()
    if t == "S":
        return len(x.encode())
    if t == "B":
        return len(x)
    if t == "N":
        digits = x.split("e")[0].split("E")[0].replace("-", "").replace(".", "").strip("0")
        return (max(len(digits), 1) + 1) // 2 + 1
    if t in ("BOOL", "NULL"):
        return 1
    if t == "SS":
        return sum(len(e.encode()) for e in x)
    if t == "BS":
        return sum(len(e) for e in x)
    if t == "NS":
        return sum(value_size({"N": e}) for e in x)
    if t == "L":
        return 3 + sum(value_size(e) + 1 for e in x)
    if t == "M":
        return 3 + sum(len(k.encode()) + value_size(e) + 1 for k, e in x.items())
    raise ValueError(t)


def stored_bytes(dynamodb, table):
    """Bytes stored by event items (table and each index) and by every other item."""
    import boto3
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb)
    desc = ddb.describe_table(TableName=table)["Table"]
    keys = [k["AttributeName"] for k in desc["KeySchema"]]
    indexes = []
    for g in desc.get("GlobalSecondaryIndexes", []):
        own = [k["AttributeName"] for k in g["KeySchema"]]
        p = g["Projection"]
        kept = None if p["ProjectionType"] == "ALL" else set(keys + own + p.get("NonKeyAttributes", []))
        indexes.append((g["IndexName"], own, kept))
    parts, events, other = {"table": 0}, 0, 0
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            size = lambda names: 100 + sum(len(n.encode()) + value_size(item[n]) for n in names)
            if not item["pk"]["S"].startswith("EV#"):
                other += size(item)
                continue
            events += 1
            parts["table"] += size(item)
            for name, own, kept in indexes:
                if all(k in item for k in own):
                    parts[name] = parts.get(name, 0) + size([n for n in item if kept is None or n in kept])
    return {"events": events, "event_bytes": sum(parts.values()), "parts": parts, "other_bytes": other}


def measure(a):
    api, proxy = a.api, a.proxy
    evs = events(a.single + a.batched, 5)
    canonical = statistics.mean(len(json.dumps({**e, "tenant_id": TENANT}, sort_keys=True, separators=(",", ":")))
                                for e in evs)
    stats(proxy, reset=True)
    ingest(api, evs[:a.single], 1)
    single = write_units(stats(proxy), a.single)
    stats(proxy, reset=True)
    ingest(api, evs[a.single:], 100)
    batched = write_units(stats(proxy), a.batched)
    read = token("audit:read")
    frm = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 80 * 86400))
    _, first, _ = http_call(api, "GET", f"/v1/events?from={frm}&limit=1", headers={"Authorization": f"Bearer {read}"})
    rid = first["items"][0]["resource"]["id"]
    paths = [("time", f"from={frm}"), ("actor", f"from={frm}&actor=u-0-1"), ("action", f"from={frm}&action=auth.login"),
             ("resource", f"from={frm}&resource_id={rid}"), ("time+outcome", f"from={frm}&outcome=failure"),
             ("category", f"from={frm}&action=member.*"), ("q", f"from={frm}&q=member%201")]
    pages = {}
    for label, q in paths:
        for page_no in (1, 50):
            cost = page_cost(api, proxy, read, q, page_no)
            if cost is not None:
                pages[f"{label} page {page_no}"] = cost
    stored = stored_bytes(a.dynamodb, os.environ.get("AUDIT_TABLE", "audit-events"))
    out = {"label": a.label, "events": a.single + a.batched, "canonical_bytes": canonical,
           "single": single, "batched": batched, "pages": pages, "stored": stored}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


def report(a):
    ref, cur = (json.load(open(p)) for p in (a.reference, a.current))
    def row(name, r, c, fmt="{:.2f}"):
        print(f"{name:34s} {fmt.format(r):>14s} {fmt.format(c):>14s}")
    print(f"{'':34s} {ref['label']:>14s} {cur['label']:>14s}")
    row("canonical event (bytes, mean)", ref["canonical_bytes"], cur["canonical_bytes"], "{:.0f}")
    row("WCU/event, one per request", ref["single"]["per_event"], cur["single"]["per_event"])
    row("WCU/event, batches of 100", ref["batched"]["per_event"], cur["batched"]["per_event"])
    for kind in sorted(set(ref["single"]["by_kind"]) | set(cur["single"]["by_kind"])):
        g = lambda m: m["single"]["by_kind"].get(kind, {}).get("units_per_event", 0.0)
        row(f"  one per request: {kind} items", g(ref), g(cur))
    for kind in sorted(set(ref["batched"]["by_kind"]) | set(cur["batched"]["by_kind"])):
        g = lambda m: m["batched"]["by_kind"].get(kind, {}).get("units_per_event", 0.0)
        row(f"  batches: {kind} items", g(ref), g(cur))
    per = lambda m: m["stored"]["event_bytes"] / m["stored"]["events"]
    row("bytes stored/event (table+indexes)", per(ref), per(cur), "{:.0f}")
    row("  x canonical", per(ref) / ref["canonical_bytes"], per(cur) / cur["canonical_bytes"])
    for part in sorted(set(ref["stored"]["parts"]) | set(cur["stored"]["parts"])):
        g = lambda m: m["stored"]["parts"].get(part, 0) / m["stored"]["events"]
        row(f"  {part}", g(ref), g(cur), "{:.0f}")
    row("other items (bytes, all)", ref["stored"]["other_bytes"], cur["stored"]["other_bytes"], "{:.0f}")
    for page in cur["pages"]:
        r, c = ref["pages"].get(page), cur["pages"][page]
        if r is None:
            continue
        print(f"{page + ': RCU / requests':34s} {r['rcu']:>8.1f} / {r['requests']:<3d} {c['rcu']:>8.1f} / {c['requests']:<3d}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("api")
    m.add_argument("proxy")
    m.add_argument("--label", required=True)
    m.add_argument("dynamodb", help="DynamoDB Local itself (the scan is not counted)")
    m.add_argument("--out", required=True)
    m.add_argument("--single", type=int, default=2000)
    m.add_argument("--batched", type=int, default=20000)
    r = sub.add_parser("report")
    r.add_argument("reference")
    r.add_argument("current")
    a = p.parse_args()
    measure(a) if a.cmd == "measure" else report(a)


if __name__ == "__main__":
    main()
