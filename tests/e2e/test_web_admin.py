"""The web admin (/admin) in a real browser: Playwright driving Debian's chromium
(headless, never a downloaded browser) against a server subprocess with an http
listener. One flow as an admin would go through it (log in, add a domain and see its
DNS records checked, add a user, mail it with swaks, find the message's events, see the
dashboard count it, retry a deferred message, log out); a tracked campaign's report
and its CSV, the suppression list, a domain's diagnostics; then the guards: a form post
without the CSRF token is refused, every page sends a stranger to the login page, the
pages fit a phone and work with JavaScript off. A screenshot of each page goes to
build/screenshots (docs/ holds two of them, for the README)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mailwright.web.app import ROUTES

from ..conftest import ROOT, free_port, loopback_dns, require
from ..webhook_receiver import Receiver
from . import test_campaigns as tc
from .apiserver import ApiServer, imap_messages, ok, provision
from .test_clients import swaks

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "build" / "screenshots"
ADMIN, ADMIN_PASSWORD = "root", "web admin password"
USER_PASSWORD = "mailbox password"
DOMAIN = "shop.test"
NEWS, CAMPAIGN = "news.test", "autumn"            # a domain that sends campaign mail
SENDER, READER = f"alice@{NEWS}", f"reader@{NEWS}"


def eventually(check: Callable[[], object], what: str, seconds: float = 20.0):
    """check() until it is true (the event log and the queue runner are asynchronous)."""
    deadline = time.monotonic() + seconds
    while True:
        if result := check():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


# The domain publishes its MX (pointing here) and nothing else yet: one check green, the
# others red.
ZONE = f"""$TTL 300
@ IN SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 300
@ IN NS ns.{DOMAIN}.
@ IN MX 10 mail.example.test.
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[ApiServer]:
    loopback_dns().add_zone(DOMAIN, ZONE)
    closed = free_port()       # nothing listens here: mail for remote.test is deferred
    s = ApiServer(tmp_path_factory.mktemp("web"), extra=(
        f'\n[[transports]]\ndomain = "remote.test"\nhost = "127.0.0.1"\nport = {closed}\n'
        "tls = \"none\"\n[queue]\ninterval = 0.5\nfirst_retry = 3600.0\n"
        f'[campaigns]\ntracking_host = "{tc.TRACK}"\n'))
    s.cli("admin", "add", ADMIN, "--password-stdin", input=ADMIN_PASSWORD + "\n")
    s.tokens = {"admin": s.create_key("root", "admin")}
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    require(CHROMIUM)
    with playwright_api.sync_playwright() as p:
        # Root in a container has no user namespaces for chromium's sandbox.
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox"])
        yield b
        b.close()


def base(srv: ApiServer) -> str:
    return f"http://127.0.0.1:{srv.ports['http']}"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page, srv: ApiServer, target: str = "/admin/") -> None:
    page.goto(base(srv) + target)
    assert "/admin/login?next=" in page.url
    page.get_by_label("Admin name").fill(ADMIN)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(base(srv) + target) + "$"))


def follow(page, link: str, heading: str) -> None:
    """Click a link of the navigation (htmx swaps the page in): once its heading shows."""
    page.get_by_role("link", name=link, exact=True).click()
    playwright_api.expect(page.get_by_role("heading", level=1, name=heading)).to_be_visible()


def total(page, series: str) -> int:
    return int(page.locator(f"#totals-24h td[data-type={series}]").inner_text())


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15000)
    yield ctx
    ctx.close()


def test_admin_flow(srv, context):
    page = context.new_page()
    # Whatever the browser complains of (a script error, a refusal by the page's
    # Content-Security-Policy, a missing file) fails the test at its end.
    complaints: list[str] = []
    page.on("console", lambda m: complaints.append(f"{m.text} {m.location}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: complaints.append(str(e)))
    log_in(page, srv)
    expect = playwright_api.expect
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    received = total(page, "received")
    cookie = next(c for c in context.cookies() if c["name"] == "mw_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"

    # A domain, its records, and their live check (loaded by htmx after the page).
    follow(page, "Domains", "Domains")
    shot(page, "domains")
    page.get_by_label("Add a domain").fill(DOMAIN)
    page.get_by_role("button", name="Add domain").click()
    page.wait_for_url(f"**/admin/domains/{DOMAIN}")
    expect(page.locator(".flash.ok")).to_contain_text(f"Added {DOMAIN}")
    records = page.locator("tr.record")
    expect(records.first).to_contain_text(DOMAIN)
    assert records.locator("td:nth-child(2)").all_inner_texts()[:2] == ["MX", "TXT"]
    expect(page.locator("tr.finding[data-what=MX]")).to_contain_text("ok")
    expect(page.locator("tr.finding[data-what=DMARC]")).to_contain_text(
        re.compile(rf"missing.*_dmarc\.{re.escape(DOMAIN)}: no such domain"))
    copy = page.get_by_role("button", name=f"Copy value of the MX record at {DOMAIN}")
    expect(copy).to_be_visible()            # shown by admin.js; hidden without script
    shot(page, "domain")
    # DKIM: a first key set signs at once; a second one waits to be switched to.
    page.get_by_role("button", name="Make DKIM keys").click()
    expect(page.locator(".flash.ok")).to_contain_text("it signs now")
    page.get_by_label(re.compile("New key set name")).fill("next")
    page.get_by_role("button", name="Rotate: make a new key set").click()
    expect(page.locator(".flash.ok")).to_contain_text("switch signing to it")
    page.get_by_role("button", name="Sign with next").click()
    expect(page.locator(".flash.ok")).to_contain_text(f"{DOMAIN} now signs with next")
    expect(page.get_by_role("button", name=re.compile("^Retire mw"))).to_have_count(1)
    shot(page, "domain-dkim")

    # A mailbox, then mail for it from outside, over SMTP.
    page.goto(f"{base(srv)}/admin/accounts?domain={DOMAIN}")
    page.get_by_label("New mailbox address").fill(f"ann@{DOMAIN}")
    page.get_by_label("Password (8 characters or more)").fill(USER_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".flash.ok")).to_contain_text(f"Created ann@{DOMAIN}")
    expect(page.locator(f"article[data-address='ann@{DOMAIN}']")).to_contain_text(
        "0 messages")
    res = swaks(srv, "mx", "--to", f"ann@{DOMAIN}", "--from", "web-test@remote.test")
    assert res.returncode == 0, res.stdout.decode()
    page.reload()
    expect(page.locator(f"article[data-address='ann@{DOMAIN}']")).to_contain_text(
        "1 messages")
    shot(page, "accounts")

    # Its events in the log search (an inbound message's `accepted` is about its
    # sender), and its whole story.
    follow(page, "Logs", "Event log")
    page.get_by_label("Address", exact=True).fill("web-test@remote.test")
    page.get_by_label("Event type").select_option("accepted")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("tr.event[data-type=accepted]")
    expect(rows).to_have_count(1)
    shot(page, "logs")
    rows.locator("a").first.click()
    expect(page.get_by_role("heading", name=re.compile("The story of message"))).to_be_visible()
    expect(page.locator("li.event[data-type=accepted]")).to_contain_text(
        "web-test@remote.test")
    shot(page, "story")

    # The dashboard counts it.
    follow(page, "Dashboard", "Dashboard")

    def counted() -> bool:
        page.reload()
        return total(page, "received") == received + 1
    eventually(counted, "the dashboard to count the message")
    expect(page.locator("#chart-24h canvas")).to_have_count(1)     # uPlot drew it
    shot(page, "dashboard")

    # A message to a host that does not answer is deferred; retry it from the queue.
    res = swaks(srv, "submission", "--tls", "--auth", "PLAIN", "--auth-user", f"ann@{DOMAIN}",
                "--auth-password", USER_PASSWORD, "--from", f"ann@{DOMAIN}",
                "--to", "someone@remote.test")
    assert res.returncode == 0, res.stdout.decode()
    follow(page, "Queue", "Queue")

    def deferred() -> bool:
        page.goto(f"{base(srv)}/admin/queue?state=deferred")
        return page.locator("table.queue a").count() == 1
    eventually(deferred, "the message to be deferred")
    shot(page, "queue")
    page.locator("table.queue a").click()
    recipient = page.locator("tr.recipient")
    expect(recipient).to_contain_text("deferred")
    assert recipient.locator("td:nth-child(3)").inner_text() == "1"
    page.get_by_role("button", name="Retry now").click()
    expect(page.locator(".flash.ok")).to_contain_text("Retry: 1 recipient(s) now pending")

    def retried() -> bool:
        page.reload()
        return recipient.locator("td:nth-child(3)").inner_text() == "2"
    eventually(retried, "a second attempt")
    attempts = page.locator("tr.attempt")
    expect(attempts).to_have_count(2)
    expect(attempts.first).to_contain_text("someone@remote.test")
    shot(page, "queue-entry")

    # The other pages, for their screenshots.
    for path, name in (("/admin/settings", "settings"), ("/admin/welcome", "welcome"),
                       (f"/admin/welcome?domain={DOMAIN}&step=5", "welcome-clients")):
        page.goto(base(srv) + path)
        shot(page, name)

    assert complaints == []
    page.get_by_role("button", name=re.compile("Log out")).click()
    page.wait_for_url("**/admin/login")
    shot(page, "login")
    page.goto(base(srv) + "/admin/queue")
    assert "/admin/login?next=%2Fadmin%2Fqueue" in page.url


def test_first_run_guide(srv, context):
    page = context.new_page()
    log_in(page, srv, "/admin/welcome")
    expect = playwright_api.expect
    page.get_by_label("Domain name").fill("first.test")
    page.get_by_role("button", name="Add and continue").click()
    expect(page.get_by_role("heading", name=re.compile("2. Publish these DNS records"))
           ).to_be_visible()
    expect(page.locator("#dns-check tr.finding[data-what=MX]")).to_have_count(1)
    page.get_by_role("link", name="Continue: mailboxes").click()
    page.get_by_label("Name before the @").fill("first")
    page.get_by_label("Password (8 characters or more)").fill(USER_PASSWORD)
    page.get_by_role("button", name="Create mailbox").click()
    expect(page.locator(".flash.ok")).to_contain_text("Created first@first.test")
    page.get_by_role("link", name="Continue: send a test message").click()
    page.get_by_role("button", name="Send test message").click()
    expect(page.locator("#arrived")).to_have_text("It arrived.")     # htmx polls for it
    shot(page, "welcome-test-message")
    page.get_by_role("link", name="Continue: mail programs").click()
    row = page.locator("tr", has_text="Incoming (IMAP)").first
    expect(row).to_contain_text(str(srv.ports["imaps"]))
    expect(row).to_contain_text("SSL/TLS")
    # And a mail program finds it there (IMAP over TLS).
    inbox = imap_messages(srv, "first@first.test", USER_PASSWORD)
    assert [m.count(b"Subject: Mailwright test message") for m in inbox] == [1]


def test_settings_webhook_test_send_and_api_keys(srv, context):
    receiver = Receiver().start()
    try:
        page = context.new_page()
        log_in(page, srv, "/admin/settings")
        expect = playwright_api.expect
        page.get_by_label("Endpoint URL").fill(receiver.url("/hook"))
        page.get_by_label("Event types (blank: all)").fill("delivered, bounced")
        page.get_by_role("button", name="Add webhook").click()
        shown = page.locator(".secret code")
        expect(shown).to_contain_text("whsec_")        # the secret, on this answer only
        receiver.endpoint("/hook", secret=shown.inner_text())
        row = page.locator("tr", has_text=receiver.url("/hook"))
        expect(row).to_contain_text("bounced, delivered")
        row.get_by_role("button", name="Test").click()
        expect(page.locator(".flash.ok")).to_contain_text("HTTP 200")
        expect(page.locator(".secret")).to_have_count(0)   # gone once the page is left
        got = receiver.got("/hook")
        assert [(r.event, r.signed, r.body["type"]) for r in got] == [("test", True, "test")]
        # An endpoint that refuses: the answer is what the admin sees.
        page.get_by_label("Endpoint URL").fill(receiver.url("/refuses"))
        page.get_by_role("button", name="Add webhook").click()
        receiver.endpoint("/refuses", secret=shown.inner_text(), status=503,
                          answer=b"down for maintenance")
        page.locator("tr", has_text=receiver.url("/refuses")).get_by_role(
            "button", name="Test").click()
        expect(page.locator(".flash.error")).to_contain_text(
            "failed: HTTP 503: down for maintenance")
        page.locator("tr", has_text=receiver.url("/hook")).get_by_role("link").click()
        expect(page.get_by_role("heading", name=re.compile("deliveries"))).to_be_visible()
        shot(page, "webhook")
        # API keys: the token once, then revoked.
        page.goto(base(srv) + "/admin/settings")
        page.get_by_label("Key name").fill("billing")
        page.get_by_role("button", name="Create key").click()
        token = page.locator(".secret code").inner_text()
        assert httpx.get(f"{srv.url}/domains", headers={"Authorization": f"Bearer {token}"}
                         ).status_code == 200
        page.goto(base(srv) + "/admin/settings")
        assert token not in page.content()
        page.get_by_role("button", name="Revoke API key billing").click()
        expect(page.locator(".flash.ok")).to_contain_text("Revoked API key billing")
        assert httpx.get(f"{srv.url}/domains", headers={"Authorization": f"Bearer {token}"}
                         ).status_code == 401
    finally:
        receiver.stop()


def test_post_without_csrf_token_is_refused(srv, context):
    page = context.new_page()
    log_in(page, srv, "/admin/domains")
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    url = base(srv) + "/admin/domains"
    for form in ({"name": "evil.test"}, {"name": "evil.test", "csrf": token[:-2] + "xx"}):
        r = page.request.post(url, form=form, max_redirects=0)
        assert r.status == 403, (form, r.status)
        assert "CSRF token" in r.text()
    # The session's own token does it (so the refusals above were for the token alone).
    r = page.request.post(url, form={"name": "good.test", "csrf": token}, max_redirects=0)
    assert r.status == 303
    page.reload()
    names = page.locator("ul.list li").all_inner_texts()
    assert "good.test" in names and "evil.test" not in names


def _example_path(path: str) -> str:
    return re.sub(r"\{(\w+)(:int)?\}", lambda m: "1" if m[2] else "example.test", path)


def test_every_page_sends_a_stranger_to_the_login(srv):
    """Every route of the web admin but the login page and the static files (the list
    is web/app.py's ROUTES: a new page is in it by being routed)."""
    assert len(ROUTES) >= 25
    with httpx.Client(base_url=base(srv), timeout=30) as client:
        for route in ROUTES:
            path = "/admin" + _example_path(route.path)
            for method in route.methods - {"HEAD"}:
                r = client.request(method, path, data={"name": "x"} if method == "POST"
                                   else None)
                assert r.status_code == 303, (method, path, r.status_code)
                assert r.headers["location"] == "/admin/login?next=" + \
                    httpx.URL(path).raw_path.decode().replace("/", "%2F"), (method, path)
    # A forged cookie is no session either.
    with httpx.Client(base_url=base(srv), cookies={"mw_admin": "forged"}) as client:
        assert client.get("/admin/").status_code == 303
        assert client.get("/admin/login").status_code == 200
        assert client.get("/admin/static/htmx.min.js").status_code == 200


PHONE_PAGES = ("/admin/", "/admin/domains", f"/admin/domains/{DOMAIN}?check=1", "/admin/accounts",
               f"/admin/domains/{DOMAIN}?diagnose=1&only=dns", "/admin/campaigns",
               f"/admin/campaigns/report?name={CAMPAIGN}&domain={NEWS}", "/admin/suppressions",
               "/admin/queue", "/admin/logs", "/admin/settings", "/admin/welcome",
               f"/admin/welcome?domain={DOMAIN}&step=2", f"/admin/welcome?domain={DOMAIN}&step=5")


def test_pages_fit_a_phone(srv, browser):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = ctx.new_page()
        log_in(page, srv)
        for path in PHONE_PAGES:
            page.goto(base(srv) + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
        page.goto(base(srv) + "/admin/")
        shot(page, "phone-dashboard")
    finally:
        ctx.close()


def test_works_without_javascript(srv, browser):
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        log_in(page, srv, "/admin/accounts")
        page.get_by_label("New mailbox address").fill(f"nojs@{DOMAIN}")
        page.get_by_label("Password (8 characters or more)").fill(USER_PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect = playwright_api.expect
        expect(page.locator(".flash.ok")).to_contain_text(f"Created nojs@{DOMAIN}")
        card = page.locator(f"article[data-address='nojs@{DOMAIN}']")
        card.locator("summary").click()
        card.get_by_label("Quota (e.g. 500M, 2G, none)").fill("10M")
        card.get_by_role("button", name="Set quota").click()
        expect(page.locator(".flash.ok")).to_contain_text("10485760 octets")
        expect(card.locator("meter")).to_have_attribute("max", "10485760")
        # Refusals are shown on the page the form came from.
        page.get_by_label("New mailbox address").fill(f"nojs@{DOMAIN}")
        page.get_by_label("Password (8 characters or more)").fill(USER_PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.locator(".flash.error")).to_contain_text("exists")
        # The DNS check, without htmx: a link that renders it in the page.
        page.goto(f"{base(srv)}/admin/domains/{DOMAIN}")
        page.get_by_role("link", name="Check the published records now").click()
        expect(page.locator("tr.finding[data-what=DMARC]")).to_contain_text("missing")
        expect(page.locator("tr.record[data-type=MX]")).to_contain_text("ok")
        # Removal needs its confirmation.
        card = page.locator(f"article[data-address='nojs@{DOMAIN}']")
        page.goto(f"{base(srv)}/admin/accounts?domain={DOMAIN}")
        card.locator("summary").click()
        card.get_by_label(re.compile("Yes, delete")).check()
        card.get_by_role("button", name="Remove account").click()
        expect(page.locator(".flash.ok")).to_contain_text(f"Removed nojs@{DOMAIN}")
        expect(card).to_have_count(0)
    finally:
        ctx.close()


def test_docs_screenshots_exist():
    """The README shows two of the screenshots; they are committed under docs/."""
    for name in ("dashboard", "domain"):
        assert (Path(ROOT) / "docs" / "screenshots" / f"{name}.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def news(srv) -> str:
    """A sending domain with two mailboxes and a send key (srv.tokens["send"]), made
    over the API as an operator would."""
    provision(srv, srv.tokens["admin"], (NEWS,), (SENDER, READER), key_domain=NEWS)
    return NEWS


def figures_shown(page) -> dict[str, str]:
    """The report page's numbers: each tile's count, then each rate."""
    tiles = page.locator(".figures [data-figure]")
    shown = {tiles.nth(i).get_attribute("data-figure"):
             tiles.nth(i).locator(".number").inner_text() for i in range(tiles.count())}
    rates = page.locator(".figures [data-rate]")
    shown.update({rates.nth(i).get_attribute("data-rate"): rates.nth(i).inner_text()
                  for i in range(rates.count())})
    return shown


def test_campaign_report_and_csv(srv, news, browser, context):
    """A campaign sent through the send API, its pixel and a link fetched over HTTP by
    the recipient's mail program: the report page shows the figures, the chart is
    drawn, and the CSV has the very numbers of the page."""
    with srv.client(srv.tokens["send"]) as sender:
        ok(sender.post("/messages", json={"from": SENDER, "to": [READER], "subject": "sale",
                                          "text": "hi", "html": tc.HTML,
                                          "campaign": CAMPAIGN}), 201)
    [message] = eventually(lambda: imap_messages(srv, READER), "the campaign message")
    urls = tc.urls(message)
    with tc.public(srv) as person:
        assert person.get(urls["o"][0]).status_code == 200
        assert person.get(urls["c"][0]).status_code == 302

    page = context.new_page()
    log_in(page, srv, "/admin/campaigns")
    expect = playwright_api.expect
    row = page.locator(f"tr.campaign[data-name={CAMPAIGN}]")
    expect(row).to_contain_text(NEWS)
    shot(page, "campaigns")
    row.get_by_role("link", name=CAMPAIGN).click()
    expect(page.get_by_role("heading", level=1, name=f"Campaign {CAMPAIGN} · {NEWS}")
           ).to_be_visible()

    def clicked() -> bool:
        page.reload()
        return figures_shown(page)["clicked"] == "1"
    eventually(clicked, "the report to count the click")
    shown = figures_shown(page)
    assert shown == {"sent": "1", "delivered": "1", "opened": "1", "clicked": "1",
                     "unsubscribed": "0", "bounce_rate": "0.0%", "open_rate": "100.0%",
                     "open_rate_all": "100.0%", "click_rate": "100.0%",
                     "click_to_open": "100.0%", "unsubscribe_rate": "0.0%"}, shown
    expect(page.locator("#chart-days canvas")).to_have_count(1)     # uPlot drew it
    days = [r.locator("th, td").all_inner_texts() for r in page.locator("tr.day").all()]
    assert len(days) == 1 and days[0][1:] == ["1", "1", "0", "0", "1", "1", "0"], days
    shot(page, "campaign")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == f"campaign-{CAMPAIGN}.csv"
    rows = Path(download.value.path()).read_text().splitlines()
    assert rows[0] == "day,sent,delivered,bounced,suppressed,opened,clicked,unsubscribed"
    assert rows[1:] == [",".join(days[0]), ",".join(["total", *days[0][1:]])]

    # Every campaign of the domain together: the one campaign's figures.
    page.goto(f"{base(srv)}/admin/campaigns?domain={NEWS}")
    page.get_by_role("link", name=f"Every campaign of {NEWS} together").click()
    expect(page.get_by_role("heading", level=1, name=f"Every campaign of {NEWS}")
           ).to_be_visible()
    assert figures_shown(page) == shown

    # Without script: no chart, the same figures and days.
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        log_in(page, srv, f"/admin/campaigns/report?name={CAMPAIGN}&domain={NEWS}")
        assert figures_shown(page) == shown
        expect(page.locator("#chart-days canvas")).to_have_count(0)
        expect(page.locator("tr.day")).to_have_count(1)
    finally:
        ctx.close()


def test_suppressions_add_filter_page_and_remove(srv, news, context):
    """An entry added in the browser is the API's; the list filters and pages; an entry
    goes after its confirmation page."""
    gone = "gone@example.org"
    with srv.client(srv.tokens["admin"]) as api:
        for i in range(51):         # one more than a page, all of campaign "bulk"
            ok(api.post("/suppressions", json={"domain": NEWS, "address": f"b{i}@example.org",
                                               "campaign": "bulk"}), 201)
        page = context.new_page()
        log_in(page, srv, "/admin/suppressions")
        expect = playwright_api.expect
        page.get_by_label("Domain whose mail stops").select_option(NEWS)
        page.get_by_label("Address not to send to").fill(gone)
        page.get_by_role("button", name="Suppress").click()
        expect(page.locator(".flash.ok")).to_contain_text(
            f"Suppressed {gone} for all mail of {NEWS}.")
        listed = ok(api.get("/suppressions", params={"domain": NEWS, "address": gone}))
        assert [(s["address"], s["campaign"], s["reason"], s["source"])
                for s in listed["suppressions"]] == [(gone, None, "manual", "web admin")]

        # The campaign's entries, 50 a page.
        page.get_by_label("Campaign", exact=True).fill("bulk")
        page.get_by_role("button", name="Filter").click()
        rows = page.locator("tr.suppression")
        expect(rows).to_have_count(50)
        shot(page, "suppressions")
        page.get_by_role("link", name="Next page").click()
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text("b50@example.org")

        # Remove: a confirmation page first, then back to the list it came from.
        page.goto(f"{base(srv)}/admin/suppressions?address={gone}")
        expect(rows).to_have_count(1)
        page.get_by_role("link", name=f"Remove {gone} from the list of {NEWS}").click()
        expect(page.get_by_role("heading", name=f"Remove {gone} from the suppression list?")
               ).to_be_visible()
        shot(page, "suppression-remove")
        page.get_by_label(re.compile("Yes, send mail of")).check()
        page.get_by_role("button", name="Remove from the list").click()
        expect(page.locator(".flash.ok")).to_contain_text(f"Removed {gone}")
        assert page.url.endswith(f"/admin/suppressions?address={gone}")
        expect(rows).to_have_count(0)
        assert ok(api.get("/suppressions", params={"domain": NEWS, "address": gone})
                  )["suppressions"] == []


def test_diagnostics_on_the_domain_page(srv, browser, context):
    """admin.check's report of the test domain (its zone has an MX and nothing else):
    loaded by htmx into the page, and without script as the page itself."""
    with srv.client(srv.tokens["admin"]) as api:
        r = api.post("/domains", json={"name": DOMAIN})     # made by the flow test too
        assert r.status_code in (201, 409), r.text
    page = context.new_page()
    log_in(page, srv, f"/admin/domains/{DOMAIN}")
    expect = playwright_api.expect
    page.get_by_role("button", name="Run diagnostics").click()
    found = page.locator("#diagnostics li[data-id]")
    expect(page.locator("#diagnostics-score")).to_be_visible()
    assert page.url == f"{base(srv)}/admin/domains/{DOMAIN}"        # swapped in, no reload
    expect(page.locator("#diagnostics li[data-id='dns.mx.present']")).to_have_attribute(
        "data-severity", "pass")
    dmarc = page.locator("#diagnostics li[data-id='dns.dmarc.record']")
    expect(dmarc).to_have_attribute("data-severity", "fail")
    expect(dmarc).to_contain_text("FAIL")
    expect(dmarc.locator(".fix")).not_to_be_empty()
    expect(dmarc.locator(".why")).to_contain_text("RFC")
    expect(page.get_by_role("heading", level=3, name="DNS")).to_be_visible()
    assert found.count() > 5
    SHOTS.mkdir(parents=True, exist_ok=True)        # the card alone: the page is long
    page.locator("#diagnostics").screenshot(path=str(SHOTS / "domain-diagnostics.png"))

    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        log_in(page, srv, f"/admin/domains/{DOMAIN}")
        page.get_by_label("Checks").select_option("dns")
        page.get_by_role("button", name="Run diagnostics").click()
        page.wait_for_url(re.compile(r"diagnose=1"))
        expect(page.locator("#diagnostics li[data-id='dns.dmarc.record']")).to_have_attribute(
            "data-severity", "fail")
        ids = [e.get_attribute("data-id") for e in page.locator("#diagnostics li[data-id]").all()]
        assert ids and {i.partition(".")[0] for i in ids} == {"dns"}, ids
    finally:
        ctx.close()
