"""The SMTP session state machine: every command and error path, over a real store."""

from __future__ import annotations

import asyncio
import base64

import pytest
import scramp

from mailwright.net.connection import Action

from .conftest import PASSWORD
from .delivery.helpers import Events
from .session_harness import Harness, inbox, make_config


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def queued_for(store, address: str) -> list[dict]:
    return [q for q in store.queued() if q["address"] == address]


def authed(store, user="alice@example.test", **kw) -> Harness:
    h = Harness(store, role="submission", tls=True, **kw)
    h.ehlo()
    assert h.cmd("AUTH PLAIN " + b64(f"\0{user}\0{PASSWORD}")).startswith("235 2.7.0")
    return h


# --- greeting, EHLO ------------------------------------------------------------------
def test_ehlo_on_mx_advertises_extensions_but_not_auth(store):
    h = Harness(store)
    reply = h.ehlo()
    assert reply.startswith("250 mail.example.test Hello client.example.net [192.0.2.7]")
    for ext in ("PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                "CHUNKING", "DSN", "STARTTLS"):
        assert ext in reply.split("\n")
    assert not any(line.startswith("AUTH") for line in reply.split("\n"))


def test_submission_offers_auth_only_after_tls(store):
    h = Harness(store, role="submission")
    assert "AUTH" not in h.ehlo()
    h.start_tls()
    reply = h.ehlo()
    assert "AUTH PLAIN LOGIN SCRAM-SHA-256" in reply.split("\n")
    assert "STARTTLS" not in reply.split("\n")


def test_ehlo_needs_argument_and_helo_works(store):
    h = Harness(store)
    assert h.cmd("EHLO").startswith("501 5.5.4")
    assert h.cmd("HELO client").startswith("250 mail.example.test")
    # Parameters need EHLO (RFC 5321 §4.1.1.1 vs ESMTP).
    assert h.cmd("MAIL FROM:<a@x.test> SIZE=10").startswith("555 5.5.4")


# --- sequence ------------------------------------------------------------------------
def test_out_of_sequence_commands(store):
    h = Harness(store)
    assert h.cmd("MAIL FROM:<a@x.test>").startswith("503 5.5.1")
    h.ehlo()
    assert h.cmd("RCPT TO:<alice@example.test>").startswith("503 5.5.1")
    assert h.cmd("DATA").startswith("503 5.5.1")
    assert h.cmd("MAIL FROM:<a@x.test>").startswith("250 2.1.0")
    assert h.cmd("MAIL FROM:<a@x.test>").startswith("503 5.5.1 Nested")
    assert h.cmd("DATA").startswith("554 5.5.1 No valid recipients")
    assert h.cmd("RSET").startswith("250 2.0.0")
    assert h.cmd("RCPT TO:<alice@example.test>").startswith("503 5.5.1")


def test_local_delivery_adds_return_path_and_received(store):
    h = Harness(store)
    h.ehlo()
    before = len(inbox(store, "bob@example.test"))
    replies = h.send("MAIL FROM:<sender@x.test>\r\nRCPT TO:<BOB@Example.TEST>\r\nDATA\r\n")
    assert [r[:3] for r in replies] == ["250", "250", "354"]
    reply = h.send("Subject: hi\r\n\r\nbody\r\n.\r\n")[0]
    assert reply.startswith("250 2.0.0 OK: queued as ")
    msgs = inbox(store, "bob@example.test")
    assert len(msgs) == before + 1
    msg = msgs[-1]
    assert msg.startswith(b"Return-Path: <sender@x.test>\r\nReceived: from client.example.net "
                          b"([192.0.2.7])\r\n\tby mail.example.test (Mailwright) with ESMTP id ")
    assert b"for <BOB@example.test>;" in msg
    assert msg.endswith(b"\r\nSubject: hi\r\n\r\nbody\r\n")


def test_unknown_local_user_is_550_511(store):
    h = Harness(store)
    h.ehlo()
    h.cmd("MAIL FROM:<a@x.test>")
    assert h.cmd("RCPT TO:<nobody@example.test>").startswith("550 5.1.1")


@pytest.mark.parametrize("rcpt, code", [
    ("<victim@remote.test>", "550 5.7.1"),
    ("<victim%remote.test@example.test>", "550 5.1.1"),       # percent hack
    ("<@example.test:victim@remote.test>", "550 5.7.1"),       # source route
    ('<"victim@remote.test"@example.test>', "550 5.1.1"),      # quoted local part with @
    ("<remote.test!victim@example.test>", "550 5.1.1"),        # bang path
    ("<victim@[192.0.2.1]>", "550 5.7.1"),                      # address literal
    ("<victim@remote.test.>", "550 5.7.1"),
])
def test_never_an_open_relay(store, rcpt, code):
    h = Harness(store)
    h.ehlo()
    h.cmd("MAIL FROM:<spammer@x.test>")
    before = len(store.queued())
    assert h.cmd(f"RCPT TO:{rcpt}").startswith(code)
    assert h.cmd("DATA").startswith("554 5.5.1")
    assert len(store.queued()) == before


def test_source_route_is_ignored_for_local_mailbox(store):
    h = Harness(store)
    h.ehlo()
    h.cmd("MAIL FROM:<a@x.test>")
    assert h.cmd("RCPT TO:<@relay.test,@other.test:alice@example.test>").startswith("250")


def test_alias_expands_to_each_target_once(store):
    h = Harness(store)
    h.ehlo()
    a, b = len(inbox(store, "alice@example.test")), len(inbox(store, "bob@example.test"))
    h.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<team@example.test>\r\n"
           "RCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert h.send("x\r\n.\r\n")[0].startswith("250")
    assert len(inbox(store, "alice@example.test")) == a + 1
    assert len(inbox(store, "bob@example.test")) == b + 1
    # One blob for both copies.
    assert inbox(store, "alice@example.test")[-1] == inbox(store, "bob@example.test")[-1]


def test_alias_to_remote_address_is_queued_on_mx(store):
    h = Harness(store)
    h.ehlo()
    h.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<fwd@example.test>\r\nDATA\r\n")
    assert h.send("x\r\n.\r\n")[0].startswith("250")
    assert queued_for(store, "someone@remote.test")


# --- submission and AUTH ---------------------------------------------------------------
def test_submission_requires_tls_then_auth(store):
    h = Harness(store, role="submission")
    h.ehlo()
    assert h.cmd("MAIL FROM:<alice@example.test>").startswith("530 5.7.0")
    assert h.cmd("AUTH PLAIN " + b64(f"\0alice@example.test\0{PASSWORD}")).startswith(
        "530 5.7.0")
    h.start_tls()
    assert h.cmd("MAIL FROM:<alice@example.test>").startswith("503 5.5.1")   # EHLO again
    h.ehlo()
    assert h.cmd("MAIL FROM:<alice@example.test>").startswith("530 5.7.0")


def test_mx_does_not_offer_auth(store):
    h = Harness(store, tls=True)
    h.ehlo()
    assert h.cmd("AUTH PLAIN " + b64(f"\0alice@example.test\0{PASSWORD}")).startswith("503")


def test_auth_plain_then_relay_with_dsn_parameters(store):
    h = authed(store)
    replies = h.send("MAIL FROM:<alice@example.test> RET=HDRS ENVID=abc+2Bdef SIZE=100\r\n"
                     "RCPT TO:<rcpt@remote.test> NOTIFY=SUCCESS,FAILURE "
                     "ORCPT=rfc822;rcpt+40remote.test\r\nDATA\r\n")
    assert [r[:3] for r in replies] == ["250", "250", "354"]
    assert h.send("Subject: out\r\n\r\nhello\r\n.\r\n")[0].startswith("250")
    q = queued_for(store, "rcpt@remote.test")[-1]
    assert q["notify"] == "SUCCESS,FAILURE"
    assert q["orcpt"] == "rfc822;rcpt@remote.test"
    assert q["mail_from"] == "alice@example.test"
    row = store.conn.execute("SELECT ret, envid FROM queue WHERE message_id=?",
                             (q["message_id"],)).fetchone()
    assert row == ("HDRS", "abc+def")
    blob = asyncio.run(store.read_blob(q["blob"]))
    assert b"with ESMTPSA" in blob and b"Return-Path" not in blob
    assert b"(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256 bits))" in blob


def test_sender_must_be_owned_or_aliased(store):
    h = authed(store)
    assert h.cmd("MAIL FROM:<bob@example.test>").startswith("553 5.7.1")
    assert h.cmd("MAIL FROM:<alice.smith@example.test>").startswith("250")
    h.cmd("RSET")
    assert h.cmd("MAIL FROM:<>").startswith("250")


def test_sender_check_can_be_disabled(store):
    import dataclasses
    cfg = make_config()
    cfg = dataclasses.replace(cfg, submission=dataclasses.replace(cfg.submission,
                                                                  enforce_sender=False))
    h = authed(store, config=cfg)
    assert h.cmd("MAIL FROM:<bob@example.test>").startswith("250")


def test_auth_login_with_and_without_initial_response(store):
    h = Harness(store, role="submission", tls=True)
    h.ehlo()
    assert h.cmd("AUTH LOGIN") == "334 " + b64("Username:")
    assert h.cmd(b64("bob@example.test")) == "334 " + b64("Password:")
    assert h.cmd(b64(PASSWORD)).startswith("235 2.7.0")
    assert h.cmd("AUTH LOGIN").startswith("503 5.5.1")       # already authenticated
    h2 = Harness(store, role="submission", tls=True)
    h2.ehlo()
    assert h2.cmd("AUTH LOGIN " + b64("bob@example.test")) == "334 " + b64("Password:")
    assert h2.cmd(b64(PASSWORD)).startswith("235")


def test_auth_scram_sha_256(store):
    h = Harness(store, role="submission", tls=True)
    h.ehlo()
    client = scramp.ScramClient(["SCRAM-SHA-256"], "alice@example.test", PASSWORD)
    reply = h.cmd("AUTH SCRAM-SHA-256 " + b64(client.get_client_first()))
    assert reply.startswith("334 ")
    client.set_server_first(base64.b64decode(reply[4:]).decode())
    reply = h.cmd(b64(client.get_client_final()))
    assert reply.startswith("334 ")
    client.set_server_final(base64.b64decode(reply[4:]).decode())   # verifies the server
    assert h.cmd("").startswith("235 2.7.0")


def test_auth_scram_wrong_password(store):
    h = Harness(store, role="submission", tls=True)
    h.ehlo()
    client = scramp.ScramClient(["SCRAM-SHA-256"], "alice@example.test", "wrong-password")
    reply = h.cmd("AUTH SCRAM-SHA-256 " + b64(client.get_client_first()))
    client.set_server_first(base64.b64decode(reply[4:]).decode())
    assert h.cmd(b64(client.get_client_final())).startswith("535 5.7.8")


def test_auth_failures_cancel_and_lockout(store):
    h = Harness(store, role="submission", tls=True)
    h.ehlo()
    assert h.cmd("AUTH CRAM-MD5").startswith("504 5.5.4")
    assert h.cmd("AUTH PLAIN") == "334 "
    assert h.cmd("*").startswith("501 5.0.0")
    assert h.cmd("AUTH PLAIN !!!").startswith("501 5.5.2")
    for _ in range(3):      # max_failures = 3 in the harness config
        assert h.cmd("AUTH PLAIN " + b64("\0alice@example.test\0nope")).startswith("535 5.7.8")
    # Locked out now: even the right password is refused, temporarily.
    assert h.cmd("AUTH PLAIN " + b64(f"\0alice@example.test\0{PASSWORD}")).startswith(
        "454 4.7.0")
    # The lockout is per IP and shared: a new session from the same IP is refused too.
    h2 = Harness(store, role="submission", tls=True, lockout=h.lockout)
    h2.ehlo()
    assert h2.cmd("AUTH PLAIN " + b64(f"\0alice@example.test\0{PASSWORD}")).startswith("454")


def test_lockout_expires_with_time(store):
    from mailwright.auth.lockout import AuthLockout
    now = [1000.0]
    lockout = AuthLockout(make_config().auth, clock=lambda: now[0])
    for _ in range(3):
        lockout.record_failure("192.0.2.7")
    assert lockout.locked_for("192.0.2.7") > 0
    now[0] += 901
    assert lockout.locked_for("192.0.2.7") == 0
    h = Harness(store, role="submission", tls=True, lockout=lockout)
    h.ehlo()
    assert h.cmd("AUTH PLAIN " + b64(f"\0alice@example.test\0{PASSWORD}")).startswith("235")


def test_growing_delay_after_failures(store):
    from mailwright.auth.lockout import AuthLockout
    from mailwright.config import AuthSettings
    lockout = AuthLockout(AuthSettings(max_failures=10, failure_delay=1.0))
    delays = [lockout.record_failure("198.51.100.1") for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_plain_with_other_authzid_is_refused(store):
    h = Harness(store, role="submission", tls=True)
    h.ehlo()
    assert h.cmd("AUTH PLAIN " + b64(f"bob@example.test\0alice@example.test\0{PASSWORD}")
                 ).startswith("535")


# --- limits -------------------------------------------------------------------------
def test_size_limits_on_mail_and_data(store):
    h = Harness(store, config=make_config(max_message_size=2000))
    h.ehlo()
    assert h.cmd("MAIL FROM:<a@x.test> SIZE=2001").startswith("552 5.3.4")
    h.send("MAIL FROM:<a@x.test> SIZE=100\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert h.send(("x" * 70 + "\r\n") * 40 + ".\r\n")[0].startswith("552 5.3.4")
    assert h.session.transaction is None
    assert h.cmd("NOOP").startswith("250")     # the session goes on


def test_too_many_recipients(store):
    events = Events()
    h = Harness(store, config=make_config(max_recipients=2), events=events.log)
    h.ehlo()
    h.cmd("MAIL FROM:<a@x.test>")
    assert h.cmd("RCPT TO:<alice@example.test>").startswith("250")
    assert h.cmd("RCPT TO:<bob@example.test>").startswith("250")
    assert h.cmd("RCPT TO:<team@example.test>").startswith("452 4.5.3")
    # Every RCPT refusal is a "rejected" event with the submission rule's reason.
    assert events.data("rejected") == {"ip": "192.0.2.7", "code": 452,
                                       "reason": "too-many-recipients",
                                       "rcpt": "team@example.test"}


def test_messages_per_connection(store):
    h = Harness(store, config=make_config(max_messages_per_connection=1))
    h.ehlo()
    h.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert h.send("x\r\n.\r\n")[0].startswith("250")
    assert h.cmd("MAIL FROM:<a@x.test>").startswith("421 4.7.0")
    assert h.actions[-1] is Action.CLOSE


def test_error_limit_closes_session(store):
    h = Harness(store, config=make_config(max_errors=3))
    replies = h.send("FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n")
    assert [r[:3] for r in replies] == ["500", "500", "500", "421"]
    assert h.actions[-1] is Action.CLOSE


def test_command_line_too_long(store):
    h = Harness(store)
    assert h.cmd("NOOP " + "x" * 600).startswith("500 5.5.2")
    # MAIL may be longer (parameters), up to its allowance.
    h.ehlo()
    assert h.cmd("MAIL FROM:<a@x.test> ENVID=" + "x" * 100).startswith("250")
    # Past the hard limit the line is dropped whole and the session resynchronises.
    replies = h.send("NOOP " + "y" * 20000 + "\r\nRSET\r\n")
    assert [r[:3] for r in replies] == ["500", "250"]


# --- DATA content ---------------------------------------------------------------------
def data_reply(h: Harness, content: bytes) -> list[str]:
    h.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    return h.send(content)


def test_dot_unstuffing_and_byte_exact_8bit(store):
    h = Harness(store)
    h.ehlo()
    body = "Subject: ünïcödé\r\n\r\n..leading dot\r\n.\r\nä\xa0\r\n".encode()
    wire = body.replace(b"\r\n.", b"\r\n..")          # dot-stuffing (RFC 5321 §4.5.2)
    assert data_reply(h, wire + b".\r\n")[0].startswith("250")
    stored = inbox(store, "alice@example.test")[-1]
    assert stored.endswith(b"\r\n\r\n..leading dot\r\n.\r\n" + "ä\xa0".encode() + b"\r\n")
    assert "Subject: ünïcödé".encode() in stored


def test_empty_message(store):
    h = Harness(store)
    h.ehlo()
    assert data_reply(h, b".\r\n")[0].startswith("250")


@pytest.mark.parametrize("cut", [0, 1, 2])
@pytest.mark.parametrize("smuggle", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r"])
def test_smuggling_attempts_do_not_end_data(store, smuggle, cut):
    h = Harness(store)
    h.ehlo()
    before = len(inbox(store, "bob@example.test"))
    head = b"Subject: one\r\n\r\nfirst" + smuggle[:cut]
    wire = (smuggle[cut:] +
            b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nsecond\r\n.\r\n")
    # Also with the stream cut inside the attempt, as TCP may deliver it.
    replies = data_reply(h, head) + h.send(wire) if cut else data_reply(h, head + wire)
    # One reply only: everything up to CRLF.CRLF was one message, rejected as a whole.
    assert len(replies) == 1 and replies[0].startswith("554 5.6.0")
    assert len(inbox(store, "bob@example.test")) == before


def test_nul_refused_in_data_and_commands(store):
    h = Harness(store)
    h.ehlo()
    assert data_reply(h, b"a\x00b\r\n.\r\n")[0].startswith("554 5.6.0")
    assert h.cmd("NOOP \x00").startswith("501 5.5.2")


def test_overlong_text_line_rejected(store):
    # Only with the strict RFC 5321 §4.5.3.1.6 limit set: by default long lines pass.
    h = Harness(store, config=make_config(text_line=1000))
    h.ehlo()
    assert data_reply(h, b"x" * 998 + b"\r\n.\r\n")[0].startswith("250")
    assert data_reply(h, b"x" * 999 + b"\r\n.\r\n")[0].startswith("554 5.6.0")


# --- BDAT (RFC 3030) -------------------------------------------------------------------
def test_bdat_chunks_stored_byte_exact(store):
    h = Harness(store)
    h.ehlo()
    h.send("MAIL FROM:<a@x.test> BODY=8BITMIME\r\nRCPT TO:<alice@example.test>\r\n")
    part1, part2 = b"Subject: chunked\r\n\r\n.dot stays\r\n", "naïve\r\n".encode()
    replies = h.send(f"BDAT {len(part1)}\r\n".encode() + part1 +
                     f"BDAT {len(part2)} LAST\r\n".encode() + part2)
    assert replies[0] == f"250 2.0.0 {len(part1)} octets received"
    assert replies[1].startswith("250 2.0.0 OK: queued as")
    assert inbox(store, "alice@example.test")[-1].endswith(part1 + part2)


def test_bdat_errors_consume_the_chunk(store):
    h = Harness(store)
    h.ehlo()
    replies = h.send(b"BDAT 6 LAST\r\nNOOP\r\nNOOP\r\n")   # the first NOOP is the chunk
    assert [r[:3] for r in replies] == ["503", "250"]
    h.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<alice@example.test>\r\n")
    assert h.send("BDAT 3\r\nabc")[0].startswith("250")
    assert h.cmd("DATA").startswith("503 5.5.1")
    assert h.send("BDAT x\r\n")[0].startswith("501")
    assert h.actions[-1] is Action.CLOSE


def test_bdat_too_big(store):
    h = Harness(store, config=make_config(max_message_size=10))
    h.ehlo()
    h.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<alice@example.test>\r\n")
    assert h.send("BDAT 11 LAST\r\n" + "x" * 11)[0].startswith("552 5.3.4")
    assert h.cmd("NOOP").startswith("250")


# --- pipelining, STARTTLS ---------------------------------------------------------------
def test_pipelined_replies_in_order(store):
    h = Harness(store, config=make_config(max_errors=1000))
    h.ehlo()
    batch = "".join("MAIL FROM:<a@x.test>\r\nRCPT TO:<nobody@example.test>\r\n"
                    "RCPT TO:<bob@example.test>\r\nRSET\r\n" for _ in range(50))
    replies = h.send(batch)
    assert [r[:3] for r in replies] == ["250", "550", "250", "250"] * 50


def test_starttls_discards_pipelined_plaintext(store):
    h = Harness(store, role="submission")
    h.ehlo()
    replies = h.send("STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n")
    assert replies == ["220 2.0.0 Ready to start TLS"]
    assert h.actions[-1] is Action.START_TLS
    h.session.tls_started(make_tls())
    assert h.send(b"") == []                 # nothing left over from before the handshake
    assert h.cmd("MAIL FROM:<a@x.test>").startswith("503 5.5.1")   # state was reset
    assert h.ehlo().startswith("250")
    assert h.cmd("STARTTLS").startswith("503")


def make_tls():
    from .session_harness import TLS
    return TLS


# --- parameters and SMTPUTF8 ---------------------------------------------------------
@pytest.mark.parametrize("line, code", [
    ("MAIL FROM:<a@x.test> FOO=1", "555 5.5.4"),
    ("MAIL FROM:<a@x.test> BODY=BINARYMIME", "501 5.5.4"),
    ("MAIL FROM:<a@x.test> RET=ALL", "501 5.5.4"),
    ("MAIL FROM:<a@x.test> SIZE=abc", "501 5.5.4"),
    ("MAIL FROM:<a@x.test> SMTPUTF8=yes", "501 5.5.4"),
    ("MAIL FROM:<a@x.test> ENVID=bad+zz", "501 5.5.4"),
    ("MAIL FROM:a@x.test", "501"),
    ("MAIL FROM:<a@x.test", "501 5.5.2"),
    ("MAIL TO:<a@x.test>", "501 5.5.2"),
    ("MAIL FROM:<a@@x.test>", "501 5.1.7"),
    ("MAIL FROM:<a@-x.test>", "501 5.1.7"),
])
def test_bad_mail_parameters(store, line, code):
    h = Harness(store)
    h.ehlo()
    assert h.cmd(line).startswith(code)


@pytest.mark.parametrize("param", ["NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES",
                                   "ORCPT=rfc822", "ORCPT=;x", "X=1"])
def test_bad_rcpt_parameters(store, param):
    h = Harness(store)
    h.ehlo()
    h.cmd("MAIL FROM:<a@x.test>")
    assert h.cmd(f"RCPT TO:<alice@example.test> {param}")[0] == "5"


def test_smtputf8_addresses(store):
    h = Harness(store)
    h.ehlo()
    h.cmd("MAIL FROM:<a@x.test>")
    assert h.cmd("RCPT TO:<Dörte@bücher.test>").startswith("553 5.6.7")
    h.cmd("RSET")
    h.cmd("MAIL FROM:<jörg@x.test> SMTPUTF8")
    assert h.cmd("RCPT TO:<dörte@xn--bcher-kva.test>").startswith("250")
    h.cmd("DATA")
    body = "From: jörg@x.test\r\nSubject: grüße\r\n\r\nHallo\r\n".encode()
    assert h.send(body + b".\r\n")[0].startswith("250")
    stored = inbox(store, "Dörte@bücher.test")[-1]
    assert stored.endswith(body) and b"with UTF8SMTP id" in stored
    assert "Return-Path: <jörg@x.test>".encode() in stored


# --- the rest ------------------------------------------------------------------------
def test_misc_commands(store):
    h = Harness(store)
    assert h.cmd("VRFY alice").startswith("252 2.5.0")
    assert h.cmd("VRFY").startswith("501")
    assert h.cmd("EXPN team").startswith("502")
    assert h.cmd("HELP").startswith("214 2.0.0")
    assert h.cmd("NOOP whatever").startswith("250 2.0.0")
    assert h.cmd("RSET x").startswith("501")
    assert h.cmd("XYZZY").startswith("500 5.5.2")
    assert h.cmd("\xff".encode("latin-1").decode("latin-1")).startswith("500")
    assert h.cmd("QUIT").startswith("221 2.0.0")
    assert h.actions[-1] is Action.CLOSE


def test_http_request_closes(store):
    h = Harness(store)
    assert h.cmd("GET / HTTP/1.1").startswith("421")
    assert h.actions[-1] is Action.CLOSE


def test_timeout_reply(store):
    h = Harness(store)
    assert h.session.timed_out() == b"421 4.4.2 Timeout exceeded, closing connection\r\n"


def test_events_recorded(store):
    from mailwright.events.log import EventLog
    h = Harness(store, events=EventLog(store))
    h.ehlo()
    data_reply(h, b"hello\r\n.\r\n")
    store._writer.submit(lambda c: None).result()       # wait for the writer to pass the events
    kinds = [e["type"] for e in asyncio.run(store.events(10))]
    assert "accepted" in kinds


def _scram_client_with_authzid(user: str, authzid: str, password: str):
    """A SCRAM exchange as Cyrus SASL clients do it: the GS2 header names an authzid."""
    import hashlib
    import hmac
    import os

    nonce = base64.b64encode(os.urandom(12)).decode()
    gs2 = f"n,a={authzid},"
    first_bare = f"n={user},r={nonce}"

    def final(server_first: str) -> str:
        attrs = dict(item.split("=", 1) for item in server_first.split(","))
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        without = f"c={base64.b64encode(gs2.encode()).decode()},r={attrs['r']}"
        message = f"{first_bare},{server_first},{without}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), message,
                             hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return f"{without},p={base64.b64encode(proof).decode()}"

    return gs2 + first_bare, final


@pytest.mark.parametrize("authzid,ok", [("alice@example.test", True),
                                        ("bob@example.test", False)])
def test_auth_scram_with_own_authzid(store, authzid, ok):
    # mbsync and mutt (Cyrus SASL) name themselves as authzid; acting as another is refused.
    h = Harness(store, role="submission", tls=True)
    h.ehlo()
    first, final = _scram_client_with_authzid("alice@example.test", authzid, PASSWORD)
    reply = h.cmd("AUTH SCRAM-SHA-256 " + b64(first))
    assert reply.startswith("334 ")
    reply = h.cmd(b64(final(base64.b64decode(reply[4:]).decode())))
    if ok:
        assert reply.startswith("334 ") and base64.b64decode(reply[4:]).startswith(b"v=")
        assert h.cmd("").startswith("235 2.7.0")
    else:
        assert reply.startswith("535 5.7.8")
