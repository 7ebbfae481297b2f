#!/usr/bin/env python3
"""A loopback proxy in front of DynamoDB Local that measures what the service spends.

Every request is forwarded with `"ReturnConsumedCapacity": "INDEXES"` added (DynamoDB
Local does not check signatures, and the service ignores the extra answer), and the
capacity units DynamoDB Local reports are summed per operation and per kind of item
(the first segment of the partition key: `EV`, `CA`, `CR`, `EM`, `TENANTS`, the alerts'
`AL`, `AM`, `AD`, ...; a transaction by its first item), with
the number of requests. `GET /__stats` answers the sums as JSON; `POST /__reset` zeroes
them.

usage: capacity_proxy.py PORT UPSTREAM_URL
"""
import http.client
import http.server
import json
import socketserver
import sys
import threading
import urllib.parse

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
CAPACITY_OPS = WRITES | {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}


def kind_of(op, body):
    """The kind of item a request touches, from the first key it names."""
    key = body.get("Item") or body.get("Key")
    if key is None and op in ("BatchWriteItem", "BatchGetItem"):
        for reqs in body.get("RequestItems", {}).values():
            if isinstance(reqs, dict):  # BatchGetItem
                key = (reqs.get("Keys") or [{}])[0]
            elif reqs:
                w = reqs[0]
                key = w.get("PutRequest", {}).get("Item") or w.get("DeleteRequest", {}).get("Key")
            break
    if key is None and op == "TransactWriteItems":
        # Named by its first item: the rule for a rule's change, the applied marker for
        # an alert's commit.
        first = (body.get("TransactItems") or [{}])[0]
        inner = next(iter(first.values()), {})
        key = inner.get("Item") or inner.get("Key")
    if key is None and op == "Query":
        if body.get("IndexName"):
            return "EV"
        values = body.get("ExpressionAttributeValues", {})
        for v in values.values():
            return v.get("S", "?").split("#")[0]
    pk = (key or {}).get("pk", {}).get("S", "?")
    return pk.split("#")[0]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.ops = {}

    def add(self, op, kind, units, table_units, index_units):
        with self.lock:
            s = self.ops.setdefault(f"{op} {kind}", {"requests": 0, "units": 0.0, "table": 0.0, "indexes": {}})
            s["requests"] += 1
            s["units"] += units
            s["table"] += table_units
            for name, u in index_units.items():
                s["indexes"][name] = s["indexes"].get(name, 0.0) + u

    def snapshot(self):
        with self.lock:
            return json.loads(json.dumps(self.ops))


def make_handler(upstream, stats):
    u = urllib.parse.urlparse(upstream)
    local = threading.local()

    def conn():
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
        return local.conn

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _answer(self, code, payload):
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/__stats":
                return self._answer(200, stats.snapshot())
            self._forward()

        def do_POST(self):
            if self.path == "/__reset":
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stats.reset()
                return self._answer(200, {})
            self._forward()

        def _forward(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            op = (self.headers.get("X-Amz-Target") or ".").split(".")[-1]
            body = None
            if op in CAPACITY_OPS and raw:
                body = json.loads(raw)
                body["ReturnConsumedCapacity"] = "INDEXES"
                raw = json.dumps(body).encode()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "host", "connection")}
            headers["Content-Length"] = str(len(raw))
            for attempt in range(2):
                try:
                    c = conn()
                    c.request(self.command, self.path, raw, headers)
                    resp = c.getresponse()
                    data = resp.read()
                    break
                except (http.client.HTTPException, OSError):
                    local.conn = None
                    if attempt:
                        raise
            if body is not None and resp.status == 200:
                out = json.loads(data or b"{}")
                caps = out.get("ConsumedCapacity")
                caps = caps if isinstance(caps, list) else [caps] if caps else []
                kind = kind_of(op, body)
                for cap in caps:
                    idx = {n: v.get("CapacityUnits", 0.0) for n, v in (cap.get("GlobalSecondaryIndexes") or {}).items()}
                    stats.add(op, kind, cap.get("CapacityUnits", 0.0), (cap.get("Table") or {}).get("CapacityUnits", 0.0), idx)
                if not caps:
                    stats.add(op, kind, 0.0, 0.0, {})
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    port, upstream = int(sys.argv[1]), sys.argv[2]
    Server(("127.0.0.1", port), make_handler(upstream, Stats())).serve_forever()


if __name__ == "__main__":
    main()
