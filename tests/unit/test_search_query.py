"""SEARCH keys (RFC 9051 §6.4.4) become the store's typed query tree; the keys only
the session can answer (sequence numbers, UID sets, \\Recent) are turned into UID
ranges before the store sees them; the store (each backend) answers the tree itself."""

from __future__ import annotations

import asyncio
import datetime

from mailwright.address import parse_mailbox
from mailwright.imap import search
from mailwright.imap.parser import Reader
from mailwright.store import query as q

from .conftest import PASSWORD


def parse(text: str):
    return search.parse_program(Reader(text.encode()))


def test_keys_parse_into_the_query_tree():
    # RFC 9051 §6.4.4: several keys are their intersection; OR takes two keys, NOT one,
    # and a parenthesised list is an intersection too.
    assert parse('OR SEEN (KEYWORD $Junk LARGER 10) NOT SUBJECT "hi"') == [
        q.Or(q.Flag("\\Seen"), q.And((q.Flag("$Junk"), q.Larger(10)))),
        q.Not(q.Header("subject", "hi"))]
    assert parse("UNANSWERED SENTSINCE 1-Feb-2024 BEFORE 3-Mar-2024") == [
        q.Flag("\\Answered", False), q.SentDate("since", datetime.date(2024, 2, 1)),
        q.InternalDate("before", datetime.date(2024, 3, 3))]
    assert parse('HEADER X-Priority "" TEXT a BODY b') == [
        q.Header("x-priority", ""), q.Text("a"), q.Body("b")]
    # RFC 7162 §3.1.5 (the entry name and type are read and not kept), RFC 5032.
    assert parse('MODSEQ "/flags/\\\\draft" all 620162338 OLDER 5 YOUNGER 7') == [
        q.ModSeq(620162338), q.Older(5), q.Younger(7)]


def test_session_keys_stay_until_resolved():
    # NEW is RECENT UNSEEN, OLD is NOT RECENT (RFC 3501 §6.4.4).
    new, old, seq, uid = parse("NEW OLD 1:3 UID 5")
    assert new == q.And((search.Recent(), q.Flag("\\Seen", False)))
    assert old == q.Not(search.Recent())
    assert isinstance(seq, search.Sequence) and isinstance(uid, search.UidSequence)

    def uids(key):
        return q.Uids(((9, 9),)) if isinstance(key, search.Recent) else q.Uids(((1, 2),))
    tree = search.resolve(q.And((new, q.Or(old, seq), q.Not(uid))), uids)
    assert tree == q.And((q.And((q.Uids(((9, 9),)), q.Flag("\\Seen", False))),
                          q.Or(q.Not(q.Uids(((9, 9),))), q.Uids(((1, 2),))),
                          q.Not(q.Uids(((1, 2),)))))
    assert q.contains(tree, q.Uids) and not q.contains(tree, q.ModSeq)


def test_the_store_answers_the_tree(make_store):
    s = make_store()
    asyncio.run(s.add_domain("example.test"))
    asyncio.run(s.add_account(parse_mailbox("q@example.test"), PASSWORD))
    box = asyncio.run(s.mailbox(asyncio.run(s.account_id("q@example.test")), "INBOX"))
    for i, subject in enumerate(("lunch", "Invoice", "lunch again")):
        asyncio.run(s.append(box.id, f"Subject: {subject}\r\n\r\n{'x' * i * 100}\r\n"
                             .encode(), ["\\Seen"] if i == 1 else [], 0.0))
    assert asyncio.run(s.search(box.id, q.Header("subject", "LUNCH"))) == [1, 3]
    assert asyncio.run(
            s.search(box.id, q.And((q.Text("lunch"), q.Not(q.Uids(((1, 1),))))))) == [3]
    assert asyncio.run(s.search(box.id, q.Or(q.Flag("\\Seen"), q.Larger(150)))) == [2, 3]
    assert asyncio.run(s.search(box.id, q.Uids(((1, 1), (3, 9))))) == [1, 3]
    assert asyncio.run(
            s.search(box.id, q.Body("invoice"))) == []        # the subject is no body
