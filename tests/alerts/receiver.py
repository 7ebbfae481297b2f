"""A webhook receiver for the alert tests and the latency benchmark: a threaded
`http.server` on a free loopback port that records every request (method, path, headers,
raw body, arrival time) and answers each path as told (a status, a delay, headers)."""
import http.server
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Received:
    method: str
    path: str
    # Lowercased names; the raw pairs too, for a header sent twice.
    headers: dict
    raw_headers: list
    body: bytes
    # time.time() when the request line and headers had arrived.
    at: float


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0
    headers: dict = field(default_factory=dict)
    # How many requests it answers before the path answers 200 at once again (None: all).
    times: int = None
    # Set: each request waits for it before answering (a receiver held until the test says).
    gate: threading.Event = None


class Receiver:
    def __init__(self):
        self._received = []
        self._answers = {}
        self._changed = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # Keep-alive, as a real receiver behind a load balancer would offer.
            protocol_version = "HTTP/1.1"

            def handle_one(self):
                at = time.time()
                body = self._body()
                pairs = [(k.lower(), v) for k, v in self.headers.items()]
                receiver._record(Received(self.command, self.path, dict(pairs), pairs, body, at))
                answer = receiver._take_answer(self.path.split("?")[0])
                if answer.gate is not None:
                    answer.gate.wait(30)
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def _body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = handle_one

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path, status=200, delay=0.0, headers=None, times=None):
        """How `path` answers from now on (default: 200 at once); with `times`, only the
        next `times` requests, then 200 at once again."""
        with self._changed:
            self._answers[path] = Answer(status, delay, headers or {}, times)

    def hold(self, path, status):
        """Requests to `path` wait until `release(path)`, then answer `status`."""
        with self._changed:
            self._answers[path] = Answer(status, gate=threading.Event())

    def release(self, path):
        with self._changed:
            answer = self._answers.get(path)
        if answer is not None and answer.gate is not None:
            answer.gate.set()

    def _take_answer(self, path):
        with self._changed:
            answer = self._answers.get(path, Answer())
            if answer.times is not None:
                answer.times -= 1
                if answer.times <= 0:
                    self._answers[path] = Answer()
            return answer

    def _record(self, r):
        with self._changed:
            self._received.append(r)
            self._changed.notify_all()

    def received(self, path=None):
        """What reached `path` (its query aside), or anything."""
        with self._changed:
            return [r for r in self._received if path is None or r.path.split("?")[0] == path]

    def wait(self, n, path=None, timeout=20.0):
        """The requests to `path` once there are at least `n` (polled up to `timeout` s)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                got = [r for r in self._received if path is None or r.path.split("?")[0] == path]
                left = deadline - time.monotonic()
                if len(got) >= n or left <= 0:
                    break
                self._changed.wait(left)
        assert len(got) >= n, f"{path or 'receiver'}: {len(got)} of {n} requests within {timeout} s"
        return got
