"""SEARCH, SORT and THREAD against the RFC text: date keys (RFC 9051 §6.4.4),
substring matching of text, header and address keys (RFC 9051 §6.4.4), the base
subject and collation (RFC 5256 §2.1, RFC 5051), address sort keys (RFC 5256 §3,
RFC 5957), the REFERENCES algorithm (RFC 5256 §4); and the start-up re-parse of
metadata an older version stored."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest

from mailwright.address import parse_mailbox
from mailwright.auth.logins import Logins
from mailwright.events.log import EventLog
from mailwright.imap import threads
from mailwright.imap.fetch import views as fetch_views
from mailwright.imap.notify import MailboxWatch
from mailwright.imap.session import ImapSession
from mailwright.message import keys
from mailwright.message.meta import parse_message
from mailwright.store import query
from mailwright.store.metarows import META_VERSION
from mailwright.store.sqlite import SQLiteStore, textindex

from .conftest import PASSWORD
from .session_harness import TLS, drive, make_config

USER = "search@example.test"
ARRIVED = datetime.datetime(2020, 6, 1, 12, 0, tzinfo=datetime.UTC).timestamp()


def message(*fields: str, body: str = "body") -> bytes:
    return ("\r\n".join(fields) + "\r\n\r\n" + body + "\r\n").encode()


class Client:
    def __init__(self, store):
        config = make_config()
        self.s = ImapSession("192.0.2.9", TLS, config, store, Logins.from_settings(config.auth),
                             EventLog(None), MailboxWatch(store))
        self.s.greeting()
        assert self.cmd(f'a LOGIN {USER} "{PASSWORD}"')[-1].startswith("a OK")

    def cmd(self, line: str) -> list[str]:
        out, _ = drive(self.s, (line + "\r\n").encode())
        return out.decode().split("\r\n")[:-1]

    def answer(self, line: str) -> str:
        """The one untagged line a SEARCH/SORT/THREAD command gives, after an OK."""
        lines = self.cmd("t " + line)
        assert lines[-1].startswith("t OK"), lines
        return lines[0]


class IndexedAtOnce(SQLiteStore):
    """Texts indexed as soon as a message is added (the background indexer's
    work, run there and then): searches read the text index."""

    async def append(self, *args, **kwargs):
        added = await super().append(*args, **kwargs)
        await self.index_pending(100)
        return added


@pytest.fixture(params=["indexed", "pending", "made later"])
def store(make_store, request, monkeypatch):
    """A store of each backend (both answer alike). On SQLite every test runs three
    times: texts in the index; texts still pending (the writer's indexer never run);
    and texts pending and not even stored with their message, as long ones are not
    (DEFERRED_CHARS): the SEARCH makes them. The answers must be the same
    (store/sqlite/textindex.py)."""
    kind = IndexedAtOnce if request.param == "indexed" else SQLiteStore
    s = make_store(sqlite_class=kind, index_in_background=False)
    if request.param != "indexed" and not isinstance(s, SQLiteStore):
        pytest.skip("PostgreSQL indexes a text in the transaction that stores it")
    if request.param == "made later":
        monkeypatch.setattr(textindex, "DEFERRED_CHARS", 0)
    asyncio.run(s.add_domain("example.test"))
    asyncio.run(s.add_account(parse_mailbox(USER), PASSWORD))
    return s


def fill(store, name: str, messages: list[bytes], dates: list[float] | None = None) -> Client:
    """A new mailbox holding the messages (in order), selected in a new session."""
    account = asyncio.run(store.account_id(USER))

    async def run():
        box = await store.create_mailbox(account, name)
        for i, content in enumerate(messages):
            await store.append(box.id, content, [], dates[i] if dates else ARRIVED + i)
    asyncio.run(run())
    c = Client(store)
    assert c.cmd(f"s SELECT {name}")[-1].startswith("s OK")
    return c


# --- date keys -------------------------------------------------------------------------
DATED = [
    message("Date: Sat, 24 Mar 2007 23:00:00 +0200"),       # 1: 24 Mar, 21:00 UTC
    message("Date: Sun, 25 Mar 2007 01:00:00 +0200"),       # 2: 25 Mar, 24 Mar 23:00 UTC
    message("Date: Sun, 25 Mar 2007 23:00:00 +0300"),       # 3: 25 Mar, 20:00 UTC
    message("Date: Mon, 26 Mar 2007 00:00:00 +0300"),       # 4: 26 Mar, 25 Mar 21:00 UTC
    message("Date: Sun, 25 Mar 2007 20:00:00 -1100"),       # 5: 25 Mar, 26 Mar 07:00 UTC
    message("Subject: no date"),                             # 6
    message("Date: not a date at all"),                      # 7
]


def test_sent_keys_compare_the_date_as_written(store):
    # RFC 9051 §6.4.4: SENTBEFORE/SENTON/SENTSINCE use the Date: field's date,
    # disregarding time and timezone: the day written in the field, not the UTC day.
    c = fill(store, "sent", DATED)
    assert c.answer("SEARCH SENTON 25-Mar-2007") == "* SEARCH 2 3 5"
    assert c.answer("SEARCH SENTBEFORE 25-Mar-2007") == "* SEARCH 1"
    assert c.answer("SEARCH SENTSINCE 26-Mar-2007") == "* SEARCH 4"
    assert c.answer("SEARCH SENTSINCE 25-Mar-2007 SENTBEFORE 26-Mar-2007") == "* SEARCH 2 3 5"


def test_messages_without_a_valid_date_have_no_sent_date(store):
    c = fill(store, "undated", DATED)
    # No Date: field to compare: none of the keys holds, so each NOT does.
    assert c.answer("SEARCH NOT SENTON 25-Mar-2007") == "* SEARCH 1 4 6 7"
    assert c.answer("SEARCH OR SENTBEFORE 1-Jan-2100 SENTSINCE 1-Jan-1900") == \
        "* SEARCH 1 2 3 4 5"


@pytest.fixture
def helsinki(monkeypatch):
    """The server's zone with a daylight saving change (EET -> EEST on 25 Mar 2007)."""
    monkeypatch.setenv("TZ", "Europe/Helsinki")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_internal_date_keys_use_whole_days_of_the_server_zone(store, helsinki):
    # RFC 9051 §6.4.4 BEFORE/ON/SINCE: the internal date, time disregarded. 25 Mar
    # 2007 has 23 hours in Helsinki: 00:30 on the 26th is not "on" the 25th.
    def at(text: str) -> float:
        return datetime.datetime.strptime(text, "%d-%b-%Y %H:%M:%S %z").timestamp()
    dates = [at("25-Mar-2007 00:10:00 +0200"), at("25-Mar-2007 23:30:00 +0300"),
             at("26-Mar-2007 00:30:00 +0300")]
    c = fill(store, "internal", [message("Subject: x")] * 3, dates)
    assert c.answer("SEARCH ON 25-Mar-2007") == "* SEARCH 1 2"
    assert c.answer("SEARCH ON 26-Mar-2007") == "* SEARCH 3"
    assert c.answer("SEARCH BEFORE 26-Mar-2007") == "* SEARCH 1 2"
    assert c.answer("SEARCH SINCE 26-Mar-2007") == "* SEARCH 3"


# --- text, header and address keys ---------------------------------------------------------
TEXTS = [
    message("Subject: Quarterly Report", "X-Tracking: ZQX-7781-alpha", body="Revenue grew"),
    message("Subject: =?utf-8?q?Caf=C3=A9_menu?=", "Content-Transfer-Encoding: base64",
            body="U3BlY2lhbCBvZmZlcjogcGFuY2FrZXM="),           # "Special offer: pancakes"
    message("Subject: lunch", "Content-Transfer-Encoding: quoted-printable",
            body="soft=\r\nbreak and caf=C3=A9"),              # "softbreak and café"
    message("X-Extra: hello beautiful header", "X-Extra: another one", body="ok"),
    message("Subject: parts", body="abc bcd cde"),
]


def test_text_and_body_match_substrings_case_insensitively(store):
    # RFC 9051 §6.4.4: a message matches if the string is a substring of the text.
    c = fill(store, "texts", TEXTS)
    assert c.answer("SEARCH BODY VENUE") == "* SEARCH 1"           # inside "Revenue"
    assert c.answer("SEARCH BODY ancake") == "* SEARCH 2"          # base64 undone
    assert c.answer("SEARCH BODY softbreak") == "* SEARCH 3"       # soft line break undone
    assert c.answer("SEARCH TEXT 7781-al") == "* SEARCH 1"         # any header field
    assert c.answer("SEARCH BODY 7781") == "* SEARCH"              # BODY: not the header
    assert c.answer("SEARCH TEXT \"fé men\"") == "* SEARCH 2"      # decoded encoded-word
    assert c.answer("SEARCH TEXT gr") == "* SEARCH 1"              # shorter than a trigram
    if isinstance(store, SQLiteStore):          # its texts are where the variant says
        pending = store.conn.execute("SELECT count(*) FROM message_text_pending").fetchone()[0]
        assert (pending == 0) == isinstance(store, IndexedAtOnce)
    # flexible matching (allowed for TEXT and BODY): diacritics do not count
    assert c.answer("SEARCH TEXT CAFE") == "* SEARCH 2 3"
    assert c.answer("SEARCH BODY \"café\"") == "* SEARCH 3"
    assert c.answer("SEARCH BODY ok") == "* SEARCH 4"
    assert c.answer("SEARCH NOT TEXT report") == "* SEARCH 2 3 4 5"
    # every trigram of "abcde" is in message 5, the string is not
    assert c.answer("SEARCH BODY abcde") == "* SEARCH"
    assert c.answer("SEARCH BODY \"c bcd c\" TEXT parts") == "* SEARCH 5"


def test_header_with_an_empty_string_matches_messages_having_the_field(store):
    # RFC 9051 §6.4.4 HEADER: a zero-length string matches every message that has
    # the field, whatever its contents.
    c = fill(store, "headers", TEXTS)
    assert c.answer('SEARCH HEADER Subject ""') == "* SEARCH 1 2 3 5"
    assert c.answer('SEARCH NOT HEADER subject ""') == "* SEARCH 4"
    assert c.answer('SEARCH HEADER X-Extra ""') == "* SEARCH 4"
    assert c.answer('SEARCH HEADER X-Extra "another"') == "* SEARCH 4"   # a later field
    assert c.answer('SEARCH HEADER x-extra "eautiful head"') == "* SEARCH 4"


ADDRESSES = [
    message("From: <jane.doe (work) @ (main) example.org>"),
    message("From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.org>"),
    message("From: old-style@example.org (Norbert Nobody)"),
    message("To: team: ann@example.org, bob@example.org;"),
    message("From: jane@example.org"),
]


def test_address_keys_match_the_address_without_comments(store):
    # RFC 9051 §6.4.4 FROM/TO: the envelope's address field holds the string; the
    # envelope's mailbox@host has no comments or folding whitespace in it.
    c = fill(store, "addresses", ADDRESSES)
    assert c.answer("SEARCH FROM jane.doe@example.org") == "* SEARCH 1"
    assert c.answer("SEARCH FROM jürgen") == "* SEARCH 2"          # decoded display name
    assert c.answer("SEARCH FROM nobody") == "* SEARCH 3"
    assert c.answer("SEARCH TO team") == "* SEARCH 4"              # the group's name
    assert c.answer("SEARCH TO bob@") == "* SEARCH 4"
    assert c.answer('SEARCH HEADER TO ""') == "* SEARCH 4"
    assert c.answer('SEARCH NOT HEADER FROM ""') == "* SEARCH 4"


# --- base subject, collation and address sort keys -------------------------------------------
@pytest.mark.parametrize("subject, base, reply", [
    ("Re: hello", "hello", True),
    ("RE:  Re: hello", "hello", True),
    ("Fw: hello", "hello", True),
    ("fwd[list]: hello", "hello", True),                # subj-refwd may hold a blob
    ("[list] Re: [other] hello", "hello", True),
    ("hello (fwd)", "hello", True),                      # subj-trailer
    ("hello (fwd) (FWD)  ", "hello", True),
    ("[Fwd: hello]", "hello", True),                     # subj-fwd
    ("Re: [fwd: [fwd: Re: x]]", "x", True),
    ("[list]", "[list]", False),                         # a blob is kept if all there is
    ("[list] [other]", "[other]", False),
    ("Ad: Re: hello", "Ad: Re: hello", False),
    ("Reply: hello", "Reply: hello", False),
    ("hello\tworld  again", "hello world again", False),
    ("   ", "", False),
])
def test_base_subject(subject, base, reply):
    assert keys.base_subject(subject) == (base, reply)       # RFC 5256 §2.1


def test_collation_is_unicode_casemap():
    # RFC 5051: titlecase, then NFKD, compared as octets: case is ignored, and
    # letters (titlecased) come before "[" and "_".
    assert keys.collate("abc") == keys.collate("ABC")
    assert sorted(["_x", "[x]", "b", "A"], key=keys.collate) == ["A", "b", "[x]", "_x"]
    assert keys.collate("é") == keys.collate("E\u0301")
    assert keys.collate("ǆ") == keys.collate("ǅ")


def test_address_sort_keys():
    # RFC 5256 §3: the first address's addr-mailbox; a group's start is an address
    # whose mailbox is the group's name (RFC 9051 §7.5.2).
    m = parse_message(message("From: Zed <alice@example.org>", "Cc: Group: bob@x.org;",
                              "To: =?utf-8?q?=C3=89mile?= <e@x.org>"))
    assert (m.sort_from, m.sort_cc, m.sort_to) == ("ALICE", "GROUP", "E")
    # RFC 5957 §3: the display name, else mailbox@host, else the mailbox.
    assert m.display_from == "ZED" and m.display_to == keys.collate("Émile")
    assert parse_message(message("To: bob@x.org")).display_to == "BOB@X.ORG"
    assert parse_message(message("To: bob")).display_to == "BOB"
    assert parse_message(message("To: empty:;")).display_to == "EMPTY"
    assert parse_message(message("Subject: x")).display_from == ""


SORTED = [
    message("Subject: b", "From: Bob <zed@x.org>", "Cc: carol@x.org"),
    message("Subject: Re: A", "From: adam@x.org", "Cc: list: anne@x.org;"),
    message("Subject: [xyz]", "From: \"Carl\" <bob@x.org>", "Cc: Carol@x.org"),
    message("Subject: _under", "From: dora@x.org"),
    message("Subject: a", "From: =?utf-8?q?Ann?= <ann@x.org>"),
]


def test_sort_by_subject_and_addresses(store):
    c = fill(store, "sorting", SORTED)
    # base subjects A, A, B, [XYZ], _UNDER; equal keys keep the sequence order
    assert c.answer("SORT (SUBJECT) UTF-8 ALL") == "* SORT 2 5 1 3 4"
    assert c.answer("SORT (REVERSE SUBJECT) UTF-8 ALL") == "* SORT 4 3 1 2 5"
    # FROM: zed adam bob dora ann; CC: carol list carol "" ""
    assert c.answer("SORT (FROM) UTF-8 ALL") == "* SORT 2 5 3 4 1"
    assert c.answer("SORT (CC) UTF-8 ALL") == "* SORT 4 5 1 3 2"
    # DISPLAYFROM (RFC 5957): Bob, adam@x.org, Carl, dora@x.org, Ann
    assert c.answer("SORT (DISPLAYFROM) UTF-8 ALL") == "* SORT 2 5 1 3 4"
    assert c.answer("SORT (DISPLAYTO) UTF-8 ALL") == "* SORT 1 2 3 4 5"
    assert b"SORT=DISPLAY" in c.cmd("c CAPABILITY")[0].encode()


# --- THREAD=REFERENCES ----------------------------------------------------------------------
def row(uid, date, subject, msgid, refs="", irt=""):
    return (uid, date, 100, date, keys.subject_key(subject), "", "", "", msgid, irt,
            refs, subject, "", "")


def render(rows) -> bytes:
    return threads.render_threads(threads.thread(rows, "REFERENCES"), lambda u: u)


def test_duplicate_message_id_is_a_new_message_gathered_by_subject():
    # RFC 5256 §4 step 1: a duplicate Message-ID is treated as unique; step 5: a
    # reply ("Re:") with the base subject of a thread becomes a child of it.
    assert render([row(1, 10, "foo", "<a@b>"), row(2, 20, "Re: foo", "<a@b>")]) == b"(1 2)"


def test_subject_gathering_without_a_reply_makes_a_dummy():
    # Step 5 (C): neither is a reply: both become children of a new dummy.
    assert render([row(1, 10, "foo", "<a@b>"), row(2, 20, "foo", "<c@b>")]) == \
        b"((1)(2))"
    # The reply found first in the table is replaced by the original (step 5 B).
    assert render([row(1, 10, "Re: foo", "<a@b>"), row(2, 20, "foo", "<c@b>")]) == \
        b"(2 1)"


def test_dummy_roots_sort_by_their_first_child_with_ties_by_sequence():
    # Steps 3-4: <1@b> and <2@b> are missing; <1@b>'s only child is promoted to the
    # top, <2@b> stays as a dummy of two; equal dates order by sequence (§2.2).
    rows = [row(3, 10, "", "<3@b>", irt="<1@b>"), row(4, 10, "", "<4@b>", irt="<2@b>"),
            row(5, 10, "", "<5@b>", irt="<2@b>")]
    assert render(rows) == b"(3)((4)(5))"
    rows[0] = row(3, 11, "", "<3@b>", irt="<1@b>")
    assert render(rows) == b"((4)(5))(3)"


def test_references_chain_and_loops():
    # Step 1 (A): each reference is the parent of the next; a link making a loop
    # is not made; (B) the last reference is the parent.
    rows = [row(1, 10, "x", "<1@b>", refs="<2@b>"), row(2, 20, "x", "<2@b>", refs="<1@b>"),
            row(3, 30, "y", "<3@b>", refs="<9@b> <1@b>")]
    assert render(rows) == b"(2 1 3)"


def test_thread_through_the_session_uses_the_stored_subject(store):
    c = fill(store, "threads", [message("Message-Id: <a@b>", "Subject: foo"),
                                message("Message-Id: <a@b>", "Subject: Re: foo")])
    assert c.answer("THREAD REFERENCES US-ASCII ALL") == "* THREAD (1 2)"
    assert c.answer("THREAD ORDEREDSUBJECT US-ASCII ALL") == "* THREAD (1 2)"


# --- metadata from an older version -------------------------------------------------------
def test_older_metadata_and_word_index_are_rebuilt_at_start_up(tmp_path):
    s = SQLiteStore(tmp_path, render_views=fetch_views)
    asyncio.run(s.add_domain("example.test"))
    asyncio.run(s.add_account(parse_mailbox(USER), PASSWORD))
    account = asyncio.run(s.account_id(USER))
    box = asyncio.run(s.create_mailbox(account, "old"))
    asyncio.run(s.append(box.id, message("Date: Sun, 25 Mar 2007 01:00:00 +0200",
                                         "From: Old <old@example.org>", body="pancakes"),
                         [], ARRIVED))

    def downgrade(c):
        # As a database from before: a word index, no parse version, no new columns.
        c.execute("DROP TABLE message_text")
        c.execute("CREATE VIRTUAL TABLE message_text USING fts5(hdr, body, "
                  "tokenize = 'unicode61 remove_diacritics 2')")
        for column in ("sent_day", "display_from", "display_to", "version"):
            c.execute(f"ALTER TABLE message_meta DROP COLUMN {column}")
    s._writer.submit(downgrade).result()
    s.close()

    s = SQLiteStore(tmp_path, render_views=fetch_views)
    try:
        sql = s.conn.execute("SELECT sql FROM sqlite_master WHERE name='message_text'")
        assert "trigram" in sql.fetchone()[0]
        assert s.conn.execute("SELECT version, sent_day FROM message_meta").fetchall() == \
            [(0, None)]
        assert asyncio.run(s.search(box.id, query.Body("ancake"))) == []           # not indexed yet
        assert asyncio.run(s.backfill_meta()) == 1
        assert s.conn.execute("SELECT version, sent_day, display_from FROM message_meta"
                              ).fetchall() == [(META_VERSION, 20070325, "OLD")]
        assert asyncio.run(s.search(box.id, query.Body("ancake"))) == [1]
        assert asyncio.run(
                s.search(box.id, query.SentDate("on", datetime.date(2007, 3, 25)))) == [1]
        assert asyncio.run(s.backfill_meta()) == 0                  # done once
    finally:
        s.close()
