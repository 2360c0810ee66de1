"""Admin.send (admin/send.py) with the real submission pipeline (trace, relay format, DKIM
signing with keys made by admin.dkim, store and queue) over a real SQLite store: what
lands in INBOX and in the queue, per-recipient refusals, the sender rules of API keys,
raw messages, and every refusal of bad input."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email
import shutil
from email import policy
from pathlib import Path
from types import SimpleNamespace

import dkim
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwright.address import parse_mailbox
from mailwright.admin import Admin, AdminError, Forbidden, Invalid, TooLarge, Unavailable
from mailwright.admin.send import Attachment, NoRecipientAccepted, SendRequest, SendResult
from mailwright.app import open_store
from mailwright.config import parse
from mailwright.delivery.assemble import Parts
from mailwright.trust.outbound import OutboundSigner

from .delivery.helpers import Events

PASSWORD = "correct horse"
NOW = 1_793_000_000.0
IP = "198.51.100.7"
CONFIG = """
hostname = "mx.example.test"
data_dir = "{data_dir}"
[[listeners]]
role = "mx"
port = 2525
"""


def config(data_dir: Path, **limits):
    cfg = parse(CONFIG.format(data_dir=data_dir))
    return dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **limits))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """Domains example.test (with a DKIM key set made by admin.dkim), other.test and
    bücher.test, an account in each: made once, copied for each test (the writes and
    the key generation are most of a test's time)."""
    data_dir = tmp_path_factory.mktemp("send-template")
    store = open_store(config(data_dir))
    admin = Admin(store, config(data_dir))
    for domain in ("example.test", "other.test", "bücher.test"):
        asyncio.run(admin.domains.add(domain))
    for account in ("alice@example.test", "carol@other.test", "dörte@bücher.test"):
        asyncio.run(admin.accounts.add(account, PASSWORD))
    asyncio.run(admin.dkim.generate("example.test"))
    store.close()
    return data_dir


def build(template: Path, data_dir: Path, **limits) -> SimpleNamespace:
    """A store like the template's with Admin over the real submission pipeline."""
    shutil.copytree(template, data_dir, dirs_exist_ok=True)
    cfg = config(data_dir, **limits)
    store = open_store(cfg)
    events = Events()
    woken: list[int] = []
    parts = Parts(cfg, store, events.log, outbound=OutboundSigner(store, cfg.hostname),
                  on_queued=lambda: woken.append(1))
    admin = Admin(store, cfg, clock=lambda: NOW, parts=parts)
    return SimpleNamespace(admin=admin, store=store, events=events, woken=woken, config=cfg)


@pytest.fixture
def w(template, tmp_path):
    world = build(template, tmp_path)
    yield world
    world.store.close()


def send(w, allowed=None, **fields) -> SendResult:
    return asyncio.run(w.admin.send(SendRequest(**fields), client_ip=IP,
                                    allowed_domains=allowed))


def inbox(w, address: str) -> list[bytes]:
    return [asyncio.run(w.store.read_blob(r["blob"]))
            for r in w.store.mailbox_messages(parse_mailbox(address))]


def queued(w):
    return asyncio.run(w.store.queue_messages())


def nothing_stored(w) -> bool:
    return not queued(w) and not inbox(w, "alice@example.test") and \
        "accepted" not in w.events.kinds


def dkim_results(w, message: bytes) -> list[bool]:
    """Each DKIM-Signature checked against the published records of the domain's keys."""
    records = {f"{k.selector}._domainkey.{k.domain}.": k.txt
               for k in asyncio.run(w.store.dkim_keys("example.test"))}

    def lookup(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return records[name].encode()
    checker = dkim.DKIM(message)
    count = message.count(b"\r\nDKIM-Signature:") + message.startswith(b"DKIM-Signature:")
    return [checker.verify(idx=i, dnsfunc=lookup) for i in range(count)]


def test_local_copy_signed_remote_queued_with_tag_refusals_per_recipient(w):
    result = send(w, from_="Alice <alice@example.test>", to=["alice@example.test"],
                  cc=["Bob <bob@remote.test>"],
                  bcc=["secret@remote.test", "nobody@example.test"],
                  subject="Hello", text="Hi there\n", html="<p>Hi there</p>", tag="welcome")
    per = {r.address: r for r in result.recipients}
    assert list(per) == ["alice@example.test", "bob@remote.test", "secret@remote.test",
                         "nobody@example.test"]
    assert all(per[a].accepted and per[a].status == "2.1.5"
               for a in ("alice@example.test", "bob@remote.test", "secret@remote.test"))
    assert not per["nobody@example.test"].accepted
    assert (per["nobody@example.test"].status, per["nobody@example.test"].text) == \
        ("5.1.1", "Recipient address rejected: no such user here")
    assert result.message_id == f"<{result.id}@mx.example.test>"

    [stored] = inbox(w, "alice@example.test")
    assert stored.startswith(b"Return-Path: <alice@example.test>\r\nReceived: from unknown "
                             b"([198.51.100.7])\r\n\tby mx.example.test (Mailwright) with "
                             b"ESMTPA id " + result.id.encode())
    assert dkim_results(w, stored) == [True, True]           # RSA and Ed25519 (RFC 8463)
    msg = email.message_from_bytes(stored, policy=policy.default)
    assert msg["Message-ID"] == result.message_id and msg["Subject"] == "Hello"
    assert msg["Date"].datetime.timestamp() == NOW
    assert "Bcc" not in msg and b"secret@" not in stored        # RFC 5322 §3.6.3
    assert msg.get_content_type() == "multipart/alternative"

    [q] = queued(w)
    assert (q.message_id, q.mail_from, q.tag) == (result.id, "alice@example.test", "welcome")
    assert sorted(r.address for r in q.recipients) == ["bob@remote.test",
                                                         "secret@remote.test"]
    relayed = asyncio.run(w.store.read_blob(q.blob))
    assert dkim_results(w, relayed) == [True, True] and b"Return-Path" not in relayed
    assert w.woken                                       # the queue runner is told

    accepted = w.events.data("accepted")
    assert accepted["tag"] == "welcome" and accepted["account"] == "alice@example.test"
    assert (accepted["ip"], accepted["local"], accepted["remote"], accepted["rcpts"]) == \
        (IP, 1, 2, 3)
    assert accepted["domain"] == "example.test"


def test_an_untagged_message_has_no_tag(w):
    send(w, from_="alice@example.test", to=["bob@remote.test"], text="x")
    assert queued(w)[0].tag is None
    assert "tag" not in w.events.data("accepted")


def test_suppressed_recipients_are_accepted_not_sent_and_named(w):
    asyncio.run(w.admin.suppressions.add("example.test", "Gone@remote.test",
                                         reason="unsubscribe"))
    asyncio.run(w.admin.suppressions.add("example.test", "later@remote.test",
                                         campaign="spring", reason="manual"))
    result = send(w, from_="alice@example.test", to=["gone@remote.test", "kept@remote.test",
                                                     "later@remote.test"], text="x", tag="spring")
    assert [(r.address, r.accepted, r.suppressed) for r in result.recipients] == [
        ("gone@remote.test", True, "unsubscribe"), ("kept@remote.test", True, None),
        ("later@remote.test", True, "manual")]
    assert [r.address for r in queued(w)[0].recipients] == ["kept@remote.test"]
    # Every recipient suppressed: accepted all the same, nothing queued.
    again = send(w, from_="alice@example.test", to=["gone@remote.test"], text="x")
    assert [r.suppressed for r in again.recipients] == ["unsubscribe"]
    assert len(queued(w)) == 1


def test_suppressed_recipients_of_a_tracked_campaign_are_named_too(w):
    # Campaign mail is one copy per recipient (the tracking stage): each copy is checked,
    # and the answer still names the suppressed recipient.
    asyncio.run(w.admin.suppressions.add("example.test", "gone@remote.test",
                                         campaign="spring", reason="unsubscribe"))
    result = send(w, from_="alice@example.test", to=["gone@remote.test", "kept@remote.test"],
                  html="<p>hi</p>", campaign="spring")
    assert [(r.address, r.suppressed) for r in result.recipients] == [
        ("gone@remote.test", "unsubscribe"), ("kept@remote.test", None)]
    assert [r.address for m in queued(w) for r in m.recipients] == ["kept@remote.test"]
    assert w.events.data("suppressed")["tag"] == "spring"


def test_recipients_are_deduplicated_and_over_quota_is_temporary(w):
    asyncio.run(w.admin.accounts.set_quota("carol@other.test", 100))
    result = send(w, from_="alice@example.test", to=["alice@example.test",
                  "carol@other.test"], cc=["ALICE@example.test"], text="a" * 500)
    assert [(r.address, r.accepted, r.status) for r in result.recipients] == [
        ("alice@example.test", True, "2.1.5"), ("carol@other.test", False, "4.2.2")]
    assert len(inbox(w, "alice@example.test")) == 1 and not inbox(w, "carol@other.test")


def test_the_recipient_limit_refuses_the_rest(template, tmp_path):
    w = build(template, tmp_path, max_recipients=2)
    try:
        result = send(w, from_="alice@example.test",
                      to=["a@remote.test", "b@remote.test", "c@remote.test"], text="x")
        assert [r.status for r in result.recipients] == ["2.1.5", "2.1.5", "4.5.3"]
        assert len(queued(w)[0].recipients) == 2
    finally:
        w.store.close()


def test_with_no_recipient_accepted_nothing_is_stored(w):
    with pytest.raises(NoRecipientAccepted) as refused:
        send(w, from_="alice@example.test", to=["nobody@example.test", "gone@other.test"],
             text="x")
    assert isinstance(refused.value, Invalid)
    assert [(r.address, r.accepted, r.status) for r in refused.value.recipients] == [
        ("nobody@example.test", False, "5.1.1"), ("gone@other.test", False, "5.1.1")]
    assert "nobody@example.test: 5.1.1 Recipient address rejected" in str(refused.value)
    assert nothing_stored(w)


def test_utf8_addresses_make_an_smtputf8_submission(w):
    result = send(w, from_="Dörte <dörte@bücher.test>", to=["dörte@bücher.test",
                  "zoë@remote.test"], subject="Grüße", text="Grüße\n")
    assert all(r.accepted for r in result.recipients)
    [stored] = inbox(w, "dörte@bücher.test")
    assert b"with UTF8SMTPA id" in stored                      # RFC 6531 §3.7.3
    assert "From: Dörte <dörte@xn--bcher-kva.test>".encode() in stored
    [q] = queued(w)
    assert q.smtputf8 and q.mail_from == "dörte@xn--bcher-kva.test"


def test_attachments_arrive_byte_exact(w):
    blob = bytes(range(256)) * 40
    send(w, from_="alice@example.test", to=["alice@example.test"], text="see attached",
         attachments=[Attachment("résumé.bin", "application/octet-stream",
                                 base64.encodebytes(blob).decode())])
    [stored] = inbox(w, "alice@example.test")
    msg = email.message_from_bytes(stored, policy=policy.default)
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "résumé.bin"
    assert attachment.get_payload(decode=True) == blob


# --- who may send ---------------------------------------------------------------------


@pytest.mark.parametrize("fields, allowed, text", [
    ({"from_": "alice@example.test"}, frozenset({"other.test"}),
     r"^alice@example.test: Sender address rejected: example.test is not among the "
     r"domains this sender may use \(other.test\)$"),
    ({"from_": "someone@remote.test"}, None, "remote.test is not a local domain"),
    ({"from_": "alice@example.test", "envelope_from": "bounces@remote.test"}, None,
     "remote.test is not a local domain"),
    ({"from_": "carol@other.test", "envelope_from": "alice@example.test"},
     frozenset({"other.test"}), "example.test is not among"),
    ({"from_": "alice@example.test", "headers": {"Sender": "x@remote.test"}}, None,
     "remote.test is not a local domain"),
])
def test_senders_outside_the_allowed_domains_are_forbidden(w, fields, allowed, text):
    with pytest.raises(Forbidden, match=text):
        send(w, allowed, to=["alice@example.test"], text="x", **fields)
    assert nothing_stored(w)


def test_a_key_sends_as_any_address_of_its_domains(w):
    # No account needed (noreply@), domains given as people write them.
    send(w, {"Other.TEST"}, from_="noreply@other.test", to=["alice@example.test"], text="x")
    send(w, {"bücher.test"}, from_="x@bücher.test", envelope_from="bounce@bücher.test",
         to=["bob@remote.test"], text="x")
    assert len(inbox(w, "alice@example.test")) == 1
    assert queued(w)[0].mail_from == "bounce@xn--bcher-kva.test"


def test_without_a_pipeline_sending_is_unavailable(w):
    cli = Admin(w.store, w.config)
    with pytest.raises(Unavailable, match="running server"):
        asyncio.run(cli.send(SendRequest(from_="alice@example.test", to=["a@remote.test"]),
                             client_ip=IP))


# --- raw messages ---------------------------------------------------------------------

RAW = (b"From: Alice <alice@example.test>\n"
       b"To: whoever@remote.test\n"
       b"Subject: raw\n"
       b"Date: Thu, 05 Nov 2026 12:00:00 +0000\n"
       b"Message-ID: <own.1@example.test>\n"
       b"\n"
       b"line one\n"
       b"line two\r\n")


def test_raw_is_passed_through_with_crlf_line_ends(w):
    result = send(w, raw=RAW, to=["alice@example.test"], tag="raw-tag")
    assert result.message_id == "<own.1@example.test>"
    [stored] = inbox(w, "alice@example.test")
    expected = RAW.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert stored.endswith(b"\r\n" + expected)
    assert result.size == len(expected)
    assert dkim_results(w, stored) == [True, True]
    assert w.events.data("accepted")["tag"] == "raw-tag"


def test_raw_gets_date_and_message_id_when_missing(w):
    raw = b"From: alice@example.test\r\nSubject: bare\r\n\r\nbody \xc3\xa4\r\n"
    result = send(w, raw=raw, to=["bob@remote.test"])
    [q] = queued(w)
    relayed = asyncio.run(w.store.read_blob(q.blob))
    assert relayed.endswith(raw)                         # the rest unchanged
    msg = email.message_from_bytes(relayed, policy=policy.default)
    assert msg["Message-ID"] == result.message_id == f"<{result.id}@mx.example.test>"
    assert msg["Date"].datetime.timestamp() == NOW
    assert q.body == "8BITMIME"                           # RFC 6152: 8-bit text


def test_raw_long_lines_are_reencoded_only_for_relaying(w):
    long = b"x" * 1500
    raw = (b"From: alice@example.test\r\nMessage-ID: <l@example.test>\r\n"
           b"Date: Thu, 05 Nov 2026 12:00:00 +0000\r\n\r\n" + long + b"\r\n")
    send(w, raw=raw, to=["alice@example.test", "bob@remote.test"])
    assert inbox(w, "alice@example.test")[0].endswith(raw)
    relayed = asyncio.run(w.store.read_blob(queued(w)[0].blob))
    assert max(len(line) for line in relayed.split(b"\r\n")) <= 998     # RFC 5322 §2.1.1
    assert dkim_results(w, relayed) == [True, True]


@pytest.mark.parametrize("raw, fields, error", [
    (RAW, {}, "no recipients"),
    (RAW, {"to": ["a@remote.test"], "subject": "x", "text": "y"},
     "leave out subject, text"),
    (b"Bcc: b@remote.test\r\n" + RAW, {"to": ["a@remote.test"]}, "must not carry Bcc"),
    (b"Return-Path: <x@y.test>\r\n" + RAW, {"to": ["a@remote.test"]},
     "must not carry Return-Path"),
    (b"Subject: no from\r\n\r\nx\r\n", {"to": ["a@remote.test"]}, "exactly one From"),
    (b"From: a@example.test\r\n" + RAW, {"to": ["a@remote.test"]}, "exactly one From"),
    (b"From: not an address\r\n\r\nx\r\n", {"to": ["a@remote.test"]},
     "raw From: .*not an address.* is not a valid address"),
    (RAW + b"nul\x00\r\n", {"to": ["a@remote.test"]}, "NUL characters"),
    (b"From: <\r\n\r\nx\r\n", {"to": ["a@remote.test"]}, "raw From: '<' cannot be parsed"),
    (b"From: alice@example.test\r\nSubject: \xe4\r\n\r\nx\r\n", {"to": ["a@remote.test"]},
     "neither ASCII nor UTF-8"),
])
def test_raw_refusals(w, raw, fields, error):
    with pytest.raises(Invalid, match=error):
        send(w, raw=raw, **fields)
    assert nothing_stored(w)


def test_raw_with_utf8_header_fields_is_an_smtputf8_message(w):
    raw = "From: Dörte <dörte@bücher.test>\r\nSubject: Grüße\r\n\r\nx\r\n".encode()
    send(w, raw=raw, to=["bob@remote.test"])
    [q] = queued(w)
    assert q.smtputf8 and q.mail_from == "dörte@xn--bcher-kva.test"      # RFC 6532 §3


def test_raw_from_outside_the_allowed_domains(w):
    with pytest.raises(Forbidden, match="not among"):
        send(w, {"other.test"}, raw=RAW, to=["a@remote.test"])


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("header, why", [
    ("Received", "a trace field"), ("Return-Path", "final delivery"),
    ("DKIM-Signature", "signed with the sending domain's key"), ("bcc", "use the bcc field"),
    ("From", "use the from field"), ("Subject", "use the subject field"),
    ("Date", "time of submission"), ("Content-Type", "MIME structure"),
    ("Content-Transfer-Encoding", "MIME structure"), ("MIME-Version", "MIME structure"),
    ("Authentication-Results", "RFC 8601"), ("ARC-Seal", "RFC 8617"),
])
def test_headers_we_set_cannot_be_given(w, header, why):
    with pytest.raises(Invalid, match=f"headers: {header} cannot be set: .*{why}"):
        send(w, from_="alice@example.test", to=["a@remote.test"], headers={header: "x"})
    assert nothing_stored(w)


def test_extra_headers_and_an_own_message_id(w):
    result = send(w, from_="alice@example.test", to=["alice@example.test"], text="x",
                  headers={"Reply-To": "Help <help@example.test>",
                           "List-Unsubscribe": "<mailto:u@example.test>",
                           "Message-ID": "<thread.7@example.test>"})
    assert result.message_id == "<thread.7@example.test>"
    msg = email.message_from_bytes(inbox(w, "alice@example.test")[0], policy=policy.default)
    assert msg["Reply-To"] == "Help <help@example.test>"
    assert msg["List-Unsubscribe"] == "<mailto:u@example.test>"
    assert msg.get_all("Message-ID") == ["<thread.7@example.test>"]


@pytest.mark.parametrize("fields, error", [
    ({"to": []}, "no recipients"),
    ({"from_": None}, "from is required"),
    ({"from_": "alice@example.test, carol@other.test"}, "is not one mailbox"),
    ({"to": ["not an address"]}, r"to\[0\]: 'not an address' is not a valid address"),
    ({"cc": ["a@b.test\r\nBcc: x@y.test"]}, r"cc\[0\]: .* control characters"),
    ({"bcc": ["a@-bad-.test"]}, r"bcc\[0\]: invalid address"),
    ({"envelope_from": "nope"}, "envelope_from"),
    ({"headers": {"X-Bad Name": "v"}}, "is not a field name"),
    ({"headers": {"X-A": "v\r\nBcc: x@y.test"}}, "line breaks"),
    ({"headers": {"X-A": "1", "x-a": "2"}}, "given twice"),
    ({"headers": {"Message-ID": "no-brackets"}}, "is not <id@domain>"),
    ({"attachments": [Attachment("a.bin", "application/octet-stream", "!!")]},
     r"attachments\[0\]: content_base64 is not base64"),
    ({"attachments": [Attachment("a.bin", "pdf", "AAAA")]}, "is not type/subtype"),
    ({"attachments": [Attachment("", "application/pdf", "AAAA")]}, "filename"),
    ({"attachments": [Attachment("m.eml", "message/rfc822", "AAAA")]},
     "application/octet-stream"),
    ({"tag": ""}, "tag: 1 to 128"), ({"tag": "x" * 129}, "tag: 1 to 128"),
    ({"tag": "a\nb"}, "tag: 1 to 128"),
    ({"subject": "a\r\nBcc: x@y.test"}, "subject contains line breaks"),
    ({"subject": "a\x85b"}, "subject contains line breaks"),
    ({"from_": "\"unclosed <a@example.test>"}, "from: .* not a valid address"),
    ({"to": ['"']}, r"to\[0\]: .* cannot be parsed"),
    ({"headers": {"Reply-To": "<"}}, "headers: Reply-To: '<' cannot be parsed"),
])
def test_bad_input_is_invalid_and_says_what(w, fields, error):
    request = {"from_": "alice@example.test", "to": ["alice@example.test"], "text": "x"}
    with pytest.raises(Invalid, match=error):
        send(w, **(request | fields))
    assert nothing_stored(w)


def test_over_the_size_limit(template, tmp_path):
    w = build(template, tmp_path, max_message_size=4000)
    try:
        with pytest.raises(TooLarge, match=r"over the limit of 4000 \(\[limits\] "
                                           r"max_message_size\)"):
            send(w, from_="alice@example.test", to=["alice@example.test"], text="x" * 5000)
        with pytest.raises(TooLarge, match="octets, over the limit of 4000"):
            send(w, from_="alice@example.test", to=["alice@example.test"], text="x",
                 attachments=[Attachment("a", "application/octet-stream",
                                         base64.b64encode(b"y" * 3500).decode())])
        head = b"From: alice@example.test\r\n\r\n"
        with pytest.raises(TooLarge, match="is 4001 octets"):
            send(w, raw=head + b"x" * (4001 - len(head)), to=["alice@example.test"])
        # Within the limit as given, over it with the Date and Message-ID it needs.
        with pytest.raises(TooLarge, match="over the limit of 4000"):
            send(w, raw=head + b"x" * (4000 - len(head)), to=["alice@example.test"])
        assert nothing_stored(w)
        send(w, from_="alice@example.test", to=["alice@example.test"], text="small")
        assert len(inbox(w, "alice@example.test")) == 1
    finally:
        w.store.close()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=400) | st.lists(st.sampled_from(
           [b"From: alice@example.test", b"From: <", b"From: \"a", b"Sender: x@other.test",
            b"Bcc: b@remote.test", b"To: a@b", b"Date: x", b"Message-ID: <a@b>", b"",
            b" folded", b"\xff", b"x" * 1200, b"Subject: \xc3\xa4"]), max_size=8
       ).map(b"\r\n".join),
       to=st.lists(st.text(max_size=30) | st.sampled_from(
           ["alice@example.test", "bob@remote.test", "nobody@example.test"]), max_size=3))
def test_any_raw_message_is_sent_or_refused_in_words(w, raw, to):
    try:
        result = send(w, {"example.test"}, raw=raw, to=to)
    except AdminError as e:
        assert str(e)
    else:
        assert any(r.accepted for r in result.recipients)
