#!/usr/bin/env python3
"""Query latency per filter path, beside the raw DynamoDB Local Query of the same page.

Loads N events of one tenant over 90 days through the API (unless --skip-load), then for
each filter path measures the first page and a deep page (page 50) of 10 rows: median
and p99 latency through GET /v1/events, the DynamoDB requests and items read per page
(the API's x-audit-* headers), and the same page as one raw boto3 Query with the same
Limit and start key. Prints one line per path and page.

usage: query_paths.py API_URL [--events N] [--samples S] [--skip-load] [--no-raw] [--json OUT]
  --no-raw: only the API's side (the raw Query names one design's keys; a comparison of
  two designs, tests/bench/query_compare.sh, reads each through its own API instead).
  --json: also writes the figures per path and page to OUT.
"""
import argparse, base64, hashlib, hmac, json, os, statistics, subprocess, sys, time
import http.client, urllib.parse
from concurrent.futures import ThreadPoolExecutor

import boto3

GEN = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "bench", "gen_events.py")
TENANT = "tenant-0"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(scope):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"tenant": TENANT, "sub": "bench", "scope": scope, "exp": int(time.time()) + 36000}).encode())
    sig = hmac.new(os.environ["AUDIT_JWT_SECRET"].encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(sig)}"


class Api:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        self.read = token("audit:read")

    def get(self, path):
        start = time.perf_counter()
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {self.read}"})
        resp = self.conn.getresponse()
        body = json.loads(resp.read())
        elapsed = time.perf_counter() - start
        if resp.status != 200:
            raise SystemExit(f"{path}: {resp.status} {body}")
        return body, elapsed, int(resp.getheader("x-audit-requests")), int(resp.getheader("x-audit-items-read"))


def load(url, n, concurrency=4):
    proc = subprocess.Popen([sys.executable, GEN, str(n), "--tenants", "1", "--days", "89", "--seed", "5",
                             "--end", time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 120))],
                            stdout=subprocess.PIPE, text=True)
    write = token("audit:write")
    u = urllib.parse.urlparse(url)

    def post(batch):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
        body = json.dumps({"events": batch})
        conn.request("POST", "/v1/events", body, {"Authorization": f"Bearer {write}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 202:
            raise SystemExit(f"load failed: {resp.status}")

    def batches():
        batch = []
        for line in proc.stdout:
            e = json.loads(line)
            e.pop("tenant_id")
            batch.append(e)
            if len(batch) == 500:
                yield batch
                batch = []
        if batch:
            yield batch

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, batches()))
    print(f"loaded {n} events in {time.perf_counter() - start:.0f} s", file=sys.stderr)


def term_digest(tag, value):
    """A filter term's digest as the items' `f` set holds it: the first 4 bytes of the
    SHA-256 of its tag, a unit separator and the value."""
    return hashlib.sha256(tag.encode() + b"\x1f" + value.encode()).digest()[:4]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def raw_query(ddb, table, index, pk_attr, pk, lo, hi, limit, start_key, filter_expr=None, names=None, values=None):
    kw = dict(TableName=table, IndexName=index, KeyConditionExpression="#p = :p AND #ts BETWEEN :lo AND :hi",
              ExpressionAttributeNames={"#p": pk_attr, "#ts": "ts", **(names or {})},
              ExpressionAttributeValues={":p": {"S": pk}, ":lo": {"S": lo}, ":hi": {"S": hi}, **(values or {})},
              ScanIndexForward=False, Limit=limit)
    if filter_expr:
        kw["FilterExpression"] = filter_expr
    if start_key:
        kw["ExclusiveStartKey"] = start_key
    start = time.perf_counter()
    if not filter_expr:
        return ddb.query(**kw), time.perf_counter() - start
    # A filtered page, as a careful hand-written client reads it: large Limits until the
    # page is full.
    kw["Limit"] = 1000
    items = []
    while True:
        out = ddb.query(**kw)
        items += out.get("Items", [])
        if len(items) >= limit or "LastEvaluatedKey" not in out:
            return out, time.perf_counter() - start
        kw["ExclusiveStartKey"] = out["LastEvaluatedKey"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--skip-load", action="store_true")
    p.add_argument("--no-raw", action="store_true")
    p.add_argument("--json")
    a = p.parse_args()
    figures = []
    if not a.skip_load:
        load(a.url, a.events)
    api = Api(a.url)
    ddb = boto3.client("dynamodb")
    table = os.environ["AUDIT_TABLE"]
    now = time.time()
    frm = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(now - 80 * 86400))
    lo = frm.replace("Z", "") + ".000000Z"
    hi = "9999-12-31T23:59:59.999999Z#\U0010ffff"
    # One path each: (label, query string, index, pk attr, pk value)
    paths = [
        ("time", f"from={frm}", "by_time", "gt", f"{TENANT}#0"),
        ("actor", f"from={frm}&actor=u-0-1", "by_actor", "ga", f"{TENANT}#0#u-0-1"),
        ("action", f"from={frm}&action=auth.login", "by_action", "gc", f"{TENANT}#0#auth.login"),
    ]
    # A resource id that exists: take one from the first page.
    first, *_ = api.get(f"/v1/events?from={frm}&limit=1")
    rid = first["items"][0]["resource"]["id"]
    paths.append(("resource", f"from={frm}&resource_id={rid}", "by_resource", "gr", f"{TENANT}#0#{rid}"))
    paths.append(("time+filter", f"from={frm}&outcome=failure", "by_time", "gt", f"{TENANT}#0"))
    for label, q, index, pk_attr, pk in paths:
        for page_no in (1, 50):
            cursor, raw_start = None, None
            if page_no > 1:
                body = {"next_cursor": None}
                for _ in range(page_no - 1):
                    path = f"/v1/events?{q}&limit=10" + (f"&cursor={cursor}" if cursor else "")
                    body, *_ = api.get(path)
                    cursor = body["next_cursor"]
                    if cursor is None:
                        break
                if cursor is None:
                    print(f"{label} page {page_no}: fewer pages than that", file=sys.stderr)
                    continue
                # The raw side starts after the same item: the 10*(page-1)-th of the index.
                last = body["items"][-1]
                raw_start = {pk_attr: {"S": pk}, "ts": {"S": f"{last['occurred_at']}#{last['id']}"},
                             "pk": {"S": f"EV#{TENANT}#{last['id']}"}, "sk": {"S": "EV"}}
            path = f"/v1/events?{q}&limit=10" + (f"&cursor={cursor}" if cursor else "")
            ours, raw, reqs, ratio = [], [], [], []
            fexpr = names = values = None
            if label == "time+filter":
                # The index holds no outcome, only the filter terms' digests (f): the
                # same test a careful client of this design writes (docs/design.md).
                fexpr, names, values = "contains(#f, :o)", {"#f": "f"}, {":o": {"B": term_digest("o", "failure")}}
            for _ in range(a.samples):
                body, t, r, read = api.get(path)
                ours.append(t)
                reqs.append(r)
                ratio.append(read / max(1, len(body["items"])))
                if not a.no_raw:
                    out, rt = raw_query(ddb, table, index, pk_attr, pk, lo, hi, 11, raw_start, fexpr, names, values)
                    raw.append(rt)
            mo = statistics.median(ours)
            figures.append({"path": label, "page": page_no, "median_ms": mo * 1000, "p99_ms": pct(ours, 99) * 1000,
                            "requests": statistics.median(reqs), "items_read_per_item": statistics.median(ratio)})
            if a.no_raw:
                print(f"query_paths: {label:12s} page {page_no:2d}: median {mo*1000:6.1f} ms p99 {pct(ours, 99)*1000:6.1f} ms | "
                      f"requests/page {statistics.median(reqs):.0f} | items read/returned {statistics.median(ratio):.2f}")
                continue
            mr = statistics.median(raw)
            print(f"query_paths: {label:12s} page {page_no:2d}: ours median {mo*1000:6.1f} ms p99 {pct(ours, 99)*1000:6.1f} ms | "
                  f"raw Query median {mr*1000:6.1f} ms p99 {pct(raw, 99)*1000:6.1f} ms | overhead {100*(mo/mr-1):+5.0f} % | "
                  f"requests/page {statistics.median(reqs):.0f} | items read/returned {statistics.median(ratio):.2f}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(figures, f)


if __name__ == "__main__":
    main()
