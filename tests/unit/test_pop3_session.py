"""The POP3 session state machine over a real store: states, commands, errors."""

from __future__ import annotations

import asyncio
import base64

import pytest
import scramp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwright.address import parse_mailbox
from mailwright.auth.lockout import AuthLockout
from mailwright.auth.logins import Logins
from mailwright.events.log import EventLog
from mailwright.net.connection import Action
from mailwright.pop3.session import Pop3Session, Shared, dot_stuff, top
from mailwright.store.messages import Delivery, LocalCopy

from .conftest import PASSWORD
from .session_harness import TLS, drive, make_config

USER = "pop@example.test"


def shared_state() -> Shared:
    import tempfile
    from pathlib import Path

    from mailwright.pop3.locks import MaildropLocks
    return Shared(MaildropLocks(Path(tempfile.mkdtemp())), {})


@pytest.fixture(scope="module")
def pop_store(store):
    """Three messages in pop@example.test's INBOX."""
    if asyncio.run(store.credentials(USER)) is None:
        asyncio.run(store.add_account(parse_mailbox(USER), PASSWORD))
    account_id = asyncio.run(store.account_id(USER))

    async def fill():
        for i, body in enumerate([b"Subject: one\r\n\r\nfirst\r\n",
                                  b"Subject: two\r\n\r\n.dotted\r\nline 2\r\nline 3\r\n",
                                  b"Subject: three\r\n\r\nno final newline"]):
            await store.deliver(Delivery(message_id=f"POP{i}", mail_from="a@x.test",
                                         local=[LocalCopy(account_id)], local_content=body))
    if not asyncio.run(store.maildrop(USER)).messages:
        asyncio.run(fill())
    return store


class Pop:
    def __init__(self, store, tls=True, shared=None, config=None, lockout=None):
        config = config or make_config()
        self.s = Pop3Session("192.0.2.9", TLS if tls else None, config, store,
                             Logins(lockout or AuthLockout(config.auth)), EventLog(None),
                             shared or shared_state())
        assert self.s.greeting().startswith(b"+OK")
        self.actions = []

    def send(self, data: str | bytes) -> bytes:
        out, action = drive(self.s, data.encode() if isinstance(data, str) else data)
        self.actions.append(action)
        return out

    def cmd(self, line: str) -> str:
        return self.send(line + "\r\n").decode()

    def login(self, user=USER) -> str:
        self.cmd(f"USER {user}")
        return self.cmd(f"PASS {PASSWORD}")


def test_login_stat_list_uidl(pop_store):
    p = Pop(pop_store)
    assert p.login().startswith("+OK pop@example.test has 3 messages")
    assert p.cmd("STAT").startswith("+OK 3 ")
    listing = p.cmd("LIST")
    assert listing.startswith("+OK 3 messages\r\n1 ") and listing.endswith("\r\n.\r\n")
    uidl = p.cmd("UIDL").split("\r\n")[1:4]
    box = asyncio.run(pop_store.maildrop(USER))
    assert uidl == [f"{n} {box.uidvalidity}.{m.uid}" for n, m in enumerate(box.messages, 1)]
    assert p.cmd("UIDL 2") == f"+OK 2 {box.uidvalidity}.{box.messages[1].uid}\r\n"
    assert p.cmd("LIST 9").startswith("-ERR")


def test_retr_is_byte_exact_with_dot_stuffing(pop_store):
    p = Pop(pop_store)
    p.login()
    reply = p.send("RETR 2\r\n")
    stored = asyncio.run(
            pop_store.read_blob(asyncio.run(pop_store.maildrop(USER)).messages[1].blob))
    assert reply == f"+OK {len(stored)} octets\r\n".encode() + \
        stored.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    assert b"\r\n..dotted\r\n" in reply
    # A message without a final CRLF still ends cleanly.
    assert p.send("RETR 3\r\n").endswith(b"no final newline\r\n.\r\n")


def test_top(pop_store):
    p = Pop(pop_store)
    p.login()
    assert p.send("TOP 2 0\r\n").endswith(b"Subject: two\r\n\r\n.\r\n")
    assert p.send("TOP 2 2\r\n").endswith(b"\r\n\r\n..dotted\r\nline 2\r\n.\r\n")
    assert p.cmd("TOP 2").startswith("-ERR")
    assert p.cmd("TOP x 1").startswith("-ERR")


def test_dele_rset_and_quit_without_update(pop_store):
    p = Pop(pop_store)
    p.login()
    assert p.cmd("DELE 1").startswith("+OK")
    assert p.cmd("DELE 1").startswith("-ERR")
    assert p.cmd("RETR 1").startswith("-ERR")
    assert p.cmd("STAT").startswith("+OK 2 ")
    assert p.cmd("RSET").startswith("+OK Maildrop has 3 messages")
    p.cmd("DELE 2")
    p.s.disconnected()            # the connection drops: nothing is deleted
    assert len(asyncio.run(pop_store.maildrop(USER)).messages) == 3


def test_in_use_and_lock_released(pop_store):
    shared = shared_state()
    first = Pop(pop_store, shared=shared)
    first.login()
    second = Pop(pop_store, shared=shared)
    assert second.login().startswith("-ERR [IN-USE]")
    first.s.disconnected()
    assert second.login().startswith("+OK")


def test_login_delay(pop_store):
    import dataclasses
    cfg = make_config()
    cfg = dataclasses.replace(cfg, pop3=dataclasses.replace(cfg.pop3, login_delay=300))
    shared = shared_state()
    p = Pop(pop_store, shared=shared, config=cfg)
    p.login()
    assert "LOGIN-DELAY 300" in p.cmd("CAPA")
    p.s.disconnected()
    assert Pop(pop_store, shared=shared, config=cfg).login().startswith("-ERR [LOGIN-DELAY]")


def test_plaintext_refused_without_tls(pop_store):
    p = Pop(pop_store, tls=False)
    capa = p.cmd("CAPA").split("\r\n")
    assert "STLS" in capa and "USER" not in capa
    assert not any(c.startswith("SASL") for c in capa)
    assert p.cmd(f"USER {USER}").startswith("-ERR [AUTH]")
    assert p.cmd("AUTH PLAIN").startswith("-ERR [AUTH]")
    assert p.cmd("STLS").startswith("+OK")
    assert p.actions[-1] is Action.START_TLS


def test_wrong_password_and_lockout(pop_store):
    p = Pop(pop_store)
    p.cmd(f"USER {USER}")
    assert p.cmd("PASS wrong-password").startswith("-ERR [AUTH]")
    assert p.cmd("PASS x").startswith("-ERR USER first")
    for _ in range(2):
        p.cmd(f"USER {USER}")
        p.cmd("PASS wrong-password")
    assert p.login().startswith("-ERR [AUTH] Too many failed logins")


def test_auth_plain_and_scram(pop_store):
    p = Pop(pop_store)
    assert p.cmd("AUTH") == "+OK Mechanisms follow\r\nPLAIN\r\nSCRAM-SHA-256\r\n.\r\n"
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert p.cmd(f"AUTH PLAIN {plain}").startswith("+OK pop@example.test has")
    p.s.disconnected()

    q = Pop(pop_store)
    client = scramp.ScramClient(["SCRAM-SHA-256"], USER, PASSWORD)
    reply = q.cmd("AUTH SCRAM-SHA-256 " + base64.b64encode(client.get_client_first().encode())
                  .decode())
    assert reply.startswith("+ ")
    client.set_server_first(base64.b64decode(reply[2:]).decode())
    reply = q.cmd(base64.b64encode(client.get_client_final().encode()).decode())
    client.set_server_final(base64.b64decode(reply[2:]).decode())
    assert q.cmd("").startswith("+OK pop@example.test has")
    q.s.disconnected()

    r = Pop(pop_store)
    assert r.cmd("AUTH PLAIN") == "+ \r\n"
    assert r.cmd("*").startswith("-ERR")
    assert r.cmd("AUTH LOGIN").startswith("-ERR Unrecognized")


@pytest.mark.parametrize("command", ["STAT", "LIST", "RETR 1", "DELE 1", "RSET", "NOOP",
                                     "TOP 1 1", "UIDL", "UIDL 1", "LIST 1"])
def test_transaction_commands_refused_before_login(pop_store, command):
    assert Pop(pop_store).cmd(command).startswith("-ERR")


@pytest.mark.parametrize("command", ["USER x@example.test", "PASS x", "STLS", "AUTH PLAIN"])
def test_authorization_commands_refused_after_login(pop_store, command):
    p = Pop(pop_store)
    p.login()
    assert p.cmd(command).startswith("-ERR")
    p.s.disconnected()


def test_misc_errors(pop_store):
    p = Pop(pop_store)
    assert p.cmd("APOP user digest").startswith("-ERR")
    assert p.cmd("XTND").startswith("-ERR Unknown command")
    assert p.cmd("USER " + "x" * 300).startswith("-ERR Command line too long")
    assert p.cmd("QUIT").startswith("+OK")
    assert p.actions[-1] is Action.CLOSE


def test_pipelined_commands_answered_in_order(pop_store):
    p = Pop(pop_store)
    out = p.send(f"USER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nNOOP\r\nLIST 1\r\n").decode()
    assert [line[:3] for line in out.split("\r\n")[:-1]] == ["+OK"] * 5
    p.s.disconnected()


def test_dot_stuff_and_top_helpers():
    assert dot_stuff(b".a\r\nb\r\n..c\r\n") == b"..a\r\nb\r\n...c\r\n.\r\n"
    assert dot_stuff(b"") == b".\r\n"
    assert dot_stuff(b"a\r\n.b", b"+OK 6\r\n") == b"+OK 6\r\na\r\n..b\r\n.\r\n"
    assert top(b"H: 1\r\n\r\nl1\r\nl2\r\n", 1) == b"H: 1\r\n\r\nl1\r\n"
    assert top(b"H: 1\r\n\r\nl1\r\nl2\r\n", 5) == b"H: 1\r\n\r\nl1\r\nl2\r\n"
    assert top(b"H: 1\r\n", 0) == b"H: 1\r\n"


POP_VERBS = ["USER", "PASS", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "QUIT", "TOP",
             "UIDL", "CAPA", "STLS", "AUTH", "APOP", "*", ""]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.builds(lambda v, a: f"{v} {a}\r\n".encode(), st.sampled_from(POP_VERBS),
              st.sampled_from(["", "1", "2 0", "0", "99", USER, PASSWORD, "PLAIN", "x y z"])),
    st.binary(max_size=80)), max_size=20))
def test_random_pop3_streams(pop_store, chunks):
    p = Pop(pop_store, shared=shared_state())
    p.login()
    for chunk in chunks:
        if p.s.closed:
            break
        out = p.send(chunk)
        assert not out or out[:1] in (b"+", b"-")
    p.s.disconnected()


def test_lock_not_released_twice(pop_store):
    shared = shared_state()
    a = Pop(pop_store, shared=shared)
    a.login()
    a.cmd("QUIT")                         # UPDATE releases the lock
    b = Pop(pop_store, shared=shared)
    assert b.login().startswith("+OK")
    a.s.disconnected()                    # A's connection closes after B logged in
    assert USER in shared.locks           # B still holds it
    assert Pop(pop_store, shared=shared).login().startswith("-ERR [IN-USE]")
    b.s.disconnected()
