"""The IMAP session state machine over a real store: states, literals, responses that
parse back, and arbitrary input that never breaks it."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwright.address import parse_mailbox
from mailwright.auth.logins import Logins
from mailwright.events.log import EventLog
from mailwright.imap.notify import MailboxWatch
from mailwright.imap.parser import Reader
from mailwright.imap.session import ImapSession
from mailwright.net.connection import Action
from mailwright.store.messages import Delivery, LocalCopy

from .conftest import PASSWORD
from .session_harness import TLS, drive, make_config

USER = "imap@example.test"
RESPONSE = re.compile(rb"^(\* |\+ |[^ ]+ (OK|NO|BAD) )")


@pytest.fixture(scope="module")
def imap_store(store):
    if asyncio.run(store.credentials(USER)) is None:
        asyncio.run(store.add_account(parse_mailbox(USER), PASSWORD))
    account_id = asyncio.run(store.account_id(USER))

    async def fill():
        for i in range(3):
            await store.deliver(Delivery(
                message_id=f"IMAP{i}", mail_from="a@x.test", local=[LocalCopy(account_id)],
                local_content=f"Subject: message {i}\r\nFrom: A <a@x.test>\r\n\r\n"
                              f"body {i}\r\n".encode()))
    if not asyncio.run(store.message_states(asyncio.run(store.mailbox(account_id, "INBOX")).id)):
        asyncio.run(fill())
    return store


class Imap:
    def __init__(self, store, tls=True):
        config = make_config()
        self.s = ImapSession("192.0.2.9", TLS if tls else None, config, store,
                             Logins.from_settings(config.auth), EventLog(None), MailboxWatch(store))
        self.greeting = self.s.greeting()
        self.actions: list[Action] = []

    def send(self, data: bytes | str) -> bytes:
        out, action = drive(self.s, data.encode() if isinstance(data, str) else data)
        self.actions.append(action)
        return out

    def cmd(self, line: str) -> list[bytes]:
        return self.send(line + "\r\n").split(b"\r\n")[:-1]

    def login(self) -> None:
        assert self.cmd(f'a LOGIN {USER} "{PASSWORD}"')[-1].startswith(b"a OK")


def test_states_and_capabilities(imap_store):
    c = Imap(imap_store, tls=False)
    assert b"LOGINDISABLED" in c.greeting and b"STARTTLS" in c.greeting
    assert c.cmd("1 SELECT INBOX")[-1].startswith(b"1 BAD")
    assert c.cmd("2 STARTTLS") == [b"2 OK Begin TLS negotiation now"]
    assert c.actions[-1] is Action.START_TLS
    c = Imap(imap_store)
    assert b"AUTH=SCRAM-SHA-256" in c.greeting and b"LOGINDISABLED" not in c.greeting
    c.login()
    assert c.cmd("3 STARTTLS")[-1].startswith(b"3 BAD")
    assert c.cmd("4 FETCH 1 FLAGS")[-1].startswith(b"4 BAD")     # nothing selected
    lines = c.cmd("5 CAPABILITY")
    assert b"CONDSTORE" in lines[0] and lines[-1] == b"5 OK CAPABILITY completed"
    assert c.cmd("6 LOGOUT") == [b"* BYE Logging out", b"6 OK LOGOUT completed"]
    assert c.actions[-1] is Action.CLOSE


def test_login_with_synchronizing_literals(imap_store):
    c = Imap(imap_store)
    assert c.send(f"a LOGIN {{{len(USER)}}}\r\n") == b"+ Ready for literal data\r\n"
    assert c.send(USER.encode() + f" {{{len(PASSWORD)}}}\r\n".encode()) == \
        b"+ Ready for literal data\r\n"
    assert c.send(PASSWORD.encode() + b"\r\n").startswith(b"a OK [CAPABILITY")


def test_select_fetch_search_responses_parse_back(imap_store):
    c = Imap(imap_store)
    c.login()
    lines = c.cmd("s SELECT INBOX")
    assert b"* 3 EXISTS" in lines and lines[-1] == b"s OK [READ-WRITE] SELECT completed"
    out = c.send("f FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER])\r\n")
    # every untagged FETCH parses back as "* n FETCH (...)" with balanced lists
    r = Reader(out)
    for n in (1, 2, 3):
        r.expect(b"* %d FETCH (" % n)
        depth = 1
        while depth:
            ch = r.peek()
            if ch in (b'"', b"{"):
                r.string()
                continue
            depth += {b"(": 1, b")": -1}.get(ch, 0)
            r.i += 1
        r.expect(b"\r\n")
    assert r.rest() == b"f OK FETCH completed"
    assert c.cmd("q SEARCH SUBJECT message BODY 1") == [b"* SEARCH 2", b"q OK SEARCH completed"]
    c.cmd("e ENABLE IMAP4rev2")
    assert c.cmd("r SEARCH ALL")[0] == b'* ESEARCH (TAG "r") ALL 1:3'


ALPHABET = st.sampled_from([b"a", b"1", b" ", b"(", b")", b"{", b"}", b"*", b":", b",",
                            b"\\", b'"', b"[", b"]", b"<", b">", b".", b"$", b"+", b"\x00",
                            b"\xc3\xa9", b"FETCH", b"UID", b"SEARCH", b"STORE", b"FLAGS",
                            b"BODY", b"NOT", b"OR", b"LIST", b"SELECT", b"INBOX", b"\r\n"])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ALPHABET, max_size=40))
def test_arbitrary_input_never_breaks_the_session(imap_store, pieces):
    c = Imap(imap_store)
    c.login()
    c.cmd("s SELECT INBOX")
    out = c.send(b"".join(pieces) + b"\r\nz NOOP\r\n")
    if b"{" not in out:                  # no literal data: every line is a response line
        assert all(RESPONSE.match(line) for line in out.split(b"\r\n") if line), out
    if not c.s.closed and c.s.idle_tag is None and not c.s.sasl.active and \
            c.s.framer.need == 0 and not c.s.framer.command:
        assert b"z OK NOOP completed" in out
    assert len(asyncio.run(imap_store.message_states(
        asyncio.run(
                imap_store.mailbox(asyncio.run(imap_store.account_id(USER)), "INBOX")).id))) >= 3


def test_backfill_parses_messages_stored_before_metadata(imap_store):
    # An upgraded data_dir: messages whose metadata was never computed.
    box = asyncio.run(imap_store.mailbox(asyncio.run(imap_store.account_id(USER)), "INBOX"))
    data = asyncio.run(imap_store.message_data(box.id, [1], meta=True))[0]
    def forget(c):
        c.execute("DELETE FROM message_meta WHERE blob=?", (data.blob,))
        c.execute("UPDATE messages SET meta_id=NULL WHERE blob=?", (data.blob,))
    imap_store._writer.submit(forget).result()
    assert asyncio.run(imap_store.message_data(box.id, [1], meta=True))[0].envelope is None
    assert asyncio.run(imap_store.backfill_meta()) == 1
    assert asyncio.run(imap_store.message_data(box.id, [1], meta=True))[0].envelope == data.envelope
    assert asyncio.run(imap_store.backfill_meta()) == 0


# --- the too-many-errors close counts BAD responses ---------------------------------------
def test_too_many_bad_commands_close_the_connection(imap_store):
    # Every BAD counts (RFC 9051 §7.1.3), whatever the tag's length, and so does the
    # untagged BAD for a line without a tag; a NO (a command understood but refused)
    # does not. max_errors is 10: nine BADs, then the tenth closes.
    c = Imap(imap_store)
    tag = "t" * 100
    for _ in range(5):
        assert c.cmd(f"{tag} FROBNICATE")[-1].startswith(tag.encode() + b" BAD")
    for _ in range(2):
        assert c.cmd("+") == [b"* BAD Missing or invalid tag"]
        assert c.cmd("n SELECT no-such-mailbox")[-1].startswith(b"n BAD")   # not logged in
    c.login()
    for _ in range(12):
        assert c.cmd("n SELECT no-such-mailbox")[-1].startswith(b"n NO")
    assert not c.s.closed
    assert c.cmd("x NOOP") == [b"x OK NOOP completed"]
    lines = c.cmd("y NOOP extra")
    assert lines[-2].startswith(b"y BAD") and lines[-1] == b"* BYE Too many errors, closing"
    assert c.actions[-1] is Action.CLOSE and c.s.closed
