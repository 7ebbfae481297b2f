"""<audit-log-viewer> and /console in Chromium: each filter shows what the API answers to
the same query, paging, shared URLs, detail, export download, states, hostile data, and
the 320 px layout."""
import csv
import io
import json
import math
import time
import urllib.parse
import urllib.request

from conftest import XSS, iso, token

V = "audit-log-viewer"


def open_console(page, app, tenant, query="", tok=None):
    page.goto(f"{app}/console{query}#token={tok or tenant['token']}")


def shown(page):
    return page.locator(f"{V} tbody tr[data-event-id]").evaluate_all("rs => rs.map(r => r.dataset.eventId)")


def settled(page):
    return page.locator(f"{V} .results[aria-busy=true]").count() == 0


def expect_rows(page, want, timeout=10):
    """Waits until the table shows exactly `want`, in order."""
    deadline = time.monotonic() + timeout
    while True:
        got = shown(page) if settled(page) else None
        if got == want:
            return
        if time.monotonic() > deadline:
            assert got == want
        time.sleep(0.05)


def expect_text(locator, text, timeout=10):
    deadline = time.monotonic() + timeout
    while text not in (locator.text_content() or ""):
        assert time.monotonic() < deadline, f"{text!r} not in {locator.text_content()!r}"
        time.sleep(0.05)


def expect_no_text(locator, text, timeout=10):
    deadline = time.monotonic() + timeout
    while text in (locator.text_content() or ""):
        assert time.monotonic() < deadline, f"{text!r} still in {locator.text_content()!r}"
        time.sleep(0.05)


def wait_until(check, what, timeout=10):
    """Polls `check`, which must ask the browser (a locator, an evaluate): Playwright's sync
    API takes in the browser's events only during a call, so what it caches (`page.url`)
    stays as it was while this sleeps."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def address(page):
    """The page's address as the page has it now; `page.url` lags until the next call."""
    return page.evaluate("location.href")


def url_params(page):
    return urllib.parse.parse_qs(urllib.parse.urlsplit(address(page)).query)


def week_ago():
    return iso(time.time() - 7 * 86400)


def pager(page, api, limit=25, page_no=1, **filters):
    c = api.count(**filters)
    return f"Page {page_no} of {max(1, math.ceil(c['count'] / limit))} · {c['count']:,} event"


def test_default_view_is_the_last_7_days_newest_first_and_the_token_leaves_the_address_bar(page, app, tenant, api, shot):
    open_console(page, app, tenant)
    want = api.ids(**{"from": week_ago(), "limit": 25})
    expect_rows(page, want)
    assert len(want) == 25 and "token" not in address(page) and "#" not in address(page)
    expect_text(page.locator(f"{V} nav.pager .where"), pager(page, api, **{"from": week_ago()}))
    zone = page.locator(f"{V} header.top .tz").text_content()
    assert "Europe/Paris" in zone
    first = page.locator(f"{V} tbody tr").first.locator("time")
    assert first.get_attribute("title") == tenant["events"][want[0]]["occurred_at"].replace("T", " ").replace("Z", "") + " UTC"
    csp = urllib.request.urlopen(f"{app}/console").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    shot(page, "default")


def test_each_filter_and_their_combination_equal_the_api(page, app, tenant, api, shot):
    open_console(page, app, tenant)
    w = week_ago()
    expect_rows(page, api.ids(**{"from": w, "limit": 25}))
    v = page.locator(V)

    # Operator by name, through the suggestions /v1/actors gives.
    v.locator("input[name=actor]").fill("Ada")
    v.locator(".suggestions button[data-actor-id=u-ada]").click()
    expect_rows(page, api.ids(**{"from": w, "actor": "u-ada", "limit": 25}))
    assert url_params(page)["actor"] == ["u-ada"]
    expect_text(v.locator(".chips"), "Operator: Ada Lovelace")
    # By email (any case), typed and entered: two operators are ORed.
    v.locator("input[name=actor]").fill("grace@example.com")
    v.locator(".suggestions button[data-actor-id=u-grace]").wait_for()
    v.locator("input[name=actor]").press("Enter")
    expect_rows(page, api.ids(**{"from": w, "actor": ["u-ada", "u-grace"], "limit": 25}))
    v.locator(".chips button[aria-label='Remove operator Ada Lovelace']").click()
    v.locator(".chips button[aria-label='Remove operator Grace Hopper']").click()
    # By id, which no suggestion matches.
    v.locator("input[name=actor]").fill("svc-ci")
    v.locator("input[name=actor]").press("Enter")
    expect_rows(page, api.ids(**{"from": w, "actor": "svc-ci", "limit": 25}))
    v.locator(".chips button[aria-label='Remove operator svc-ci']").click()
    expect_rows(page, api.ids(**{"from": w, "limit": 25}))

    # Event types: one action, then a whole category, grouped as /v1/actions lists them.
    v.locator("details.picker summary").click()
    v.locator("details.picker input[value='channel.create']").check()
    expect_rows(page, api.ids(**{"from": w, "action": "channel.create", "limit": 25}))
    v.locator("details.picker input[value='auth.*']").check()
    expect_rows(page, api.ids(**{"from": w, "action": ["channel.create", "auth.*"], "limit": 25}))
    assert v.locator("details.picker input[value='auth.login']").is_disabled()
    v.locator("details.picker input[type=search]").fill("api_key")
    expect_no_text(v.locator("details.picker .groups"), "All of channel")
    expect_text(v.locator("details.picker .groups"), "All of api_key")
    shot(page, "event-types")
    v.locator("details.picker summary").click()
    assert url_params(page)["action"] == ["channel.create", "auth.*"]
    v.locator("button[name=reset]").click()
    expect_rows(page, api.ids(**{"from": w, "limit": 25}))
    assert "action" not in url_params(page)

    # Resource type and id, workspace, outcome, keyword.
    for name, value in [("resource_type", "api_key"), ("resource_id", "channel-3"), ("workspace", "ws-us"), ("q", "grace")]:
        v.locator(f"input[name={name}]").fill(value)
        v.locator(f"input[name={name}]").press("Enter")
        expect_rows(page, api.ids(**{"from": w, name: value, "limit": 25}))
        assert url_params(page)[name] == [value]
        v.locator(f"input[name={name}]").fill("")
        v.locator(f"input[name={name}]").press("Enter")
    v.locator("select[name=outcome]").select_option("failure")
    expect_rows(page, api.ids(**{"from": w, "outcome": "failure", "limit": 25}))
    v.locator("select[name=outcome]").select_option("")

    # Date range presets and a custom range (days in the shown time zone, Europe/Paris).
    for preset, days in [("24h", 1), ("30d", 30), ("90d", 90)]:
        v.locator("select[name=range]").select_option(preset)
        expect_rows(page, api.ids(**{"from": iso(time.time() - days * 86400), "limit": 25}))
        assert url_params(page)["range"] == [preset]
    v.locator("select[name=range]").select_option("custom")
    v.locator("input[name=from_date]").fill(time.strftime("%Y-%m-%d", time.gmtime(time.time() - 20 * 86400)))
    v.locator("input[name=to_date]").fill(time.strftime("%Y-%m-%d", time.gmtime(time.time() - 10 * 86400)))
    v.locator("input[name=to_date]").dispatch_event("change")
    params = url_params(page)
    assert params["range"] == ["custom"] and params["from"][0].endswith(":00:00.000Z")
    expect_rows(page, api.ids(**{"from": params["from"][0], "to": params["to"][0], "limit": 25}))
    assert shown(page), "the custom range holds seeded events"

    # All of them at once.
    v.locator("select[name=range]").select_option("30d")
    v.locator("input[name=actor]").fill("linus@example.org")
    v.locator(".suggestions button[data-actor-id=u-linus]").wait_for()
    v.locator("input[name=actor]").press("Enter")
    v.locator("input[name=workspace]").fill("ws-eu")
    v.locator("select[name=outcome]").select_option("success")
    v.locator("details.picker summary").click()
    v.locator("details.picker input[type=search]").fill("")
    v.locator("details.picker input[value='channel.*']").check()
    v.locator("details.picker summary").click()
    combo = {"actor": "u-linus", "workspace": "ws-eu", "outcome": "success", "action": "channel.*"}
    want = api.ids(**{"from": iso(time.time() - 30 * 86400), **combo, "limit": 25})
    assert want, "the combination matches seeded events"
    expect_rows(page, want)
    shot(page, "filters")
    # The login history preset: auth.* with outcomes.
    v.locator("button[name=reset]").click()
    v.locator("button[name=login-history]").click()
    expect_rows(page, api.ids(**{"from": w, "action": "auth.*", "limit": 25}))
    assert v.locator("button[name=login-history]").get_attribute("aria-pressed") == "true"
    assert v.locator("tbody .badge.failure").count() > 0


def test_paging_forward_and_back_with_page_n_of_m(page, app, tenant, api):
    open_console(page, app, tenant, "?limit=10")
    w = week_ago()
    first = api.events(**{"from": w, "limit": 10})
    second = api.events(**{"from": w, "limit": 10, "cursor": first["next_cursor"]})
    third = api.events(**{"from": w, "limit": 10, "cursor": second["next_cursor"]})
    where = page.locator(f"{V} nav.pager .where")
    expect_rows(page, [e["id"] for e in first["items"]])
    expect_text(where, pager(page, api, limit=10, **{"from": w}))
    assert page.locator(f"{V} button[name=prev]").is_disabled()
    page.locator(f"{V} button[name=next]").click()
    expect_rows(page, [e["id"] for e in second["items"]])
    expect_text(where, pager(page, api, limit=10, page_no=2, **{"from": w}))
    page.locator(f"{V} button[name=next]").click()
    expect_rows(page, [e["id"] for e in third["items"]])
    expect_text(where, "Page 3 of ")
    page.locator(f"{V} button[name=prev]").click()
    page.locator(f"{V} button[name=prev]").click()
    expect_rows(page, [e["id"] for e in first["items"]])
    expect_text(where, "Page 1 of ")
    page.locator(f"{V} select[name=limit]").select_option("50")
    expect_rows(page, api.ids(**{"from": w, "limit": 50}))
    expect_text(where, pager(page, api, limit=50, **{"from": w}))
    assert url_params(page)["limit"] == ["50"]


def test_a_shared_url_restores_the_view(page, app, tenant, api, shot):
    query = "?range=30d&action=auth.*&outcome=failure&limit=10&event=evt-0008"
    open_console(page, app, tenant, query)
    want = api.ids(**{"from": iso(time.time() - 30 * 86400), "action": "auth.*", "outcome": "failure", "limit": 10})
    assert want
    v = page.locator(V)
    expect_text(v.locator("dialog.detail[open] h3"), "auth.mfa_challenge")
    v.locator("dialog.detail button[name=close]").click()
    expect_rows(page, want)
    wait_until(lambda: "event" not in url_params(page), "the closed event leaves the URL")
    assert v.locator("select[name=range]").input_value() == "30d"
    assert v.locator("select[name=outcome]").input_value() == "failure"
    assert v.locator("select[name=limit]").input_value() == "10"
    assert v.locator("button[name=login-history]").get_attribute("aria-pressed") == "true"
    assert url_params(page)["action"] == ["auth.*"]
    # Back and forward walk through views.
    v.locator("select[name=outcome]").select_option("success")
    expect_rows(page, api.ids(**{"from": iso(time.time() - 30 * 86400), "action": "auth.*", "outcome": "success", "limit": 10}))
    page.go_back()
    expect_rows(page, want)


def test_detail_shows_the_whole_event_changes_and_operator_and_copies(page, context, app, tenant, api, shot):
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app)
    open_console(page, app, tenant, "?action=channel.update")
    want = api.ids(**{"from": week_ago(), "action": "channel.update", "limit": 25})
    expect_rows(page, want)
    target = next(i for i in want if i != "evt-xss")
    row = page.locator(f"{V} tbody tr[data-event-id='{target}']")
    row.focus()
    page.keyboard.press("Enter")
    dialog = page.locator(f"{V} dialog.detail[open]")
    expect_text(dialog.locator("pre.json"), target)
    stored = api.call("GET", f"/v1/events/{target}")
    assert json.loads(dialog.locator("pre.json").text_content()) == stored
    assert url_params(page)["event"] == [target]
    changes = dialog.locator("table.changes tbody tr")
    assert changes.count() == 2
    assert changes.nth(0).locator("td.old").text_content() == json.dumps(stored["changes"][0]["old"])
    assert json.loads(changes.nth(1).locator("td.new").text_content()) == stored["changes"][1]["new"]
    card = dialog.locator(".operator")
    expect_text(card, stored["actor"]["name"])
    actor = next(a for a in api.call("GET", "/v1/actors", {"q": stored["actor"]["name"]})["items"] if a["id"] == stored["actor"]["id"])
    assert actor["last_seen"]
    wait_until(lambda: "…" not in card.text_content(), "last seen is filled in")
    assert "not in the directory" not in card.text_content()
    dialog.locator("button[name=copy]").click()
    expect_text(dialog.locator(".json-head [role=status]"), "Copied")
    assert json.loads(page.evaluate("navigator.clipboard.readText()")) == stored
    shot(page, "detail")
    page.keyboard.press("Escape")
    assert page.locator(f"{V} dialog.detail[open]").count() == 0
    wait_until(lambda: "event" not in url_params(page), "the closed event leaves the URL")
    # Lookup by id, and an unknown id.
    page.locator(f"{V} input[name=event_id]").fill("evt-0001")
    page.locator(f"{V} input[name=event_id]").press("Enter")
    expect_text(dialog.locator("pre.json"), '"id": "evt-0001"')
    dialog.locator("button[name=close]").click()
    page.locator(f"{V} input[name=event_id]").fill("no-such-event")
    page.locator(f"{V} input[name=event_id]").press("Enter")
    expect_text(dialog, "There is no event with the id")


def test_an_export_is_downloaded_through_the_page_link_and_parsed(page, app, tenant, api, shot):
    open_console(page, app, tenant, "?range=30d&workspace=ws-eu")
    want = api.all_ids(**{"from": iso(time.time() - 30 * 86400), "workspace": "ws-eu"})
    expect_rows(page, want[:25])
    v = page.locator(V)
    v.locator("button[name=export]").click()
    link = v.locator(".exports .current a.download")
    link.wait_for(timeout=30_000)
    expect_text(v.locator(".exports .current .rows"), f"{len(want)} rows")
    expect_text(v.locator(".exports .current .valid"), "Link valid until")
    with page.expect_download() as d:
        link.click()
    text = open(d.value.path(), encoding="utf-8", newline="").read()
    rows = list(csv.DictReader(io.StringIO(text), strict=True))
    assert [r["id"] for r in rows] == want
    xss = next(r for r in rows if r["id"] == "evt-xss")
    assert xss["actor_name"] == XSS
    shot(page, "export")
    # JSON lines, listed among the recent exports too.
    v.locator("select[name=format]").select_option("jsonl")
    v.locator("button[name=export]").click()
    link = v.locator(".exports .current a.download[download$='.jsonl']")
    link.wait_for(timeout=30_000)
    with page.expect_download() as d:
        link.click()
    lines = [json.loads(x) for x in open(d.value.path(), encoding="utf-8").read().splitlines()]
    assert [x["id"] for x in lines] == want
    expect_text(v.locator("ul.recent"), "JSONL")
    assert v.locator("ul.recent li").count() >= 2


def test_a_range_past_the_online_window_offers_an_export(page, app, tenant, api):
    start, end = iso(time.time() - 120 * 86400), iso(time.time() - 100 * 86400)
    open_console(page, app, tenant, f"?range=custom&from={urllib.parse.quote(start)}&to={urllib.parse.quote(end)}")
    v = page.locator(V)
    notice = v.locator(".status [data-code=range_archived]")
    expect_text(notice, "archive")
    notice.locator("button[name=export-range]").click()
    expect_text(v.locator(".exports .current .rows"), "0 rows", timeout=30)


def test_an_expired_token_says_so_and_asks_for_another(page, app, tenant, api, shot):
    open_console(page, app, tenant, tok=token(tenant["name"], ttl=-60))
    message = page.locator("#token-message")
    expect_text(message, "expired")
    assert page.locator("#token-form").is_visible() and not page.locator(V).is_visible()
    shot(page, "expired-token")
    # A good token pasted in the form opens the log.
    page.locator("#token").fill(tenant["token"])
    page.locator("#token").press("Enter")
    expect_rows(page, api.ids(**{"from": week_ago(), "limit": 25}))
    assert page.locator("#token").input_value() == ""


def test_an_empty_result_says_so_and_resets(page, app, tenant, api, shot):
    open_console(page, app, tenant, "?q=nothing-matches-this")
    empty = page.locator(f"{V} .empty")
    expect_text(empty, "No events match these filters.")
    assert api.ids(**{"from": week_ago(), "q": "nothing-matches-this"}) == []
    shot(page, "empty")
    empty.locator("button").click()
    expect_rows(page, api.ids(**{"from": week_ago(), "limit": 25}))
    assert "q" not in url_params(page)


def test_hostile_text_renders_as_text(page, app, tenant, api):
    open_console(page, app, tenant, "?actor=u-mallory")
    expect_rows(page, ["evt-xss"])
    v = page.locator(V)
    row = v.locator("tbody tr").first
    assert XSS in row.text_content() and '<svg onload="window.__xss=2">' in row.text_content()
    row.click()
    dialog = v.locator("dialog.detail[open]")
    expect_text(dialog.locator("pre.json"), "javascript:window.__xss=6")
    assert dialog.locator("table.changes td.new").text_content() == '"javascript:window.__xss=5"'
    for selector in ["img", "svg", "script", "a:not(.download):not(.manifest)", "[href^=javascript]", "b"]:
        assert v.locator(selector).count() == 0, selector
    assert page.evaluate("document.querySelectorAll('img, svg, a[href^=javascript]').length") == 0
    dialog.locator("button[name=copy]").focus()
    page.keyboard.press("Escape")


def test_budget_ended_pages_offer_to_keep_searching_and_archived_events_say_so(page, app, tenant, api):
    """The API's budget marker and archived events (shared decisions), played through a
    route that answers as the API will: the first page stops after 3 events."""
    def short_first_page(route):
        url = urllib.parse.urlsplit(route.request.url)
        params = urllib.parse.parse_qs(url.query)
        if "cursor" in params:
            route.continue_()
            return
        params["limit"] = ["3"]
        real = route.fetch(url=url._replace(query=urllib.parse.urlencode(params, doseq=True)).geturl())
        body = real.json()
        body["budget_exhausted"] = True
        route.fulfill(response=real, json=body)

    def archived(route):
        real = route.fetch()
        route.fulfill(response=real, json={**real.json(), "archived": True})

    page.route("**/v1/events?*", short_first_page)
    page.route("**/v1/events/evt-0002", archived)
    open_console(page, app, tenant)
    want = api.ids(**{"from": week_ago(), "limit": 25})
    expect_rows(page, want[:3])
    notice = page.locator(f"{V} .status .budget")
    expect_text(notice, "stopped early")
    notice.locator("button[name=keep-searching]").click()
    expect_rows(page, want)
    assert page.locator(f"{V} .status .budget").count() == 0
    page.locator(f"{V} tbody tr[data-event-id=evt-0002]").click()
    expect_text(page.locator(f"{V} dialog.detail[open] .badge.archived"), "Archived")


def test_paged_catalogs_are_read_to_the_end(page, app, tenant, api):
    actions = api.call("GET", "/v1/actions")["items"]

    def paged(route):
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(route.request.url).query)
        if "cursor" in params:
            route.fulfill(json={"items": actions[3:], "next_cursor": None})
        else:
            route.fulfill(json={"items": actions[:3], "next_cursor": "page-2"})

    page.route("**/v1/actions*", paged)
    open_console(page, app, tenant)
    page.locator(f"{V} details.picker summary").click()
    boxes = page.locator(f"{V} details.picker input[name=action]")
    wait_until(lambda: boxes.count() == len(actions), "every page of actions is listed")


def test_320_px_wide_is_readable_and_dark_follows_the_system(browser, app, tenant, api, shot):
    ctx = browser.new_context(viewport={"width": 320, "height": 740}, color_scheme="dark", timezone_id="UTC")
    page = ctx.new_page()
    try:
        open_console(page, app, tenant)
        expect_rows(page, api.ids(**{"from": week_ago(), "limit": 25}))
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        host = page.locator(V)
        assert host.evaluate("v => v.scrollWidth <= v.clientWidth")
        assert host.locator("tbody td").first.evaluate("td => getComputedStyle(td).display") == "grid"
        assert host.evaluate("v => getComputedStyle(v).backgroundColor") == "rgb(21, 24, 28)"
        # The filters fold so that the first events show without scrolling.
        assert not host.locator("form.filters").is_visible()
        assert host.locator("tbody tr").first.evaluate("r => r.getBoundingClientRect().top") < 740
        shot(page, "narrow-320-dark", full_page=False)
        host.locator("details.filter-box > summary").click()
        host.locator("input[name=workspace]").fill("ws-us")
        host.locator("input[name=workspace]").press("Enter")
        expect_rows(page, api.ids(**{"from": week_ago(), "workspace": "ws-us", "limit": 25}))
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        host.locator("tbody tr").nth(1).click()
        expect_text(host.locator("dialog.detail[open] pre.json"), '"id"')
        assert host.locator("dialog.detail[open]").evaluate("d => d.getBoundingClientRect().right") <= 320
        shot(page, "narrow-320-dark-detail", full_page=False)
    finally:
        ctx.close()


def test_a_product_page_on_an_allowed_origin_embeds_the_console_and_another_origin_cannot(page, embedder, tenant, api):
    give_token = "async t => { await customElements.whenDefined('audit-log-viewer'); document.querySelector('audit-log-viewer').token = t; }"
    # Given: a product's page on an origin the API allows, with a token from its backend
    page.goto(embedder.allowed)
    page.evaluate(give_token, tenant["token"])
    # Then: its calls (preflighted: they carry Authorization) are answered and read
    expect_rows(page, api.ids(**{"from": week_ago(), "limit": 25}))
    # Given: the same page on an origin the API does not allow
    page.goto(embedder.other)
    page.evaluate(give_token, tenant["token"])
    # Then: the browser keeps the answers from the page, which says it cannot reach the service
    error = page.locator(f"{V} .notice.error[data-code=network]").first
    expect_text(error, "could not be reached")
    assert shown(page) == []
