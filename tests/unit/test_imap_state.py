"""Per-session IMAP state, from the RFC text: \\Recent (RFC 3501 §2.3.2, gone in
RFC 9051), FLAGS updates for new keywords (RFC 9051 §7.3.5), CONDSTORE enabling
commands and MODSEQ in every untagged FETCH (RFC 7162 §3.1), ESEARCH MODSEQ
(RFC 4731 §3.2), APPEND/MOVE into the selected mailbox and UIDVALIDITY of a
re-created mailbox (RFC 9051 §2.3.1.1). Sessions are driven without sockets."""

from __future__ import annotations

import asyncio
import re

import pytest

from mailwright.address import parse_mailbox
from mailwright.auth.logins import Logins
from mailwright.events.log import EventLog
from mailwright.imap.notify import MailboxWatch
from mailwright.imap.session import ImapSession
from mailwright.store.messages import Delivery, LocalCopy

from .conftest import PASSWORD
from .session_harness import TLS, drive, make_config

USER = "state@example.test"


@pytest.fixture
def store(make_store):
    """A store of our own per test, of each backend: \\Recent and MODSEQ values start
    from zero."""
    s = make_store()
    asyncio.run(s.add_domain("example.test"))
    asyncio.run(s.add_account(parse_mailbox(USER), PASSWORD))
    return s


class Imap:
    def __init__(self, store, login: bool = True):
        config = make_config()
        self.s = ImapSession("192.0.2.9", TLS, config, store, Logins.from_settings(config.auth),
                             EventLog(None), MailboxWatch(store))
        self.s.greeting()
        if login:
            assert self.cmd(f'a LOGIN {USER} "{PASSWORD}"')[-1].startswith(b"a OK")

    def send(self, data: bytes | str) -> bytes:
        return drive(self.s, data.encode() if isinstance(data, str) else data)[0]

    def cmd(self, line: str) -> list[bytes]:
        return self.send(line + "\r\n").split(b"\r\n")[:-1]

    def ok(self, line: str) -> list[bytes]:
        """The untagged lines of a command that must succeed."""
        lines = self.cmd("t " + line)
        assert lines[-1].startswith(b"t OK"), lines
        return lines[:-1]

    def append(self, flags: str = "", mailbox: str = "INBOX") -> list[bytes]:
        body = b"Subject: hi\r\n\r\nhello\r\n"
        flags = f" ({flags})" if flags else ""
        out = self.send(f"t APPEND {mailbox}{flags} {{{len(body)}+}}\r\n".encode() + body +
                        b"\r\n").split(b"\r\n")[:-1]
        assert out[-1].startswith(b"t OK"), out
        return out[:-1]


def deliver(store, count: int = 1) -> None:
    account_id = asyncio.run(store.account_id(USER))

    async def run():
        for i in range(count):
            await store.deliver(Delivery(
                message_id=f"S{i}-{id(store)}", mail_from="a@x.test",
                local=[LocalCopy(account_id)],
                local_content=f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode()))
    asyncio.run(run())


def status(session: Imap, items: str, mailbox: str = "INBOX") -> str:
    line = session.ok(f"STATUS {mailbox} ({items})")[0].decode()
    return line[line.index("(") + 1:-1]


def number(pattern: bytes, lines: list[bytes]) -> int:
    m = re.search(pattern, b"\n".join(lines))
    assert m, (pattern, lines)
    return int(m.group(1))


# --- \Recent -------------------------------------------------------------------------------------
def test_new_message_is_recent_in_exactly_one_session(store):
    a, b, c = Imap(store), Imap(store), Imap(store)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    deliver(store)
    lines_a = a.ok("NOOP")
    lines_b = b.ok("NOOP")
    assert b"* 1 EXISTS" in lines_a and b"* 1 EXISTS" in lines_b
    # RFC 3501 §2.3.2: the first session notified keeps \Recent; no other sees it.
    assert b"* 1 RECENT" in lines_a and b"* 0 RECENT" in lines_b
    assert a.ok("FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))"]
    assert b.ok("FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS ())"]
    # a third session, and a later SELECT, find nothing recent
    assert status(c, "MESSAGES RECENT") == "MESSAGES 1 RECENT 0"
    assert b"* 0 RECENT" in c.ok("SELECT INBOX")


def test_examine_shows_recent_without_claiming_it(store):
    c = Imap(store)
    deliver(store, 2)
    lines = c.ok("EXAMINE INBOX")
    assert b"* 2 EXISTS" in lines and b"* 2 RECENT" in lines
    c.ok("CLOSE")
    assert status(c, "MESSAGES RECENT") == "MESSAGES 2 RECENT 2"
    assert b"* 2 RECENT" in c.ok("SELECT INBOX")
    # the read-write session keeps them recent; no one else will get them
    assert status(c, "RECENT") == "RECENT 2"
    c.ok("CLOSE")
    assert status(c, "RECENT") == "RECENT 0"


def test_status_recent_after_append_to_a_mailbox_selected_elsewhere(store):
    a, b, c = Imap(store), Imap(store), Imap(store)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    # RFC 9051 §6.3.12: APPEND to the selected mailbox announces the message
    assert b"* 1 EXISTS" in a.append("\\Seen \\Flagged")
    assert b"* 1 EXISTS" in b.ok("NOOP")
    assert status(c, "MESSAGES UNSEEN RECENT") == "MESSAGES 1 UNSEEN 0 RECENT 0"
    assert b"* 2 EXISTS" in b.append()
    assert b"* 2 EXISTS" in a.ok("NOOP")
    assert status(c, "MESSAGES UNSEEN RECENT") == "MESSAGES 2 UNSEEN 1 RECENT 0"
    flags = a.ok("FETCH 1:2 FLAGS") + b.ok("FETCH 1:2 FLAGS")
    assert sum(line.count(b"\\Recent") for line in flags) == 2     # each message once


def test_imap4rev2_client_is_never_told_of_recent(store):
    deliver(store)
    c = Imap(store)
    c.ok("ENABLE IMAP4rev2")
    lines = c.ok("SELECT INBOX")
    assert not any(b"RECENT" in line for line in lines)
    assert c.ok("FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS ())"]
    deliver(store)
    lines = c.ok("NOOP")
    assert b"* 2 EXISTS" in lines and not any(b"RECENT" in line for line in lines)


def test_idle_claims_recent_before_telling_new_messages(store):
    a = Imap(store)
    a.ok("SELECT INBOX")

    async def run() -> tuple[bytes, bytes, int]:
        woken = []
        a.s.wake = lambda: woken.append(1)
        a.s.receive(b"i IDLE\r\n")
        _, _, pending = a.s.process()              # IDLE reads the store: awaited
        out, _ = a.s.complete(await pending)
        assert out.startswith(b"+ ")
        await store.deliver(Delivery(message_id="idle1", mail_from="a@x.test",
                                     local=[LocalCopy(await store.account_id(USER))],
                                     local_content=b"Subject: x\r\n\r\nx\r\n"))
        # The claim is a store write, run as a task: the message is told once it is
        # done, by this update if the claim finished during its reads (a database
        # over the network), else by the one after the wake (SQLite's writer).
        first = (await a.s.idle_update())
        await a.s._idle_claim
        return first, (await a.s.idle_update()), len(woken)

    first, second, wakes = asyncio.run(run())
    assert wakes == 1
    assert sorted([first, second]) == [b"", b"* 1 EXISTS\r\n* 1 RECENT\r\n"]
    assert a.send("DONE\r\n").startswith(b"i OK")


def test_claims_never_overlap_or_move_back(store):
    box = asyncio.run(store.mailbox(asyncio.run(store.account_id(USER)), "INBOX"))
    deliver(store, 3)
    assert asyncio.run(store.claim_recent(box.id, 3)) == 1      # UIDs 1-2 claimed
    assert asyncio.run(store.claim_recent(box.id, 3)) == 3      # nothing left below 3
    assert asyncio.run(store.claim_recent(box.id, 2)) == 3      # never back
    assert asyncio.run(store.recent_count(box.id)) == 1                      # UID 3


# --- FLAGS for new keywords ---------------------------------------------------------------------
def flags_before_fetch(lines: list[bytes], keyword: bytes) -> None:
    """RFC 9051 §7.3.5: a FLAGS response naming the keyword precedes the FETCH using it."""
    flags = next(i for i, line in enumerate(lines) if line.startswith(b"* FLAGS ("))
    fetch = next(i for i, line in enumerate(lines) if b"FETCH" in line and keyword in line)
    assert keyword in lines[flags].split(b"(", 1)[1] and flags < fetch, lines


def test_new_keyword_is_announced_in_flags_before_its_fetch(store):
    deliver(store, 2)
    a, b = Imap(store), Imap(store)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    lines = a.ok("STORE 2 +FLAGS ($hello $world)")
    flags_before_fetch(lines, b"$hello")
    assert any(line.startswith(b"* OK [PERMANENTFLAGS (") and b"$world" in line and
               b"\\*" in line for line in lines)
    flags_before_fetch(b.ok("NOOP"), b"$world")           # the other session too
    # known keywords are not announced again
    assert not any(line.startswith(b"* FLAGS") for line in a.ok("STORE 1 +FLAGS ($hello)"))


def test_keyword_of_appended_message_is_announced(store):
    a, c = Imap(store), Imap(store)
    a.ok("SELECT INBOX")
    c.append("$keyword1")
    lines = a.ok("NOOP")
    assert any(line.startswith(b"* FLAGS (") and b"$keyword1" in line for line in lines)
    assert b"$keyword1" in a.ok("FETCH 1 FLAGS")[0]


def test_nil_is_an_atom_keyword_announced_like_any_other(store):
    # RFC 9051 §9: flag-keyword = atom, and "NIL" is an atom (there is no nil in a
    # flag list), so it is a keyword, and like any other it is told in FLAGS.
    deliver(store)
    a = Imap(store)
    a.ok("SELECT INBOX")
    lines = a.ok("STORE 1 +FLAGS NIL")
    flags_before_fetch(lines, b"NIL")
    assert a.ok("FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (NIL \\Recent))"]


def test_select_lists_keywords_in_flags_and_permanentflags(store):
    a = Imap(store)
    a.append("$Label")
    lines = a.ok("SELECT INBOX")
    assert any(line.startswith(b"* FLAGS (") and b"$Label" in line for line in lines)
    assert any(line.startswith(b"* OK [PERMANENTFLAGS (") and b"$Label" in line
               for line in lines)
    assert any(line.startswith(b"* OK [PERMANENTFLAGS ()]") for line in a.ok("EXAMINE INBOX"))


# --- CONDSTORE ------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["FETCH 1 MODSEQ", "FETCH 1 (FLAGS MODSEQ)",
                                     "SEARCH MODSEQ 1", "STATUS INBOX (HIGHESTMODSEQ)",
                                     "FETCH 1 FLAGS (CHANGEDSINCE 1)",
                                     "STORE 1 (UNCHANGEDSINCE 1000) +FLAGS.SILENT ($x)",
                                     "ENABLE CONDSTORE"])
def test_condstore_enabling_command_reports_highestmodseq(store, command):
    deliver(store, 2)
    a = Imap(store)
    lines = a.ok("SELECT INBOX")
    assert not any(b"HIGHESTMODSEQ" in line for line in lines)
    lines = a.ok(command)
    # RFC 7162 §3.1: the first enabling command while selected tells HIGHESTMODSEQ
    highest = asyncio.run(store.mailbox(asyncio.run(store.account_id(USER)), "INBOX")).highestmodseq
    assert b"* OK [HIGHESTMODSEQ %d] Highest" % highest in lines, lines
    assert not any(b"HIGHESTMODSEQ" in line for line in a.ok("NOOP"))     # once
    # ... and from then on every untagged FETCH of a flag change carries UID and MODSEQ
    assert re.fullmatch(rb"\* 2 FETCH \(UID 2 FLAGS \(\\Seen \\Recent\) MODSEQ \(\d+\)\)",
                        a.ok("STORE 2 +FLAGS (\\Seen)")[0])


def test_condstore_flag_changes_of_other_sessions_carry_uid_and_modseq(store):
    deliver(store, 2)
    a, b = Imap(store), Imap(store)
    lines = a.ok("SELECT INBOX (CONDSTORE)")
    assert sum(b"HIGHESTMODSEQ" in line for line in lines) == 1
    assert not any(b"HIGHESTMODSEQ" in line for line in a.ok("FETCH 1 MODSEQ"))   # told
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS.SILENT (\\Answered)")
    modseq = asyncio.run(store.message_states(asyncio.run(
            store.mailbox(asyncio.run(store.account_id(USER)), "INBOX")).id))[0].modseq
    assert a.ok("NOOP") == [b"* 1 FETCH (UID 1 FLAGS (\\Answered \\Recent) MODSEQ (%d))"
                            % modseq]


def test_condstore_fetch_that_sets_seen_reports_uid_and_modseq(store):
    deliver(store, 2)
    a = Imap(store)
    a.ok("SELECT INBOX")
    a.ok("ENABLE CONDSTORE")
    line = b"\r\n".join(a.ok("FETCH 2 BODY[TEXT]"))       # the body is a literal
    modseq = asyncio.run(store.message_states(asyncio.run(
            store.mailbox(asyncio.run(store.account_id(USER)), "INBOX")).id))[1].modseq
    for item in (b"UID 2", b"FLAGS (\\Seen \\Recent)", b"MODSEQ (%d)" % modseq):
        assert item in line, line


def test_esearch_modseq_is_that_of_the_messages_returned(store):
    deliver(store, 4)
    a = Imap(store)
    a.ok("SELECT INBOX")
    a.ok("FETCH 1 MODSEQ")
    mod = {}
    for n in (1, 3, 2, 4):                         # MODSEQ order: 1 < 3 < 2 < 4
        mod[n] = number(rb"MODSEQ \((\d+)\)", a.ok(f"STORE {n} +FLAGS (\\Seen)"))
    esearch = 'SEARCH RETURN ({}) {} MODSEQ "/flags/\\\\seen" all {}'
    # RFC 4731 §3.2: the highest MODSEQ of the messages being returned
    assert a.ok(esearch.format("MIN", "1:3", 1)) == \
        [b'* ESEARCH (TAG "t") MIN 1 MODSEQ %d' % mod[1]]
    assert a.ok(esearch.format("MAX", "1:3", 1)) == \
        [b'* ESEARCH (TAG "t") MAX 3 MODSEQ %d' % mod[3]]
    assert a.ok(esearch.format("", "1:3", 1)) == \
        [b'* ESEARCH (TAG "t") ALL 1:3 MODSEQ %d' % mod[2]]
    assert a.ok(esearch.format("MIN MAX", "2:3", 1)) == \
        [b'* ESEARCH (TAG "t") MIN 2 MAX 3 MODSEQ %d' % mod[2]]
    assert a.ok(esearch.format("COUNT", "1:3", mod[3])) == \
        [b'* ESEARCH (TAG "t") COUNT 2 MODSEQ %d' % mod[2]]
    assert a.ok(esearch.format("ALL", "2:3", mod[4])) == [b'* ESEARCH (TAG "t")']
    assert a.ok(f"SEARCH MODSEQ {mod[2]}") == [b"* SEARCH 2 4 (MODSEQ %d)" % mod[4]]


# --- MOVE, UIDVALIDITY -------------------------------------------------------------------------
def test_move_to_the_selected_mailbox_expunges_then_counts(store):
    deliver(store, 2)
    a = Imap(store)
    a.ok("SELECT INBOX")
    lines = a.ok("MOVE 1 INBOX")
    assert re.match(rb"\* OK \[COPYUID \d+ 1 3\]", lines[0]), lines
    # RFC 9051 §7.4.1 / RFC 6851: the expunge first, then EXISTS counts 2 messages
    assert lines[1:3] == [b"* 1 EXPUNGE", b"* 2 EXISTS"]
    assert a.ok("FETCH 2 UID") == [b"* 2 FETCH (UID 3)"]


def test_recreated_mailbox_gets_a_greater_uidvalidity(store):
    a = Imap(store)
    a.ok("CREATE box")
    a.append(mailbox="box")
    first = number(rb"UIDVALIDITY (\d+)", a.ok("STATUS box (UIDVALIDITY UIDNEXT)"))
    a.ok("DELETE box")
    a.ok("CREATE box")                               # within the same second
    a.append(mailbox="box")
    second = number(rb"UIDVALIDITY (\d+)", a.ok("STATUS box (UIDVALIDITY UIDNEXT)"))
    assert second > first
