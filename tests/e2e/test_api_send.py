"""POST /api/v1/messages against a real server: what is sent arrives where it should
and as it should (a mailbox read over IMAP; a remote SMTP peer, an aiosmtpd server on
127.0.0.1 reached through a [[transports]] entry), DKIM-signed with keys made over the
API; raw messages keep their octets; each recipient is answered on its own; keys send
only from their domains; bad input gets the one error shape, never a 5xx; and /metrics
counts what was sent."""

from __future__ import annotations

import base64
import email
import email.policy
import json

import dkim
import httpx
import pytest

from ..conftest import PASSWORD
from .apiserver import ApiServer, error_of, imap_messages, ok, provision, scrape, total
from .peer import Peer, running
from .test_relay import wait_for

A, B = "example.test", "other.test"
ALICE, BOB, CAROL, DAVE = f"alice@{A}", f"bob@{A}", f"carol@{A}", f"dave@{B}"
REMOTE = "remote.test"               # routed by [[transports]] to the peer
MAX_SIZE = 100_000                   # [limits] max_message_size
# Every octet value, and a line that would end SMTP DATA if not dot-stuffed.
ATTACHMENT = bytes(range(256)) * 64 + b"\r\n.\r\nthe end"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def peer():
    yield from running(Peer())


@pytest.fixture(scope="module")
def api(tmp_path_factory, peer):
    srv = ApiServer(tmp_path_factory.mktemp("send"), extra=(
        f"[limits]\nmax_message_size = {MAX_SIZE}\n"
        "[queue]\ninterval = 0.5\n"
        + peer.transport(REMOTE)))
    root = srv.create_key("root", "admin")
    srv.start()
    try:
        # Everything else over the API itself, as an operator with an admin key would.
        provision(srv, root, (A, B), (ALICE, BOB, CAROL, DAVE), key_domain=A)
        with srv.client(root) as admin:
            ok(admin.post(f"/domains/{A}/dkim", json={"name": "k1"}), 201)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def admin(api):
    with api.client(api.tokens["admin"]) as c:
        yield c


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def delivered_to(srv: ApiServer, user: str, message_id: str) -> bytes:
    """The message with this Message-ID in the user's INBOX, read over IMAP."""
    def find():
        return [m for m in imap_messages(srv, user)
                if parsed(m)["Message-ID"] == message_id]
    [found] = wait_for(find)
    return found


def dkim_verifies(admin: httpx.Client, message: bytes) -> set[tuple[bytes, bytes]]:
    """(d=, a=) of every DKIM-Signature of the message, each verified (RFC 6376 §6) with
    the key records GET /domains/{d}/dns tells the operator to publish."""
    records = {}
    for domain in (A, B):
        for r in ok(admin.get(f"/domains/{domain}/dns"))["records"]:
            if r["type"] == "TXT":
                records[r["name"].rstrip(".") + "."] = r["value"]

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        value = records.get(name.decode())
        return value.encode() if value is not None else None
    checker = dkim.DKIM(message)
    signatures = parsed(message).get_all("DKIM-Signature") or []
    assert signatures, "the message is not DKIM-signed"
    found = set()
    for i in range(len(signatures)):
        assert checker.verify(idx=i, dnsfunc=txt), f"signature {i} does not verify"
        found.add((checker.signature_fields[b"d"], checker.signature_fields[b"a"]))
    return found


# What a message signed by example.test's key set (RSA and Ed25519, RFC 8463) carries.
SIGNED_BY_A = {(A.encode(), b"rsa-sha256"), (A.encode(), b"ed25519-sha256")}


def events(client: httpx.Client, **params) -> list[dict]:
    return ok(client.get("/events", params={"limit": 1000, **params}))["events"]


# --- what is sent arrives --------------------------------------------------------

def test_structured_message_arrives_over_imap_signed_with_its_attachment(api, admin):
    subject = "Grüße aus Köln — 会議 ✓"
    text = "Hallo Bob,\nanbei die Datei.\n"
    sent = ok(admin.post("/messages", json={
        "from": f"Alice Ärger <{ALICE}>", "to": [f"Bob <{BOB}>"], "bcc": [CAROL],
        "subject": subject, "text": text, "html": "<p>Hallo <b>Bob</b></p>",
        "attachments": [{"filename": "daten ü.bin", "content": b64(ATTACHMENT)}],
        "headers": {"X-Campaign": "spring"}, "tag": "welcome"}), 201)
    assert [(r["address"], r["accepted"], r["status"]) for r in sent["recipients"]] == [
        (BOB, True, "2.1.5"), (CAROL, True, "2.1.5")]
    assert sent["message_id"].endswith("@mail.example.test>") and sent["size"] > 16384

    for user in (BOB, CAROL):                      # Carol was Bcc: delivered all the same
        raw = delivered_to(api, user, sent["message_id"])
        msg = parsed(raw)
        assert msg["Subject"] == subject
        assert msg["From"].addresses[0].display_name == "Alice Ärger"
        assert msg["From"].addresses[0].addr_spec == ALICE
        assert [a.addr_spec for a in msg["To"].addresses] == [BOB]
        assert msg["X-Campaign"] == "spring" and msg["Date"]
        # RFC 5322 §3.6.3: blind recipients are in no copy's header.
        # (Two recipients: the Received field has no FOR clause to name one.)
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert "Bcc" not in msg and CAROL.encode() not in head
        assert b"welcome" not in raw                  # the tag is for events only
        # Lines end in CRLF on the wire (RFC 5322 §2.3), whatever the caller gave.
        assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
        assert "<b>Bob</b>" in msg.get_body(("html",)).get_content()
        [attachment] = msg.iter_attachments()
        assert attachment.get_filename() == "daten ü.bin"
        assert attachment.get_content_type() == "application/octet-stream"
        assert attachment.get_content() == ATTACHMENT
        assert dkim_verifies(admin, raw) == SIGNED_BY_A

    [accepted] = events(admin, tag="welcome", type="accepted")
    assert accepted["message_id"] == sent["id"] and accepted["domain"] == A
    assert accepted["data"]["rcpts"] == 2 and accepted["data"]["account"] == ALICE


def test_remote_recipient_reaches_the_peer_and_the_delivered_event_has_the_tag(api, admin,
                                                                              peer):
    rcpt = f"dave@{REMOTE}"
    sent = ok(admin.post("/messages", json={
        "from": ALICE, "to": [f"Dave <{rcpt}>"], "subject": "to the peer",
        "text": "across\n", "tag": "outbound-1"}), 201)
    [envelope] = wait_for(lambda: peer.got(rcpt))
    assert envelope.mail_from == ALICE and envelope.rcpt_tos == [rcpt]
    content = envelope.original_content
    assert parsed(content)["Message-ID"] == sent["message_id"]
    assert dkim_verifies(admin, content) == SIGNED_BY_A

    [delivered] = wait_for(lambda: events(admin, tag="outbound-1", type="delivered"))
    assert delivered["message_id"] == sent["id"] and delivered["tag"] == "outbound-1"
    assert delivered["data"]["rcpt"] == rcpt and delivered["address"] == rcpt
    assert delivered["data"]["reply"].startswith("250")
    # The text kept for finished messages is what the peer got, octet for octet.
    r = admin.get(f"/queue/{sent['id']}/raw")
    assert r.status_code == 200 and r.headers["content-type"] == "message/rfc822"
    assert r.content == content


def test_raw_message_keeps_its_octets(api, admin, peer):
    rcpt = f"erin@{REMOTE}"
    raw = ("From: Alice <alice@example.test>\r\n"
           "To: Bob <bob@example.test>, erin@remote.test\r\n"
           "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
           "Date: Mon, 01 Jan 2024 10:00:00 +0100\r\n"
           "Message-ID: <raw-1@example.test>\r\n"
           "X-Folded:   odd  spacing\r\n\tkept as it is\r\n"
           "MIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n"
           "\r\n"
           "Grüße, 8-bit and unchanged.\r\n"
           ".a line starting with a dot\r\n").encode()
    sent = ok(admin.post("/messages", json={"raw": b64(raw), "to": [BOB, rcpt]}), 201)
    assert sent["message_id"] == "<raw-1@example.test>" and sent["size"] == len(raw)
    # Trace fields and the signatures go above it; nothing of it changes.
    stored = delivered_to(api, BOB, "<raw-1@example.test>")
    [envelope] = wait_for(lambda: peer.got(rcpt))
    for copy, added in ((stored, {"Return-Path", "Received", "DKIM-Signature"}),
                        (envelope.original_content, {"Received", "DKIM-Signature"})):
        assert copy.endswith(raw)
        above = parsed(copy[:-len(raw)] + b"\r\n")
        assert set(above.keys()) == added, above.keys()
        assert dkim_verifies(admin, copy) == SIGNED_BY_A


# --- each recipient on its own -----------------------------------------------------

def accepted_count(admin: httpx.Client) -> int:
    return len(events(admin, type="accepted"))


def test_an_unknown_recipient_is_refused_alone(api, admin):
    sent = ok(admin.post("/messages", json={
        "from": ALICE, "to": [BOB, f"nobody@{A}"], "cc": [CAROL],
        "subject": "partly", "text": "some of you\n"}), 201)
    answers = {r["address"]: (r["accepted"], r["status"]) for r in sent["recipients"]}
    assert answers == {BOB: (True, "2.1.5"), f"nobody@{A}": (False, "5.1.1"),
                       CAROL: (True, "2.1.5")}
    for user in (BOB, CAROL):
        delivered_to(api, user, sent["message_id"])
    [accepted] = events(admin, message_id=sent["id"], type="accepted")
    assert accepted["data"]["rcpts"] == 2
    # The refusal is in the event log as over SMTP, with its RFC 3463 status.
    [rejected] = [e for e in events(admin, type="rejected", address=f"nobody@{A}")
                  if e["session"] == accepted["session"]]
    assert rejected["data"]["reason"] == "unknown-user"
    assert rejected["data"]["status"] == "5.1.1" and rejected["data"]["mail_from"] == ALICE


def queue_empty(admin: httpx.Client) -> bool:
    """No message left in the queue: every remote recipient so far has its outcome (a
    delivery is counted when its event is emitted, before the message leaves)."""
    return not ok(admin.get("/queue"))["messages"]


def test_no_recipient_accepted_stores_nothing(api, admin):
    wait_for(lambda: queue_empty(admin))
    before = accepted_count(admin)
    r = admin.post("/messages", json={"from": ALICE, "to": [f"nobody@{A}", f"ghost@{B}"],
                                      "subject": "to no one", "text": "lost\n"})
    err = error_of(r, 422)
    assert err["code"] == "no_recipient_accepted"
    assert f"nobody@{A}: 5.1.1" in err["message"] and f"ghost@{B}: 5.1.1" in err["message"]
    assert accepted_count(admin) == before and queue_empty(admin)
    for user in (BOB, CAROL, ALICE):
        assert not [m for m in imap_messages(api, user) if b"to no one" in m]


def test_only_temporary_refusals_are_a_503_to_retry(api, admin):
    # A full mailbox is a temporary failure (RFC 3463 4.2.2): the client may try later.
    full = f"full@{A}"
    ok(admin.post("/accounts", json={"address": full, "password": PASSWORD}), 201)
    ok(admin.put(f"/accounts/{full}/quota", json={"limit": 1}))
    r = admin.post("/messages", json={"from": ALICE, "to": [full], "subject": "no room",
                                      "text": "too much\n"})
    err = error_of(r, 503)
    assert err["code"] == "no_recipient_accepted" and f"{full}: 4.2.2" in err["message"]
    assert int(r.headers["Retry-After"]) > 0
    assert not imap_messages(api, full)


# --- who may send what -------------------------------------------------------------

def test_keys_send_only_from_their_domains(api, admin):
    message = {"to": [BOB], "subject": "scoped", "text": "hi\n"}
    for scope in ("send", "domain-admin"):
        # Over the https listener too, verified with the server's own CA.
        with api.client(api.tokens[scope], tls=scope == "send") as mine:
            sent = ok(mine.post("/messages", json={**message, "from": ALICE}), 201)
            delivered_to(api, BOB, sent["message_id"])
            before = accepted_count(admin)
            for refused in ({**message, "from": DAVE},
                            {**message, "from": ALICE, "envelope_from": DAVE},
                            {**message, "from": ALICE, "headers": {"Sender": DAVE}},
                            {"raw": b64(f"From: {DAVE}\r\n\r\nhi\r\n".encode()),
                             "to": [BOB]}):
                err = error_of(mine.post("/messages", json=refused), 403)
                assert err["code"] == "forbidden" and B in err["message"], err
            assert accepted_count(admin) == before
    with api.client(api.tokens["send"]) as sender:
        # Nothing but sending: not even reading its own domain.
        for path in ("/domains", f"/domains/{A}/accounts", "/events", "/webhooks",
                     "/queue", "/keys"):
            assert error_of(sender.get(path), 403)["code"] == "forbidden", path


# --- bad input: the error shape, never a 5xx ----------------------------------------

def test_bad_requests_get_the_error_shape(api, admin, peer):
    before = accepted_count(admin)
    at_peer = len(peer.received)
    good = {"from": ALICE, "to": [BOB], "subject": "x", "text": "x\n"}
    cases = [
        ({"raw": "not base64!", "to": [BOB]}, 422, "raw: not valid base64"),
        ({"to": [BOB], "text": "no sender\n"}, 422, "from is required"),
        ({**good, "from": "not an address"}, 422, "from"),
        ({**good, "to": []}, 422, "no recipients"),
        # Header injection: a line break would start a field of the caller's choosing.
        ({**good, "subject": "hi\r\nBcc: spy@remote.test"}, 422, "subject"),
        ({**good, "headers": {"X-Note": "a\r\nBcc: spy@remote.test"}}, 422, "X-Note"),
        ({**good, "headers": {"X-Note": "a\nBcc: spy@remote.test"}}, 422, "X-Note"),
        ({**good, "headers": {"X-Bad: spy@remote.test\r\nX-Note": "a"}}, 422, "field name"),
        ({**good, "to": [f"{BOB}\r\nBcc: spy@remote.test"]}, 422, "to[0]"),
        ({**good, "headers": {"Bcc": "spy@remote.test"}}, 422, "Bcc"),
        ({"raw": b64(b"From: alice@example.test\r\nBcc: spy@remote.test\r\n\r\nx\r\n"),
          "to": [BOB]}, 422, "Bcc"),
        ({**good, "attachments": [{"filename": "a.bin", "content": "***"}]}, 422,
         "attachments[0]"),
        ({**good, "attachments": [{"filename": "a.bin", "content": b64(b"x"),
                                   "content_type": "no type"}]}, 422, "content_type"),
        ({**good, "tag": ""}, 422, "tag"),
        # Over [limits] max_message_size, within the body cap: the admin layer's 413.
        ({**good, "attachments": [{"filename": "big.bin",
                                   "content": b64(b"\0" * 200_000)}]}, 413,
         "max_message_size"),
        ({"raw": b64(b"From: alice@example.test\r\n\r\n" + b"x" * 150_000), "to": [BOB]},
         413, "max_message_size"),
        # Fields that are not there (misspelt): refused, not silently dropped.
        ({**good, "bbc": [DAVE]}, 422, "body.bbc"),
        ({**good, "attachments": [{"filename": "a.bin", "content": b64(b"x"),
                                   "type": "text/plain"}]}, 422, "body.attachments.0.type"),
        ({**good, "headers": {"Reply-To": "not an address"}}, 422, "Reply-To"),
        # RFC 7493 §2.1: a lone surrogate escape is no character (json.dumps writes it
        # as \ud800, as a client in JavaScript could).
        ({**good, "text": "broken \ud800"}, 422, "body.text holds an unpaired UTF-16"),
        ({**good, "html": "\udfff"}, 422, "body.html"),
        ({**good, "subject": "\ud800"}, 422, "body.subject"),
        ({**good, "to": ["\udc00@example.test"]}, 422, "body.to[0]"),
        ({**good, "attachments": [{"filename": "\ud800", "content": "eA=="}]}, 422,
         "body.attachments[0].filename"),
    ]
    for body, status, mentions in cases:
        r = admin.post("/messages", content=json.dumps(body),
                       headers={"Content-Type": "application/json"})
        err = error_of(r, status)
        assert mentions in err["message"], (body, err)
    for r in (admin.post("/messages", content=b'{"from": ',
                         headers={"Content-Type": "application/json"}),
              admin.post("/messages", json=[good])):
        error_of(r, 422)
    assert accepted_count(admin) == before and len(peer.received) == at_peer


def test_bodies_over_the_cap_are_refused_before_they_are_read(api, admin):
    cap = MAX_SIZE * 4 // 3 + (1 << 20)       # api/limits.py body_limit
    big = {"raw": b64(b"x" * (cap * 3 // 4 + 1000)), "to": [BOB]}
    err = error_of(admin.post("/messages", json=big), 413)
    assert err["code"] == "too_large" and str(cap) in err["message"]

    def chunks():                             # no Content-Length: counted as it comes
        for _ in range(cap // 65536 + 2):
            yield b" " * 65536
    err = error_of(admin.post("/messages", content=chunks(),
                              headers={"Content-Type": "application/json"}), 413)
    assert err["code"] == "too_large"
    # The server is fine afterwards.
    assert ok(admin.get("/domains"))


# --- /metrics ----------------------------------------------------------------------

def test_metrics_count_what_was_sent(api, admin, peer):
    wait_for(lambda: queue_empty(admin))          # earlier tests' deliveries counted
    before = scrape(api)                      # loopback: no key needed
    rcpt = f"frank@{REMOTE}"
    local = ok(admin.post("/messages", json={"from": ALICE, "to": [BOB], "subject": "m1",
                                             "text": "counted\n"}), 201)
    remote = ok(admin.post("/messages", json={"from": ALICE, "to": [rcpt],
                                              "subject": "m2", "text": "counted\n"}), 201)
    wait_for(lambda: events(admin, message_id=remote["id"], type="delivered"))
    delivered_to(api, BOB, local["message_id"])
    after = scrape(api)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)
    assert delta("mailwright_messages_accepted_total") == 2
    assert delta("mailwright_deliveries_total", result="delivered") == 1
    assert delta("mailwright_deliveries_total", result="deferred") == 0
    assert delta("mailwright_accepted_message_size_bytes_count") == 2
    assert delta("mailwright_delivery_delay_seconds_count", result="delivered") == 1
