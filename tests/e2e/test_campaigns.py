"""Campaign mail end to end (issue 17): an HTML campaign message submitted over SMTP
(AUTH on 465, X-Mailwright-Campaign) and through the send API (`campaign`) is read
back over IMAP rewritten, DKIM-signed over the rewrite and the List-Unsubscribe
fields; its pixel and links fetched over HTTP record `opened` / `clicked` (first once
per recipient) and redirect to the very URL; a tampered token is 404; a one-click POST
unsubscribes into the suppression list, after which the address is not sent to; mail
that is not campaign mail arrives octet for octet as submitted."""

from __future__ import annotations

import re
import smtplib
import ssl

import httpx
import pytest

from ..conftest import PASSWORD
from .apiserver import ApiServer, imap_messages, ok, provision
from .peer import Peer, running
from .test_api_send import SIGNED_BY_A, dkim_verifies, parsed
from .test_relay import wait_for

A, B = "example.test", "other.test"
ALICE, BOB, DAVE = f"alice@{A}", f"bob@{A}", f"dave@{A}"
REMOTE = "remote.test"
TRACK = "track.example.test"
LINK = "https://shop.example/offer?id=7&utm=spring#top"
HTML = ('<html><body><p>Spring sale! <a href="https://shop.example/offer?id=7&amp;utm=spring'
        '#top">See it</a> or <a href="mailto:help@example.test">ask</a>.</p></body></html>')


@pytest.fixture(scope="module")
def peer():
    yield from running(Peer())


@pytest.fixture(scope="module")
def api(tmp_path_factory, peer):
    srv = ApiServer(tmp_path_factory.mktemp("campaigns"), extra=(
        "[queue]\ninterval = 0.5\n"
        f'[campaigns]\ntracking_host = "{TRACK}"\n'
        + peer.transport(REMOTE)))
    root = srv.create_key("root", "admin")
    srv.start()
    try:
        provision(srv, root, (A, B), (ALICE, BOB, DAVE), key_domain=A)
        with srv.client(root) as admin:
            ok(admin.post(f"/domains/{A}/dkim", json={"name": "k1"}), 201)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def admin(api):
    with api.client(api.tokens["admin"]) as c:
        yield c


def message(subject: str, campaign: str | None) -> bytes:
    field = f"X-Mailwright-Campaign: {campaign}\r\n" if campaign else ""
    return (f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: {subject}\r\n{field}"
            "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSpring sale: "
            f"{LINK}\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + HTML.replace("=", "=3D") + "\r\n--b--\r\n").encode()


def submit(srv: ApiServer, rcpts: list[str], content: bytes) -> None:
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    ctx.check_hostname = False
    with smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], context=ctx,
                          timeout=30) as s:
        s.login(ALICE, PASSWORD)
        assert s.sendmail(ALICE, rcpts, content) == {}


def received(srv: ApiServer, user: str, subject: str) -> bytes:
    [found] = wait_for(lambda: [m for m in imap_messages(srv, user)
                                if parsed(m)["Subject"] == subject])
    return found


def urls(content: bytes) -> dict[str, list[str]]:
    """The tracking URLs of a message, by kind (o: pixel, c: click, u: unsubscribe)."""
    msg = parsed(content)
    text = str(msg["List-Unsubscribe"]) + "".join(
        p.get_content() for p in msg.walk() if p.get_content_type() == "text/html")
    found: dict[str, list[str]] = {"o": [], "c": [], "u": []}
    for kind, url in re.findall(rf"https://{re.escape(TRACK)}/(t/o|t/c|u)/([\w-]+)", text):
        found[kind[-1]].append(f"/{kind}/{url}")
    return {k: sorted(set(v)) for k, v in found.items()}


def public(srv: ApiServer) -> httpx.Client:
    """A recipient's mail program reaching the tracking host (the http listener)."""
    return httpx.Client(base_url=f"http://127.0.0.1:{srv.ports['http']}", timeout=30,
                        headers={"User-Agent": "Mozilla/5.0 (Macintosh) Thunderbird/128.0"})


def events(admin: httpx.Client, kind: str, rcpt: str) -> list[dict]:
    page = ok(admin.get("/events", params={"type": kind, "address": rcpt, "limit": 100}))
    return sorted(page["events"], key=lambda e: (e["ts"], e["id"]))


def test_smtp_campaign_is_rewritten_signed_and_tracked_per_recipient(api, admin):
    submit(api, [BOB, DAVE], message("spring over smtp", "spring"))
    for_bob = received(api, BOB, "spring over smtp")
    for_dave = received(api, DAVE, "spring over smtp")
    head = parsed(for_bob)
    assert head["X-Mailwright-Campaign"] is None
    assert head["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert dkim_verifies(admin, for_bob) == SIGNED_BY_A
    # RFC 8058 §4: both fields are covered by the signature
    assert all(b"list-unsubscribe:list-unsubscribe-post" in s.lower().replace(b" ", b"")
               .replace(b"\r\n", b"").replace(b"\t", b"")
               for s in re.findall(rb"DKIM-Signature:.*?(?=\r\n\S)", for_bob, re.S))
    bob, dave = urls(for_bob), urls(for_dave)
    assert len(bob["o"]) == len(bob["c"]) == len(bob["u"]) == 1
    assert bob["o"] != dave["o"]                        # each recipient's own tokens
    assert LINK in for_bob.decode()                     # the text part is untouched
    assert b"mailto:help@example.test" in for_bob

    with public(api) as web:
        for _ in range(2):
            pixel = web.get(bob["o"][0])
            assert pixel.status_code == 200 and len(pixel.content) == 43
            assert pixel.headers["content-type"] == "image/gif"
            assert "no-store" in pixel.headers["cache-control"]
        click = web.get(bob["c"][0])
        assert click.status_code == 302 and click.headers["location"] == LINK
        web.get(dave["o"][0])
        opened = wait_for(lambda: len(events(admin, "opened", BOB)) == 2 and
                          events(admin, "opened", BOB))
        assert [e["data"]["first"] for e in opened] == [True, False]
        assert opened[0]["tag"] == "spring" and opened[0]["domain"] == A
        assert opened[0]["data"] == {"rcpt": BOB, "domain": A, "first": True,
                                     "machine": False, "ua": "client", "tag": "spring"}
        [clicked] = wait_for(lambda: events(admin, "clicked", BOB))
        assert clicked["data"]["url"] == LINK and clicked["data"]["first"] is True
        [dave_opened] = wait_for(lambda: events(admin, "opened", DAVE))
        assert dave_opened["data"]["first"] is True
        assert dave_opened["message_id"] != opened[0]["message_id"]
        # Each copy's accepted event carries the campaign as its tag.
        accepted = ok(admin.get("/events", params={
            "type": "accepted", "message_id": opened[0]["message_id"]}))["events"]
        assert [e["tag"] for e in accepted] == ["spring"]

        # A token changed anywhere, or of another kind, is 404: never a redirect.
        token = bob["c"][0].rsplit("/", 1)[1]
        for bad in (token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), token[:40],
                    bob["o"][0].rsplit("/", 1)[1]):
            r = web.get(f"/t/c/{bad}")
            assert r.status_code == 404 and "location" not in r.headers
        assert web.get(bob["u"][0].replace("/u/", "/t/o/")).status_code == 404


def test_api_campaign_machine_opens_are_flagged(api, admin):
    with api.client(api.tokens["send"]) as sender:
        sent = ok(sender.post("/messages", json={
            "from": ALICE, "to": [BOB], "subject": "api campaign", "text": "hi",
            "html": HTML + '<a href="https://shop.example/ü x?q=&quot;a&quot;|{b}">odd</a>',
            "campaign": "summer"}), 201)
    content = received(api, BOB, "api campaign")
    assert dkim_verifies(admin, content) == SIGNED_BY_A
    found = urls(content)
    with public(api) as web:
        locations = {web.get(c).headers["location"] for c in found["c"]}
    # as it was; what a header cannot carry percent-encoded in UTF-8, as a browser does
    assert locations == {LINK, 'https://shop.example/%C3%BC%20x?q="a"|{b}'}
    with httpx.Client(base_url=f"http://127.0.0.1:{api.ports['http']}",
                      headers={"User-Agent": "Mozilla/5.0"}) as apple:
        assert apple.get(found["o"][0]).status_code == 200
    [opened] = wait_for(lambda: [e for e in events(admin, "opened", BOB)
                                 if e["message_id"] == sent["id"]])
    assert opened["tag"] == "summer"
    assert (opened["data"]["machine"], opened["data"]["ua"]) == (True, "apple-mpp")


def test_a_key_made_for_campaigns_tracks_everything_it_sends(api, admin):
    made = ok(admin.post("/keys", json={"name": "newsletter", "scope": "send",
                                        "domains": [A], "campaigns": True}), 201)
    assert made["key"]["campaigns"] is True
    with api.client(made["token"]) as sender:
        sent = ok(sender.post("/messages", json={
            "from": ALICE, "to": [BOB], "subject": "by the key", "html": HTML,
            "tag": "weekly"}), 201)
    content = received(api, BOB, "by the key")
    found = urls(content)
    assert len(found["o"]) == len(found["c"]) == len(found["u"]) == 1
    with public(api) as web:
        assert web.get(found["c"][0]).headers["location"] == LINK
    [clicked] = wait_for(lambda: [e for e in events(admin, "clicked", BOB)
                                  if e["message_id"] == sent["id"]])
    assert clicked["tag"] == "weekly"
    # The send key of provision() was made without: its mail stays as it is.
    with api.client(api.tokens["send"]) as sender:
        ok(sender.post("/messages", json={"from": ALICE, "to": [BOB], "subject": "plain key",
                                          "html": HTML, "tag": "weekly"}), 201)
    assert b"/t/o/" not in received(api, BOB, "plain key")


def test_one_click_unsubscribes_and_the_next_send_is_skipped(api, admin, peer):
    rcpt = f"reader@{REMOTE}"
    submit(api, [rcpt], message("to unsubscribe", "autumn").replace(
        f"To: {BOB}".encode(), f"To: {rcpt}".encode()))
    [content] = wait_for(lambda: [e.original_content for e in peer.got(rcpt)])
    assert dkim_verifies(admin, content) == SIGNED_BY_A
    unsubscribe, pixel = urls(content)["u"][0], urls(content)["o"][0]
    with public(api) as web:
        page = web.get(unsubscribe)            # a GET only shows the page
        assert page.status_code == 200 and 'method="post"' in page.text
        assert ok(admin.get("/suppressions", params={"address": rcpt}))["suppressions"] == []
        # RFC 8058 §3.2: what a mailbox provider POSTs
        r = web.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200 and "location" not in r.headers
        assert web.post(unsubscribe, data={"other": "x"}).status_code == 400
        # multipart/form-data is allowed too (RFC 8058 §3.1); unsubscribing again is
        # answered alike and recorded once
        again = web.post(unsubscribe, files={"List-Unsubscribe": (None, "One-Click")})
        assert again.status_code == 200
        web.get(pixel)          # recorded after anything the POSTs recorded
    wait_for(lambda: events(admin, "opened", rcpt))
    [event] = events(admin, "unsubscribed", rcpt)
    assert event["data"] == {"rcpt": rcpt, "domain": A, "method": "one-click",
                             "tag": "autumn"}
    [entry] = ok(admin.get("/suppressions", params={"address": rcpt}))["suppressions"]
    assert (entry["domain"], entry["reason"], entry["source"]) == (A, "unsubscribe",
                                                                   "one-click")
    submit(api, [rcpt], message("after unsubscribing", "autumn"))
    [skipped] = wait_for(lambda: events(admin, "suppressed", rcpt))
    assert skipped["tag"] == "autumn"
    assert len([e.original_content for e in peer.got(rcpt)]) == 1


def test_the_page_button_unsubscribes_a_get_does_not(api, admin):
    submit(api, [DAVE], message("page unsubscribe", "winter").replace(
        f"To: {BOB}".encode(), f"To: {DAVE}".encode()))
    unsubscribe = urls(received(api, DAVE, "page unsubscribe"))["u"][0]
    with public(api) as web:
        for _ in range(2):
            page = web.get(unsubscribe)
            assert page.status_code == 200 and DAVE in page.text
            assert 'name="confirm" value="page"' in page.text
        done = web.post(unsubscribe, data={"confirm": "page"})
        assert done.status_code == 200 and "no longer" in done.text
        assert web.get("/u/" + "A" * 60).status_code == 404
    [event] = wait_for(lambda: events(admin, "unsubscribed", DAVE))
    assert (event["data"]["method"], event["tag"]) == ("page", "winter")


def test_mail_that_is_not_campaign_mail_arrives_octet_for_octet(api, admin):
    original = message("no campaign", None)
    submit(api, [BOB], original)
    stored = received(api, BOB, "no campaign")
    assert stored.endswith(original)
    prefix = stored[:-len(original)]
    names = {line.split(b":", 1)[0] for line in prefix.split(b"\r\n")
             if line and line[:1] not in (b" ", b"\t")}
    assert names == {b"Return-Path", b"Received", b"DKIM-Signature"}
