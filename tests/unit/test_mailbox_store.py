"""The mailbox store (store/mailboxes.py MailboxStore) on every backend: mailboxes
(RFC 9051 §6.3), UIDVALIDITY never reused, subscriptions, \\Recent claims, flags and
MODSEQ with UNCHANGEDSINCE (RFC 7162 §3.1.3), COPY/MOVE/EXPUNGE with tombstones
(RFC 7162 §3.2.10), counts for STATUS and SEARCH keys; both backends answering the
same searches alike. On PostgreSQL also two stores on one database: what one node
writes, the other sees."""

from __future__ import annotations

import asyncio
import datetime
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailwright.address import parse_mailbox
from mailwright.imap.fetch import views as fetch_views
from mailwright.store import query as q
from mailwright.store.mailboxes import MailboxCounts, MailboxError, MessageState
from mailwright.store.postgresql import PostgresStore
from mailwright.store.sqlite import SQLiteStore

from .conftest import PASSWORD

USER = "box@example.test"
DAY = datetime.datetime(2021, 3, 10, 12, 0).timestamp()     # noon, server zone


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def store(make_store):
    s = make_store()
    run(s.add_domain("example.test"))
    run(s.add_account(parse_mailbox(USER), PASSWORD))
    return s


def account(s) -> int:
    return run(s.account_id(USER))


def box(s, name: str = "INBOX"):
    return run(s.mailbox(account(s), name))


def append(s, name: str, *messages: bytes, flags=(), date: float = DAY) -> list[int]:
    mailbox = box(s, name)
    return [run(s.append(mailbox.id, m, list(flags), date))[1] for m in messages]


def msg(subject: str, body: str = "body", *fields: str) -> bytes:
    return ("\r\n".join([f"Subject: {subject}", *fields]) + f"\r\n\r\n{body}\r\n").encode()


def names(s) -> list[str]:
    return [b.name for b in run(s.mailboxes(account(s)))]


# --- mailboxes -------------------------------------------------------------------------

def test_create_makes_superiors_and_refuses_what_exists(store):
    a = account(store)
    made = run(store.create_mailbox(a, "Work/2021/Q1"))
    assert made.name == "Work/2021/Q1" and made.uidnext == 1
    assert {"Work", "Work/2021", "Work/2021/Q1"} <= set(names(store))
    with pytest.raises(MailboxError) as e:
        run(store.create_mailbox(a, "Work/2021"))
    assert e.value.code == "ALREADYEXISTS"
    with pytest.raises(MailboxError) as e:
        run(store.create_mailbox(a, "Other", "\\Sent"))      # the account has a \Sent
    assert e.value.code == "USEATTR"
    with pytest.raises(MailboxError) as e:
        run(store.create_mailbox(a, "bad/*"))
    assert e.value.code == "CANNOT"
    assert run(store.create_mailbox(a, "inbox/Sub")).name == "INBOX/Sub"
    # Listed in the order of their UTF-8 octets, as SQLite's BINARY collation has it.
    run(store.create_mailbox(a, "Zeta"))
    run(store.create_mailbox(a, "alpha"))
    run(store.create_mailbox(a, "Äpfel"))
    listed = names(store)
    assert listed == sorted(listed, key=str.encode)


def test_rename_moves_inferiors_and_delete_refuses_a_parent(store):
    a = account(store)
    run(store.create_mailbox(a, "P/c1/d"))
    run(store.create_mailbox(a, "P/c2"))
    before = box(store, "P/c1/d")
    run(store.rename_mailbox(a, "P", "New/Q"))
    assert {"New", "New/Q", "New/Q/c1", "New/Q/c1/d", "New/Q/c2"} <= set(names(store))
    assert not [n for n in names(store) if n.startswith("P")]
    assert box(store, "New/Q/c1/d").uidvalidity == before.uidvalidity
    for old, new, code in (("Nope", "X", "NONEXISTENT"), ("New", "Trash", "ALREADYEXISTS"),
                           ("New", "New/Q/x", "CANNOT")):
        with pytest.raises(MailboxError) as e:
            run(store.rename_mailbox(a, old, new))
        assert e.value.code == code
    with pytest.raises(MailboxError) as e:
        run(store.delete_mailbox(a, "New/Q"))
    assert e.value.code == "INUSE"
    with pytest.raises(MailboxError) as e:
        run(store.delete_mailbox(a, "inbox"))
    assert e.value.code == "CANNOT"


def test_a_name_created_again_gets_a_greater_uidvalidity(store):
    a = account(store)
    seen = []
    for _ in range(3):                       # within the same second
        seen.append(run(store.create_mailbox(a, "Again")).uidvalidity)
        run(store.delete_mailbox(a, "Again"))
    assert seen == sorted(set(seen))
    values = [b.uidvalidity for b in run(store.mailboxes(a))]
    assert len(values) == len(set(values))


def test_renaming_inbox_moves_its_messages_and_leaves_it_empty(store):
    a = account(store)
    append(store, "INBOX", msg("one"), msg("two"), flags=["\\Seen"])
    run(store.rename_mailbox(a, "INBOX", "Old"))
    old = box(store, "Old")
    assert [(s.uid, s.flags) for s in run(store.message_states(old.id))] == \
        [(1, "\\Seen"), (2, "\\Seen")]
    inbox = box(store, "INBOX")
    assert run(store.message_states(inbox.id)) == []
    assert run(store.expunged_since(inbox.id, 0)) == [1, 2]


def test_subscriptions_are_names(store):
    a = account(store)
    base = run(store.subscriptions(a))
    assert "INBOX" in base                     # provisioned mailboxes start subscribed
    run(store.subscribe(a, "Not/There", True))
    run(store.subscribe(a, "Not/There", True))
    run(store.subscribe(a, "Trash", False))
    run(store.subscribe(a, "Never", False))
    assert run(store.subscriptions(a)) == sorted(
        [n for n in base if n != "Trash"] + ["Not/There"], key=str.encode)
    with pytest.raises(MailboxError):
        run(store.subscribe(a, "bad%", True))


def test_recent_claims_never_overlap_or_move_back(store):
    inbox = box(store)
    append(store, "INBOX", msg("a"), msg("b"), msg("c"))
    assert run(store.claim_recent(inbox.id, 3)) == 1
    assert run(store.claim_recent(inbox.id, 3)) == 3
    assert run(store.claim_recent(inbox.id, 2)) == 3
    assert run(store.recent_count(inbox.id)) == 1
    assert run(store.claim_recent(10**9, 5)) == 5           # no such mailbox


# --- flags, MODSEQ, counts ---------------------------------------------------------------

def test_flags_and_modseq_with_unchangedsince(store):
    inbox = box(store)
    append(store, "INBOX", msg("a"), msg("b"), msg("c"))
    start = box(store).highestmodseq
    changed, failed = run(store.store_flags(inbox.id, [1, 2, 9], "add", ["\\seen", "Work"]))
    assert failed == [] and [(s.uid, s.flags) for s in changed] == \
        [(1, "\\Seen Work"), (2, "\\Seen Work")]
    first = changed[0].modseq
    assert first == start + 1 == box(store).highestmodseq
    # Nothing changes: no new MODSEQ (RFC 7162 §3.1.3 only counts real changes).
    assert run(store.store_flags(inbox.id, [1], "add", ["WORK"])) == ([], [])
    assert box(store).highestmodseq == first
    # UNCHANGEDSINCE below the message's MODSEQ: refused for it, the others change.
    changed, failed = run(store.store_flags(inbox.id, [1, 3], "set", ["\\Flagged"],
                                            unchangedsince=first - 1))
    assert failed == [1] and [(s.uid, s.flags, s.modseq) for s in changed] == \
        [(3, "\\Flagged", first + 1)]
    changed, _ = run(store.store_flags(inbox.id, [1, 2, 3], "remove", ["work", "\\Flagged"]))
    assert [(s.uid, s.flags) for s in changed] == [(1, "\\Seen"), (2, "\\Seen"), (3, "")]
    assert run(store.message_states(inbox.id, since_modseq=first + 1)) == \
        [MessageState(u, f, first + 2) for u, f in ((1, "\\Seen"), (2, "\\Seen"), (3, ""))]
    assert [s.uid for s in run(store.message_states(inbox.id, from_uid=2))] == [2, 3]
    with pytest.raises(MailboxError):
        run(store.store_flags(10**9, [1], "add", ["x"]))


def test_counts_follow_every_change(store):
    inbox = box(store)
    sizes = [len(m) for m in (msg("a"), msg("bb"))]
    append(store, "INBOX", msg("a"), msg("bb"))
    assert run(store.mailbox_counts(inbox.id)) == MailboxCounts(2, 2, 0, sum(sizes))
    run(store.store_flags(inbox.id, [1], "add", ["\\Seen", "\\Deleted"]))
    assert run(store.mailbox_counts(inbox.id)) == MailboxCounts(2, 1, 1, sum(sizes))
    run(store.expunge(inbox.id, [1]))
    assert run(store.mailbox_counts(inbox.id)) == MailboxCounts(1, 1, 0, sizes[1])
    versions = run(store.mailbox_versions([inbox.id, 10**9]))
    assert list(versions) == [inbox.id] and versions[inbox.id][0] == 3


def test_copy_move_and_expunge_leave_tombstones(store):
    run(store.create_mailbox(account(store), "Kept"))
    inbox, archive = box(store), box(store, "Kept")
    append(store, "INBOX", msg("a"), msg("b"), msg("c"), flags=["$Label"])
    validity, pairs = run(store.copy(inbox.id, [1, 3, 7], archive.id, False))
    assert validity == archive.uidvalidity and pairs == [(1, 1), (3, 2)]
    before = box(store).highestmodseq
    validity, pairs = run(store.copy(inbox.id, [2, 3], archive.id, True))
    assert pairs == [(2, 3), (3, 4)]
    assert [s.uid for s in run(store.message_states(inbox.id))] == [1]
    assert run(store.expunged_since(inbox.id, before)) == [2, 3]
    assert [(s.uid, s.flags) for s in run(store.message_states(archive.id))] == \
        [(1, "$Label"), (2, "$Label"), (3, "$Label"), (4, "$Label")]
    data = run(store.message_data(archive.id, [4, 2, 9], True))
    assert [d.uid for d in data] == [2, 4] and data[1].envelope and data[1].header
    assert run(store.read_blob(data[0].blob)) == msg("c")
    assert run(store.expunge(archive.id, [1, 2, 5])) == [1, 2]
    assert run(store.expunge(archive.id, [1, 2])) == []
    assert run(store.expunged_since(archive.id, 0)) == [1, 2]
    with pytest.raises(MailboxError) as e:
        run(store.copy(inbox.id, [1], 10**9, False))
    assert e.value.code == "TRYCREATE"


def test_copy_over_quota_is_refused(store):
    a = account(store)
    append(store, "INBOX", msg("a", "x" * 1000))
    run(store.set_quota(USER, 1500))
    trash = box(store, "Trash")
    with pytest.raises(MailboxError) as e:
        run(store.copy(box(store).id, [1], trash.id, False))
    assert e.value.code == "OVERQUOTA"
    run(store.set_quota(USER, 0))
    run(store.copy(box(store).id, [1], trash.id, False))
    assert run(store.quota(a)).messages == 2


def test_deleting_a_mailbox_releases_what_only_it_held(store):
    a = account(store)
    run(store.create_mailbox(a, "Gone"))
    append(store, "Gone", msg("only here"))
    append(store, "INBOX", msg("shared"))
    run(store.copy(box(store).id, [1], box(store, "Gone").id, False))
    blobs = [d.blob for d in run(store.message_data(box(store, "Gone").id, [1, 2], False))]
    run(store.delete_mailbox(a, "Gone"))
    assert "Gone" not in names(store)
    assert run(store.read_blob(blobs[1])) == msg("shared")
    with pytest.raises(FileNotFoundError):                   # its blob went with it
        run(store.read_blob(blobs[0]))


# --- SEARCH ----------------------------------------------------------------------------

SEARCHED = [
    msg("Lunch at noon", "Meet at the Café", "From: Alice Smith <alice@example.test>",
        "Date: Wed, 10 Mar 2021 09:00:00 +0000", "X-Tag: Blue"),
    msg("Invoice", "pay 100% now_please", "From: bob@example.test", "To: alice@example.test",
        "Date: Thu, 11 Mar 2021 09:00:00 +0000"),
    msg("=?utf-8?q?STRASSE_lunch_=C3=9Cber?=", "Grüße aus Köln", "Cc: Carol <carol@example.test>",
        "X-Tag: red"),
]


@pytest.fixture
def searched(store):
    inbox = box(store)
    append(store, "INBOX", SEARCHED[0], flags=["\\Seen", "$Work"])
    append(store, "INBOX", SEARCHED[1], date=DAY + 86400)
    append(store, "INBOX", SEARCHED[2], flags=["\\Flagged"], date=DAY + 2 * 86400)
    return lambda key: run(store.search(inbox.id, key))


@pytest.mark.parametrize("key, uids", [
    (q.All(), [1, 2, 3]),
    (q.Flag("\\seen"), [1]),
    (q.Flag("\\Seen", False), [2, 3]),
    (q.Flag("$WORK"), [1]),
    (q.Flag("$work", False), [2, 3]),
    (q.Text("lunch"), [1, 3]),
    (q.Text("cafe"), [1]),                         # diacritics folded
    (q.Text("KÖLN"), [3]),
    (q.Body("lunch"), []),                         # only in subjects
    (q.Body("100%"), [2]),                         # LIKE's wildcards are plain text
    (q.Body("w_p"), [2]),
    (q.Body("0%"), [2]),
    (q.Body("o"), [2, 3]),                         # shorter than a trigram
    (q.Text(""), [1, 2, 3]),
    (q.Header("subject", "LUNCH"), [1, 3]),
    (q.Header("subject", "lUNCH Über"), [3]),
    (q.Header("subject", "über"), []),             # as SQLite's LIKE: ASCII folded only
    (q.Header("from", "smith"), [1]),
    (q.Header("to", "alice"), [2]),
    (q.Header("cc", "carol"), [3]),
    (q.Header("x-tag", "BLUE"), [1]),
    (q.Header("x-tag", ""), [1, 3]),
    (q.Not(q.Header("x-tag", "red")), [1, 2]),
    (q.Header("date", ""), [1, 2]),
    (q.Uids(((1, 1), (3, 9))), [1, 3]),
    (q.Uids(((2, 2),)), [2]),
    (q.Uids(()), []),
    (q.Or(q.Flag("\\Flagged"), q.Larger(len(SEARCHED[0]))), [i + 1 for i, m in enumerate(
        SEARCHED) if i == 2 or len(m) > len(SEARCHED[0])]),
    (q.Smaller(len(SEARCHED[1])), [i + 1 for i, m in enumerate(SEARCHED)
                                   if len(m) < len(SEARCHED[1])]),
    (q.InternalDate("on", datetime.date(2021, 3, 11)), [2]),
    (q.InternalDate("before", datetime.date(2021, 3, 11)), [1]),
    (q.InternalDate("since", datetime.date(2021, 3, 11)), [2, 3]),
    (q.SentDate("on", datetime.date(2021, 3, 10)), [1]),
    (q.SentDate("since", datetime.date(2021, 3, 10)), [1, 2]),
    (q.Not(q.SentDate("before", datetime.date(2021, 3, 11))), [2, 3]),
    (q.And((q.Text("lunch"), q.Not(q.Uids(((1, 1),))))), [3]),
    (q.ModSeq(0), [1, 2, 3]),
    (q.Younger(10), []),
    (q.Older(10), [1, 2, 3]),
])
def test_search_keys(searched, key, uids):
    assert searched(key) == uids


def test_sort_keys_come_from_the_stored_parse(store, searched):
    rows = run(store.sort_keys(box(store).id, [3, 1, 8]))
    assert [r[0] for r in rows] == [1, 3]
    assert rows[0][4] == "LUNCH AT NOON" and rows[1][11] == "STRASSE lunch Über"
    assert searched(q.ModSeq(box(store).highestmodseq)) == [3]


# --- two nodes on one database -------------------------------------------------------------

@pytest.fixture
def two_nodes(make_store, request):
    if "postgresql" not in request.node.callspec.id:
        pytest.skip("two nodes share a PostgreSQL database")
    a = make_store()
    run(a.add_domain("example.test"))
    run(a.add_account(parse_mailbox(USER), PASSWORD))
    return a, make_store(same_as=a)


def test_a_flag_change_on_one_node_is_seen_on_the_other(two_nodes):
    a, b = two_nodes
    append(a, "INBOX", msg("x"), msg("y"))
    inbox = box(b)
    assert run(b.mailbox_counts(inbox.id)).unseen == 2          # b caches these counts
    changed, _ = run(a.store_flags(inbox.id, [2], "add", ["\\Seen"]))
    assert box(b).highestmodseq == changed[0].modseq
    assert run(b.message_states(inbox.id, since_modseq=inbox.highestmodseq)) == changed
    assert run(b.mailbox_counts(inbox.id)).unseen == 1
    run(a.expunge(inbox.id, [1]))
    assert run(b.expunged_since(inbox.id, changed[0].modseq)) == [1]
    # UNCHANGEDSINCE on b sees a's change
    _, failed = run(b.store_flags(inbox.id, [2], "add", ["x"], unchangedsince=inbox.highestmodseq))
    assert failed == [2]


def test_concurrent_copies_from_two_nodes_get_distinct_uids(two_nodes):
    a, b = two_nodes
    append(a, "INBOX", *[msg(f"m{i}") for i in range(5)])
    acct = account(a)
    run(a.create_mailbox(acct, "Target"))
    source, target = box(a).id, box(a, "Target").id

    def copies(s):
        return [run(s.copy(source, [1, 2, 3, 4, 5], target, False))[1] for _ in range(6)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(copies, (a, b)))
    new = [uid for result in results for pairs in result for _, uid in pairs]
    assert sorted(new) == list(range(1, 61))
    assert [s.uid for s in run(b.message_states(target))] == list(range(1, 61))
    assert box(a, "Target").uidnext == 61


def test_flag_changes_from_two_nodes_are_never_lost(two_nodes):
    a, b = two_nodes
    append(a, "INBOX", msg("x"))
    inbox = box(a).id

    def change(args):
        s, prefix = args
        return [run(s.store_flags(inbox, [1], "add", [f"{prefix}{i}"]))[0][0].modseq
                for i in range(15)]
    with ThreadPoolExecutor(2) as pool:
        modseqs = [m for ms in pool.map(change, ((a, "$a"), (b, "$b"))) for m in ms]
    # Each change took the mailbox's next MODSEQ (RFC 7162 §3.1.1: strictly greater)
    # and kept the other node's keywords.
    assert len(set(modseqs)) == 30
    [state] = run(b.message_states(inbox))
    assert state.modseq == max(modseqs) == box(b).highestmodseq
    assert set(state.flags.split()) == {f"${n}{i}" for n in "ab" for i in range(15)}


def test_one_of_two_nodes_creating_a_name_at_once_is_told_it_exists(two_nodes):
    a, b = two_nodes
    acct = account(a)

    def create(s):
        try:
            return run(s.create_mailbox(acct, "Same/Name")).uidvalidity
        except MailboxError as e:
            return e.code
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(create, (a, b)))
    assert outcomes.count("ALREADYEXISTS") == 1
    assert names(a).count("Same/Name") == 1


# --- both backends, the same answers ---------------------------------------------------------

VARIED = [
    (msg("Ünïcode Straße", "Ça va? ÉCOLE école", "From: Zoë <zoe@example.test>",
         "Date: Tue, 9 Mar 2021 23:30:00 -0500"), ["\\Seen", "$Ärger"]),
    (msg("re: LUNCH", "lunch Lunch LUNCH 50% off_now", "To: Team <team@example.test>",
         "X-Tag: Green"), ["\\Answered", "$label"]),
    (msg("=?iso-8859-1?q?caf=E9?=", "x", "Cc: bob@example.test",
         "Date: Wed, 10 Mar 2021 00:10:00 +0100"), ["$LABEL", "\\Deleted"]),
    (msg("plain", "Grüße\r\n\r\nmore text here " * 20, "X-TAG: blue"), []),
    (msg("", "ab", "Bcc: Hidden <h@example.test>"), ["\\Flagged", "\\Draft"]),
    (msg("Straße again", "STRASSE strasse", "From: \"Ann, Lee\" <ann@example.test>"),
     ["\\Seen"]),
]
LEAVES = [
    q.All(), q.Flag("\\Seen"), q.Flag("\\deleted"), q.Flag("$label"), q.Flag("$ärger"),
    q.Flag("$Ärger"), q.Text("lunch"), q.Text("ecole"), q.Text("straße"), q.Text("ss"),
    q.Text("50%"), q.Text("_"), q.Body("café"), q.Body("é"), q.Body("more text"),
    q.Header("subject", "straße"), q.Header("subject", "STRASSE"), q.Header("subject", "ü"),
    q.Header("subject", ""), q.Header("x-tag", "GREEN"), q.Header("x-tag", ""),
    q.Header("from", "ZOË"), q.Header("from", "lee"), q.Header("bcc", "hidden"),
    q.Header("date", "2021"), q.Header("message-id", ""),
    q.InternalDate("on", datetime.date(2021, 3, 11)),
    q.InternalDate("before", datetime.date(2021, 3, 12)),
    q.SentDate("on", datetime.date(2021, 3, 9)), q.SentDate("since", datetime.date(2021, 3, 10)),
    q.Larger(200), q.Smaller(120), q.Uids(((2, 3), (5, 5))), q.Uids(((4, 9),)), q.ModSeq(4),
    q.Older(60), q.Younger(60),
]


def test_both_backends_give_the_same_answers(tmp_path, postgres):
    # The same messages in a store of each backend, 190 queries (every leaf key, then
    # random trees of And/Or/Not over them): the same UIDs from both.
    dsn = postgres.create_database(template=postgres.migrated_template())
    stores = [SQLiteStore(tmp_path / "sqlite", render_views=fetch_views),
              PostgresStore(dsn, tmp_path / "pg", render_views=fetch_views)]
    try:
        boxes = []
        for s in stores:
            run(s.add_domain("example.test"))
            run(s.add_account(parse_mailbox(USER), PASSWORD))
            for i, (content, flags) in enumerate(VARIED):
                append(s, "INBOX", content, flags=flags, date=DAY + i * 43200)
            boxes.append(box(s).id)
        rng = random.Random(19)

        def tree(depth: int):
            if depth == 0 or rng.random() < 0.4:
                return rng.choice(LEAVES)
            kind = rng.choice(("and", "or", "not"))
            if kind == "not":
                return q.Not(tree(depth - 1))
            if kind == "or":
                return q.Or(tree(depth - 1), tree(depth - 1))
            return q.And(tuple(tree(depth - 1) for _ in range(rng.randint(0, 3))))
        keys = LEAVES + [tree(3) for _ in range(150)]
        answers = [[run(s.search(b, key)) for key in keys]
                   for s, b in zip(stores, boxes, strict=True)]
        for key, lite, pg in zip(keys, *answers, strict=True):
            assert lite == pg, key
        assert len({tuple(a) for a in answers[0]}) > 20          # the keys tell rows apart
        uids = list(range(1, len(VARIED) + 1))
        assert run(stores[0].sort_keys(boxes[0], uids)) == \
            [tuple(r) for r in run(stores[1].sort_keys(boxes[1], uids))]
    finally:
        for s in stores:
            s.close()
        postgres.drop_database(dsn)
