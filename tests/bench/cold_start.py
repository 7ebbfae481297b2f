#!/usr/bin/env python3
"""Cold starts of the Lambda bootstraps, against a Lambda Runtime API emulator.

Each round starts every bootstrap as Lambda would (a fresh process, the Runtime API's
address in AWS_LAMBDA_RUNTIME_API, the function's settings in its environment), serves it
one event from events/, and records:
  init    process start to its first `GET /runtime/invocation/next`
  first   that event handed over to its response posted (the first invocation)
  peak    the process's peak resident memory (VmHWM) once it answered
  conns   connections the function opened to the local AWS stack during the first
          invocation, per service (0 = it reused the ones opened during init)
The stack's endpoints are reached through counting TCP proxies, so connections opened
during init and during the invocation can be told apart. `minimal` is the reference: a
lambda_runtime function that returns its event, built the same way.

usage: cold_start.py BIN_DIR ROUNDS TOKEN_CMD...  (BIN_DIR holds each binary by its name)
  (the stack's environment exported, as tests/bench/cold_start.sh does)
"""
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Invocation:
    """What the emulator saw of one process: one event handed out, its answer back."""

    def __init__(self, event):
        self.event = json.dumps(event).encode()
        self.request_id = str(uuid.uuid4())
        self.next_at = None
        self.answered_at = None
        self.answer = None
        self.error = None
        self.done = threading.Event()
        # Set once the process has been measured: until then its next `next` waits, as
        # Lambda freezes an idle function.
        self.released = threading.Event()


class Emulator(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A process stopped while its idle `next` was held: expected, not an error."""


class RuntimeApi(BaseHTTPRequestHandler):
    """The Runtime API's routes, for the one invocation of one process (server.current)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        inv = self.server.current
        if self.path != "/2018-06-01/runtime/invocation/next":
            return self._send(404, b"{}")
        if inv.next_at is not None:
            inv.released.wait(60)
            return self._send(410, b"{}")
        inv.next_at = time.perf_counter()
        deadline = int(time.time() * 1000) + 30_000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(inv.event)))
        self.send_header("Lambda-Runtime-Aws-Request-Id", inv.request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
        self.end_headers()
        self.wfile.write(inv.event)

    def do_POST(self):
        inv = self.server.current
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/response"):
            inv.answered_at, inv.answer = time.perf_counter(), body
        else:
            inv.answered_at, inv.error = time.perf_counter(), body or self.path.encode()
        self._send(202, b'{"status":"OK"}')
        inv.done.set()

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Proxies:
    """A counting TCP proxy in front of each local AWS endpoint, on its own event loop."""

    def __init__(self, endpoints):
        self.opened = {name: [] for name in endpoints}
        # (request's first byte, response's last byte) of every exchange, any service: the
        # time a function spent waiting on the stack.
        self.exchanges = []
        self.ports = {}
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(endpoints, ready), daemon=True).start()
        ready.wait()

    def _run(self, endpoints, ready):
        asyncio.set_event_loop(self.loop)

        async def start():
            for name, (host, port) in endpoints.items():
                server = await asyncio.start_server(self._handler(name, host, port), "127.0.0.1", 0)
                self.ports[name] = server.sockets[0].getsockname()[1]

        self.loop.run_until_complete(start())
        ready.set()
        self.loop.run_forever()

    def _handler(self, name, host, port):
        async def pipe(reader, writer, seen):
            try:
                while data := await reader.read(65536):
                    seen()
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader, writer):
            self.opened[name].append(time.perf_counter())
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                writer.close()
                return
            # One exchange: from the client's first bytes after a response (or at all) to
            # the last response bytes before the client sends again.
            current = []

            def request():
                if not current or current[-1][1] is not None:
                    current.append([time.perf_counter(), None])

            def response():
                if current:
                    current[-1][1] = time.perf_counter()

            await asyncio.gather(pipe(reader, up_writer, request), pipe(up_reader, writer, response))
            self.exchanges.extend((a, b) for a, b in current if b is not None)

        return handle

    def opened_between(self, start, end):
        return {n: sum(1 for t in ts if start <= t <= end) for n, ts in self.opened.items()}

    def waited(self, start, end):
        """Seconds within [start, end] when some exchange with the stack was under way."""
        spans = sorted((max(a, start), min(b, end)) for a, b in list(self.exchanges) if b > start and a < end)
        total, reach = 0.0, start
        for a, b in spans:
            if b > reach:
                total += b - max(a, reach)
                reach = b
        return total


def peak_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def load(name):
    with open(os.path.join(ROOT, "events", name), encoding="utf-8") as f:
        return json.load(f)


def with_token(event, token):
    event["headers"]["authorization"] = f"Bearer {token}"
    return event


def fresh_events(body):
    """The sample's events (a batch, or one event) with new ids and times, so every round
    writes new events."""
    for e in body.get("events", [body]):
        e["id"] = f"cold-{uuid.uuid4()}"
        e["occurred_at"] = now_rfc3339()
    return body


def events_for(tokens, tenant):
    """binary -> a function making that round's event (the export worker's names the job
    the export API created in the same round)."""
    def ingest_api(_):
        e = with_token(load("apigw-post-events.json"), tokens["audit:write"])
        e["body"] = json.dumps(fresh_events(json.loads(e["body"])))
        return e

    def ingest_queue(_):
        e = load("sqs-ingest.json")
        for r in e["Records"]:
            body = fresh_events(json.loads(r["body"]))
            body["tenant_id"] = tenant
            r["body"] = json.dumps(body)
        return e

    def export_worker(state):
        e = load("sqs-export.json")
        e["Records"][0]["body"] = json.dumps({"tenant_id": tenant, "id": state["job"]})
        return e

    return {
        "minimal": lambda _: load("schedule-archive.json"),
        "ingest-api": ingest_api,
        "ingest-queue": ingest_queue,
        "query": lambda _: with_token(load("apigw-get-events.json"), tokens["audit:read"]),
        "export-api": lambda _: with_token(load("apigw-post-exports.json"), tokens["audit:export"]),
        "export-worker": export_worker,
        "archive": lambda _: load("schedule-archive.json"),
    }


def run_one(proxies, bootstrap, event, env):
    # A Runtime API of its own per process: a late request of the previous process (its
    # idle `next`, sent as it was stopped) can never be taken for this one's.
    inv = Invocation(event)
    server = Emulator(("127.0.0.1", 0), RuntimeApi)
    server.current = inv
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}"}
    log = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen([bootstrap], env=env, stdout=log, stderr=log)

    # The last process's log of each binary is kept (COLD_START_LOG sets its RUST_LOG).
    kept = os.path.join(ROOT, "target", f"cold_start-{os.path.basename(bootstrap)}.log")

    def keep():
        log.seek(0)
        with open(kept, "wb") as f:
            f.write(log.read())

    def failed(why):
        keep()
        return RuntimeError(f"{bootstrap}: {why} (its log: {kept})")

    try:
        if not inv.done.wait(60):
            raise failed(f"no answer in 60 s (asked for its event: {inv.next_at is not None})")
        peak = peak_kib(proc.pid)
    finally:
        proc.terminate()
        inv.released.set()
        proc.wait(timeout=10)
        server.shutdown()
        server.server_close()
        keep()
    if inv.error is not None or inv.next_at is None:
        raise failed(f"failed: {inv.error!r}")
    answer = json.loads(inv.answer)
    if isinstance(answer, dict) and answer.get("statusCode", 200) >= 300:
        raise failed(f"answered {answer}")
    conns = proxies.opened_between(inv.next_at, inv.answered_at)
    time.sleep(0.05)  # the proxies see the stopped process's connections close
    stack_ms = proxies.waited(start, inv.next_at) * 1000
    return {
        "init_ms": (inv.next_at - start) * 1000,
        "own_init_ms": (inv.next_at - start) * 1000 - stack_ms,
        "first_ms": (inv.answered_at - inv.next_at) * 1000,
        "peak_mib": peak / 1024,
        "conns": conns,
        "answer": inv.answer,
    }


def main():
    bootstraps, rounds = sys.argv[1], int(sys.argv[2])
    tenant = "cold-start"
    tokens = {
        scope: subprocess.run(
            [*sys.argv[3:], "--tenant", tenant, "--sub", "bench", "--scope", scope, "--ttl", "2h"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        for scope in ("audit:write", "audit:read", "audit:export")
    }
    services = {"dynamodb": "DYNAMODB", "s3": "S3", "sqs": "SQS", "secrets": "SECRETS_MANAGER"}
    endpoints = {}
    for name, var in services.items():
        url = os.environ[f"AWS_ENDPOINT_URL_{var}"]
        host, port = url.removeprefix("http://").split(":")
        endpoints[name] = (host, int(port))
    proxies = Proxies(endpoints)
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench", "RUST_LOG": os.environ.get("COLD_START_LOG", "warn"),
    })
    for name, var in services.items():
        env[f"AWS_ENDPOINT_URL_{var}"] = f"http://127.0.0.1:{proxies.ports[name]}"
    makers = events_for(tokens, tenant)
    if os.environ.get("COLD_START_ONLY"):
        only = os.environ["COLD_START_ONLY"].split(",")
        makers = {b: m for b, m in makers.items() if b in only or b == "minimal"}
    results = {b: [] for b in makers}
    for r in range(rounds):
        state = {}
        for binary, make in makers.items():
            out = run_one(proxies, os.path.join(bootstraps, binary), make(state), env)
            if binary == "export-api":
                state["job"] = json.loads(json.loads(out["answer"])["body"])["id"]
            results[binary].append(out)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)

    med = lambda xs: statistics.median(xs)
    own_ref = med([o["own_init_ms"] for o in results["minimal"]])
    print(f"{rounds} rounds; medians. init: process start to the first `next`; own init: init less the time")
    print("spent waiting on the local stack (the secret's read, the table's warm-up); first: the first")
    print("invocation; peak: VmHWM; new conns: most connections opened during a first invocation")
    print("(dynamodb/s3/sqs/secrets)")
    print(f"{'binary':14} {'init ms':>8} {'own init':>9} {'vs minimal':>11} {'first ms':>9} {'peak MiB':>9}  new conns")
    for binary, outs in results.items():
        init = med([o["init_ms"] for o in outs])
        own = med([o["own_init_ms"] for o in outs])
        conns = {n: max(o["conns"][n] for o in outs) for n in services}
        print(f"{binary:14} {init:8.1f} {own:9.1f} {own - own_ref:+10.1f} {med([o['first_ms'] for o in outs]):9.1f} "
              f"{med([o['peak_mib'] for o in outs]):9.1f}  " + "/".join(str(conns[n]) for n in services))


if __name__ == "__main__":
    main()
