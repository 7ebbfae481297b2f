"""The console in a real browser: Debian's Chromium driven by Playwright, against the
local runner (`audit-local`) on the private stack that `./infra/local/test` started, with
one tenant of seeded events."""
import http.server
import json
import os
import pathlib
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import local_app  # noqa: E402
from local_app import JWT_HEADER  # noqa: E402
CHROMIUM = os.environ.get("AUDIT_TEST_CHROMIUM", "/usr/bin/chromium")
# The flags that work on these machines: no sandbox as root, no GPU, and no background
# connections (the closed network refuses them).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Set to docs/console to refresh the README's screenshots.
SHOTS = os.environ.get("AUDIT_CONSOLE_SCREENSHOTS")
XSS = '<img src=x onerror="window.__xss=1">'


def token(tenant, scope="audit:read audit:export", ttl=3600):
    """An HS256 JWT as the API expects (contract section 2), signed here with the stack's secret."""
    return local_app.token(tenant, scope, "console-test", ttl)


class Api:
    """The API as the test reads it, to compare with what the page shows."""

    def __init__(self, base, tok):
        self.base, self.token = base, tok

    def call(self, method, path, params=None, body=None):
        qs = "?" + urllib.parse.urlencode(params, doseq=True) if params else ""
        req = urllib.request.Request(self.base + path + qs, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path}{qs}: {e.code} {e.read()[:300]!r}") from None

    def events(self, **filters):
        return self.call("GET", "/v1/events", filters)

    def ids(self, **filters):
        return [e["id"] for e in self.events(**filters)["items"]]

    def all_ids(self, **filters):
        out, cursor = [], None
        while True:
            page = self.events(**filters, limit=100, **({"cursor": cursor} if cursor else {}))
            out += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                return out

    def count(self, **filters):
        return self.call("GET", "/v1/events/count", filters)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1_000_000:06d}Z"


ACTORS = [
    {"type": "member", "id": "u-ada", "name": "Ada Lovelace", "email": "ada@example.com"},
    {"type": "member", "id": "u-grace", "name": "Grace Hopper", "email": "Grace@Example.com"},
    {"type": "member", "id": "u-linus", "name": "Linus Torvalds", "email": "linus@example.org"},
    {"type": "service", "id": "svc-ci", "name": "CI pipeline"},
    {"type": "api_key", "id": "key-42", "name": "Deploy key"},
]
ACTIONS = ["auth.login", "channel.create", "auth.login", "channel.update", "api_key.create", "auth.logout",
           "member.invite", "channel.delete", "auth.mfa_challenge", "api_key.delete", "workspace.update"]
WORKSPACES = [{"id": "ws-eu", "name": "Acme EU"}, {"id": "ws-us", "name": "Acme US"}]


def seed_events(now):
    """130 events: most in the last week (every 100 minutes), some up to 4 weeks back and a
    few two months back, never near a preset's boundary; one hostile event."""
    ages = [7 * 60 + i * 6000 for i in range(90)] + [8 * 86400 + i * 60_000 for i in range(30)] \
        + [35 * 86400 + i * 200_000 for i in range(10)]
    events = []
    for i, age in enumerate(ages):
        action = ACTIONS[i % len(ACTIONS)]
        kind = action.split(".")[0]
        e = {
            "id": f"evt-{i:04d}",
            "occurred_at": iso(now - age),
            "action": action,
            "outcome": "failure" if (action.startswith("auth.") and i % 4 == 0) or i % 13 == 0 else "success",
            "actor": ACTORS[(i * 7) % len(ACTORS)],
            "resource": {"type": "channel" if kind in ("channel", "auth") else kind, "id": f"{kind}-{i % 6}",
                         "name": f"{kind} {i % 6}"},
            "workspace": WORKSPACES[i % 2],
            "source": {"ip": f"203.0.113.{i % 250}", "user_agent": "Mozilla/5.0 (console test)"},
            "description": f"{ACTORS[(i * 7) % len(ACTORS)]['name']} did {action} #{i}",
        }
        if action.endswith(".update"):
            e["changes"] = [{"field": "name", "old": f"old-{i}", "new": f"new-{i}"},
                            {"field": "settings", "old": {"public": False}, "new": {"public": True, "n": i}}]
            e["metadata"] = {"request": {"path": f"/api/{kind}s/{i}", "method": "PATCH"}}
        events.append(e)
    events.append({
        "id": "evt-xss",
        "occurred_at": iso(now - 3 * 60),
        "action": "channel.update",
        "actor": {"type": "member", "id": "u-mallory", "name": XSS, "email": "mallory@example.com"},
        "resource": {"type": "channel", "id": "ch-x", "name": '<svg onload="window.__xss=2">'},
        "workspace": {"id": "ws-eu", "name": '<a href="javascript:window.__xss=3">Acme</a>'},
        "description": f'{XSS} <a href="javascript:window.__xss=4">click me</a>',
        "changes": [{"field": "topic", "old": "<b>x</b>", "new": "javascript:window.__xss=5"}],
        "metadata": {"link": "javascript:window.__xss=6", "html": "<script>window.__xss=7</script>"},
    })
    return events


class Embedder:
    """A product's page on another origin than the API, embedding the component as
    docs/console.md shows: served at `allowed` (an origin the API allows) and at `other`
    (the same server under another name: an origin it does not)."""

    def __init__(self):
        self.port = local_app.free_port()
        self.allowed = f"http://127.0.0.1:{self.port}"
        self.other = f"http://localhost:{self.port}"
        self.api = None

    def page(self):
        return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Product</title>'
                f'<script type="module" src="{self.api}/console/audit-log-viewer.js"></script></head>'
                f'<body><h1>Product settings</h1><audit-log-viewer api="{self.api}"></audit-log-viewer>'
                f'</body></html>').encode()

    def serve(self):
        embedder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = embedder.page()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture(scope="session")
def embedder():
    return Embedder()


@pytest.fixture(scope="session")
def app(embedder):
    """The local runner (`audit-local`) on a free port, as `./infra/local/run` starts it,
    allowing the embedder's first origin (as the template's CorsAllowedOrigins would)."""
    with local_app.audit_local("console-test-app.log", AUDIT_CORS_ORIGINS=embedder.allowed) as base:
        embedder.api = base
        server = embedder.serve()
        try:
            yield base
        finally:
            server.shutdown()


@pytest.fixture(scope="session")
def tenant(app):
    """A tenant of its own, seeded through POST /v1/events."""
    name = f"console-{secrets.token_hex(4)}"
    events = seed_events(time.time())
    writer = Api(app, token(name, "audit:write"))
    result = writer.call("POST", "/v1/events", body={"events": events})
    assert all(r["status"] == "created" for r in result["results"]), result
    return {"name": name, "token": token(name), "events": {e["id"]: e for e in events}}


@pytest.fixture(scope="session")
def api(app, tenant):
    return Api(app, tenant["token"])


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


GUARD = """
window.__csp = [];
window.__xss = 0;
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture()
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                              locale="en-US", timezone_id="Europe/Paris")
    ctx.add_init_script(GUARD)
    yield ctx
    ctx.close()


@pytest.fixture()
def page(context):
    """A page that fails the test on an uncaught error, a dialog, or a blocked resource."""
    pg = context.new_page()
    problems = []
    urls = []
    pg.on("request", lambda r: urls.append(r.url))
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.set_default_timeout(10_000)
    yield pg
    if not pg.is_closed():
        problems += [f"CSP: {v}" for v in pg.evaluate("window.__csp || []")]
        assert pg.evaluate("window.__xss") == 0, "injected code ran"
        assert pg.evaluate("localStorage.length + sessionStorage.length") == 0, "the page stored something"
    # No token rides in a URL (the /console fragment never leaves the browser).
    assert not [u for u in urls if JWT_HEADER in u], "a token went into a URL"
    assert not problems, problems


@pytest.fixture()
def shot(tmp_path):
    def save(pg, name, full_page=True):
        folder = pathlib.Path(SHOTS) if SHOTS else tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)
    return save
