"""What the pytest suites that drive the local runner share: starting `audit-local` on a
free port of the private stack `./infra/local/test` started, and tokens as the API
expects them (contract section 2), signed with the stack's secret."""
import base64
import contextlib
import hashlib
import hmac
import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JWT_HEADER = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())


def token(tenant, scope, sub, ttl=3600):
    """An HS256 JWT for `tenant`, signed with `AUDIT_JWT_SECRET`."""
    claims = {"tenant": tenant, "sub": sub, "scope": scope, "exp": int(time.time()) + ttl}
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(os.environ["AUDIT_JWT_SECRET"].encode(), f"{JWT_HEADER}.{body}".encode(), hashlib.sha256).digest()
    return f"{JWT_HEADER}.{body}.{b64(mac)}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def audit_local(log_name, **settings):
    """The local runner (`audit-local`, dev build) on a free port, as `./infra/local/run`
    starts it, with this process's environment and `settings` (variables); yields its base
    URL. Its output goes to `target/{log_name}`."""
    binary = ROOT / "target" / "debug" / "audit-local"
    assert binary.exists(), "build it first: cargo build -p audit-local"
    port = free_port()
    env = {**os.environ, "AUDIT_PORT": str(port), "RUST_LOG": os.environ.get("RUST_LOG", "warn"), **settings}
    with open(ROOT / "target" / log_name, "wb") as log:
        proc = subprocess.Popen([str(binary)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    with urllib.request.urlopen(base + "/healthz", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None:
                        raise AssertionError(f"audit-local exited; see target/{log_name}") from None
                    time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            # moto finishes a stopped runner's long polls of the queues (2 s) as if someone
            # still waited: a message sent meanwhile (the next runner's export) would be
            # taken and hidden for the queue's visibility timeout.
            time.sleep(3)
