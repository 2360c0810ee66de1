"""Store behaviour the protocols rely on: one blob per delivery, blob release, EXPIRE,
finished outbound messages kept and pruned."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

from mailwright.address import parse_mailbox
from mailwright.delivery import pop3_expiry
from mailwright.imap.fetch import views as fetch_views
from mailwright.store.base import MailStore, StoreError
from mailwright.store.messages import Delivery, LocalCopy
from mailwright.store.postgresql import PostgresStore
from mailwright.store.postgresql.messages import READ_TOGETHER_MAX
from mailwright.store.queue import RecipientUpdate, RemoteRecipient
from mailwright.store.sqlite import SQLiteStore
from mailwright.store.sqlite.db import INLINE_BLOB_MAX, WriteLock


def make(tmp_path) -> tuple[SQLiteStore, int, int]:
    return populate(SQLiteStore(tmp_path, render_views=fetch_views))


def populate(store):
    """The store with shop.test and its accounts a and b; (store, a's id, b's id)."""
    asyncio.run(store.add_domain("shop.test"))
    asyncio.run(store.add_account(parse_mailbox("a@shop.test"), "password-1"))
    asyncio.run(store.add_account(parse_mailbox("b@shop.test"), "password-2"))
    ids = [asyncio.run(store.account_id(x)) for x in ("a@shop.test", "b@shop.test")]
    return store, ids[0], ids[1]


def gone(store, digest: str) -> bool:
    """Is the blob released? (Reading it fails as reading a removed file does.)"""
    try:
        asyncio.run(store.read_blob(digest))
    except FileNotFoundError:
        return True
    return False


def deliver(store, accounts, content: bytes, mid: str) -> None:
    asyncio.run(store.deliver(Delivery(message_id=mid, mail_from="",
                                       local=[LocalCopy(a) for a in accounts],
                                       local_content=content)))


def test_large_message_is_a_file_and_freed_when_last_copy_goes(tmp_path):
    store, a, b = make(tmp_path)
    big = b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n" * 1
    big = big + (b"y" * 998 + b"\r\n") * (INLINE_BLOB_MAX // 1000 + 1)
    deliver(store, [a, b], big, "M1")
    box_a, box_b = asyncio.run(
            store.maildrop("a@shop.test")), asyncio.run(store.maildrop("b@shop.test"))
    digest = box_a.messages[0].blob
    assert digest == box_b.messages[0].blob            # one blob, two references
    assert store.blobs.path(digest).exists()
    assert asyncio.run(store.read_blob(digest)) == big
    asyncio.run(store.pop3_update(box_a.mailbox_id, [box_a.messages[0].uid], []))
    assert store.blobs.path(digest).exists()           # b still has it
    asyncio.run(store.pop3_update(box_b.mailbox_id, [box_b.messages[0].uid], []))
    assert not store.blobs.path(digest).exists()
    store.close()


def test_small_message_inline_and_freed(tmp_path):
    store, a, _ = make(tmp_path)
    deliver(store, [a], b"Subject: s\r\n\r\nsmall\r\n", "M2")
    box = asyncio.run(store.maildrop("a@shop.test"))
    digest = box.messages[0].blob
    assert not store.blobs.path(digest).exists()
    assert asyncio.run(store.read_blob(digest)).endswith(b"small\r\n")
    asyncio.run(store.pop3_update(box.mailbox_id, [box.messages[0].uid], []))
    assert store.conn.execute("SELECT count(*) FROM blob_inline").fetchone()[0] == 0
    store.close()


def test_deliveries_in_one_batch_go_in_together_and_a_bad_one_fails_alone(tmp_path):
    """The writer does a batch's local deliveries as one (db.Job.together): UIDs, MODSEQ,
    metadata and pending texts as if one by one; when one of them cannot be stored,
    each is done alone and only that one fails."""
    store, a, b = make(tmp_path)
    lock = WriteLock(store.db_path)

    def delivery(n: int) -> Delivery:
        return Delivery(message_id=f"T{n}", mail_from="",
                        local=[LocalCopy(a)] + ([LocalCopy(b)] if n % 3 == 0 else [])
                        + ([LocalCopy(b, ("Nowhere",))] if n == 27 else []),
                        local_content=f"Subject: n{n}\r\n\r\nbody {n}\r\n".encode())

    async def burst(numbers: range) -> list:
        with lock:                  # the writer waits: the deliveries queue up
            tasks = [asyncio.ensure_future(store.deliver(delivery(n))) for n in numbers]
            await asyncio.sleep(0.2)
        return await asyncio.gather(*tasks, return_exceptions=True)

    assert asyncio.run(burst(range(20))) == [None] * 20
    outcomes = asyncio.run(burst(range(20, 30)))
    lock.close()
    assert [n for n, o in zip(range(20, 30), outcomes, strict=True)
            if o is not None] == [27]
    assert isinstance(outcomes[7], StoreError)
    for account, expected in ((a, [n for n in range(30) if n != 27]),
                              (b, [n for n in range(30) if n % 3 == 0 and n != 27])):
        box = store.conn.execute("SELECT id, uidnext, highestmodseq FROM mailboxes "
                                 "WHERE account_id=? AND name='INBOX'", (account,)).fetchone()
        rows = store.conn.execute(
            "SELECT m.uid, m.modseq, m.message_id, t.body FROM messages m "
            "JOIN message_meta x ON x.id=m.meta_id AND x.blob=m.blob "
            "JOIN message_texts t ON t.meta_id=x.id WHERE m.mailbox_id=? ORDER BY m.uid",
            (box[0],)).fetchall()
        assert sorted(int(r[2][1:]) for r in rows) == expected
        assert [r[0] for r in rows] == list(range(1, len(expected) + 1))
        assert box[1] == len(expected) + 1 and box[2] == max(r[1] for r in rows)
        assert all(r[3] == f"body {r[2][1:]}\r\n" for r in rows)
        # the first burst's went in together: they share the MODSEQ of their one change
        first = [r[1] for r in rows if int(r[2][1:]) < 20]
        assert len(set(first)) < len(first)
    pending = store.conn.execute("SELECT count(*) FROM message_text_pending").fetchone()[0]
    assert pending == store.conn.execute("SELECT count(*) FROM message_meta").fetchone()[0]
    assert pending == 29
    store.close()


def test_a_blob_goes_with_its_last_copy(make_store):
    store, a, b = populate(make_store())
    for content, mid in ((b"Subject: s\r\n\r\nsmall\r\n", "M1"), (BIG, "M2")):
        deliver(store, [a, b], content, mid)
        box_a, box_b = (asyncio.run(store.maildrop(x)) for x in ("a@shop.test", "b@shop.test"))
        digest = box_a.messages[-1].blob
        assert digest == box_b.messages[-1].blob            # one blob, two references
        assert asyncio.run(store.read_blob(digest)) == content
        asyncio.run(store.pop3_update(box_a.mailbox_id, [box_a.messages[-1].uid], []))
        assert asyncio.run(store.read_blob(digest)) == content   # b still has it
        asyncio.run(store.pop3_update(box_b.mailbox_id, [box_b.messages[-1].uid], []))
        assert gone(store, digest)


def test_read_blobs_gives_the_small_ones_of_many_and_leaves_out_the_rest(make_store):
    """FETCH of many bodies reads the small ones of a slice together; large ones (files:
    never many in memory at once) and unknown digests are left for read_blob."""
    store, a, _ = populate(make_store())
    small = [f"Subject: s{i}\r\n\r\nsmall {i}\r\n".encode() for i in range(600)]
    for i, content in enumerate(small):
        deliver(store, [a], content, f"S{i}")
    deliver(store, [a], b"Subject: big\r\n\r\n" + b"z" * (READ_TOGETHER_MAX + 10), "B")
    messages = asyncio.run(store.maildrop("a@shop.test")).messages
    digests = [m.blob for m in messages] + ["0" * 64]
    found = asyncio.run(store.read_blobs(digests + digests[:3]))   # > one statement's worth
    assert len(found) == 600
    assert {found[m.blob].rpartition(b"small ")[2] for m in messages[:600]} == \
        {f"{i}\r\n".encode() for i in range(600)}
    assert messages[600].blob not in found
    assert asyncio.run(store.read_blob(messages[600].blob)).endswith(b"z" * 10)


def test_pop3_expire_policy(make_store):
    store, a, _ = populate(make_store())
    for i in range(3):
        deliver(store, [a], f"Subject: {i}\r\n\r\nx\r\n".encode(), f"E{i}")
    box = asyncio.run(store.maildrop("a@shop.test"))
    uids = [m.uid for m in box.messages]
    asyncio.run(store.pop3_update(box.mailbox_id, [], uids[:2]))     # two downloaded
    now = time.time()
    assert asyncio.run(pop3_expiry.expire(store, now + 400 * 86400)) == 0   # no policy: never
    asyncio.run(store.set_pop3_expire("shop.test", 7))
    assert asyncio.run(store.pop3_expire_days("a@shop.test")) == 7
    assert asyncio.run(pop3_expiry.expire(store, now + 6 * 86400)) == 0
    assert asyncio.run(pop3_expiry.expire(store, now + 8 * 86400)) == 2
    assert [m.uid for m in asyncio.run(store.maildrop("a@shop.test")).messages] == uids[2:]


# Not coroutines, and why: spool() hands out a buffer for a message being received (no
# store access), record_event() queues a row without waiting for it, close() ends the
# process's use of the store.
NOT_COROUTINES = {"spool", "record_event", "close"}


@pytest.mark.parametrize("backend", [SQLiteStore, PostgresStore])
def test_each_backend_implements_every_store_protocol_method_as_declared(backend):
    # The protocols are the contract each backend implements: every method, with the
    # same parameters, and every read and write a coroutine, so a backend over the
    # network (PostgreSQL) never blocks the event loop.
    declared = {}
    for proto in MailStore.__mro__:
        if proto.__module__.startswith("mailwright."):
            for name, fn in vars(proto).items():
                if inspect.isfunction(fn) and not name.startswith("_"):
                    declared.setdefault(name, fn)
    assert {"deliver", "search", "queue_claim", "find_account", "record_event",
            "pop3_update", "close"} <= declared.keys()
    for name, fn in declared.items():
        impl = getattr(backend, name, None)
        assert impl is not None, f"{backend.__name__} lacks {name}"
        coroutine = name not in NOT_COROUTINES
        assert inspect.iscoroutinefunction(fn) == coroutine, f"protocol: {name}"
        assert inspect.iscoroutinefunction(impl) == coroutine, f"{backend.__name__}: {name}"
        wanted = list(inspect.signature(fn).parameters)
        assert list(inspect.signature(impl).parameters)[:len(wanted)] == wanted, name


# --- finished outbound messages: kept for [events] message_retention_days ------------
BIG = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * (INLINE_BLOB_MAX // 1000 + 1)


def finish(store, mid: str, keep: bool) -> str:
    """Deliver the queued message's recipients; its blob."""
    [message] = [m for m in asyncio.run(store.queue_messages()) if m.message_id == mid]
    assert asyncio.run(store.queue_update(message.id, [
        RecipientUpdate(r.id, "delivered", "250 ok") for r in message.recipients],
        {"delivered", "bounced"}, keep_finished=keep))
    return message.blob


def queue_big(store, mid: str, local: list[int] | None = None) -> None:
    asyncio.run(store.deliver(Delivery(
        message_id=mid, mail_from="a@shop.test", local=[LocalCopy(a) for a in local or []],
        local_content=BIG, remote=[RemoteRecipient("x@far.test")], relay_content=BIG)))


def test_finished_message_keeps_its_text_until_pruned(make_store):
    store, _, _ = populate(make_store())
    queue_big(store, "F1")
    blob = finish(store, "F1", keep=True)
    assert asyncio.run(store.queue_message("F1")) is None          # out of the queue
    kept = asyncio.run(store.queue_finished("F1"))
    assert (kept.message_id, kept.mail_from, kept.blob, kept.size) == (
        "F1", "a@shop.test", blob, len(BIG))
    assert asyncio.run(store.read_blob(blob)) == BIG
    assert asyncio.run(store.prune_finished(kept.finished, 10)) == 0    # not older yet
    assert asyncio.run(store.prune_finished(kept.finished + 1, 10)) == 1
    assert asyncio.run(store.queue_finished("F1")) is None
    assert gone(store, blob)


def test_finished_message_not_kept_goes_with_its_blob(make_store):
    store, _, _ = populate(make_store())
    queue_big(store, "F2")
    blob = finish(store, "F2", keep=False)
    assert asyncio.run(store.queue_finished("F2")) is None
    assert gone(store, blob)


@pytest.mark.parametrize("local_first", [True, False])
def test_a_blob_shared_with_a_mailbox_goes_with_its_last_reference(make_store, local_first):
    # The same text as a local copy and as the relayed message: one blob, referenced by
    # the mailbox and by the finished message; whichever goes first leaves it.
    store, a, _ = populate(make_store())
    queue_big(store, "F3", local=[a])
    blob = finish(store, "F3", keep=True)
    box = asyncio.run(store.maildrop("a@shop.test"))
    assert box.messages[0].blob == blob

    def drop_local():
        asyncio.run(store.pop3_update(box.mailbox_id, [box.messages[0].uid], []))

    def prune():
        assert asyncio.run(store.prune_finished(time.time() + 1, 10)) == 1
    first, second = (drop_local, prune) if local_first else (prune, drop_local)
    first()
    assert asyncio.run(store.read_blob(blob)) == BIG
    second()
    assert gone(store, blob)


def test_prune_finished_in_batches(make_store):
    store, _, _ = populate(make_store())
    blobs = []
    for i in range(7):
        asyncio.run(store.deliver(Delivery(
            message_id=f"S{i}", mail_from="", remote=[RemoteRecipient("x@far.test")],
            relay_content=f"Subject: {i}\r\n\r\nsmall\r\n".encode())))
        blobs.append(finish(store, f"S{i}", keep=True))
    assert not any(gone(store, b) for b in blobs)
    assert asyncio.run(store.prune_finished(time.time() + 1, 3)) == 7
    assert all(gone(store, b) for b in blobs)
