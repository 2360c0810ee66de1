"""Delivery on PostgreSQL as several nodes see it: two stores on one database (two
nodes) delivering into one mailbox at once, a blob's rows going with its last
reference, and a large spooled message stored and read back whole."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.address import parse_mailbox
from mailwright.imap.fetch import views as fetch_views
from mailwright.store.blobs import Spooled
from mailwright.store.messages import Delivery, LocalCopy
from mailwright.store.queue import RemoteRecipient


@pytest.fixture
def nodes(pg_dsn, tmp_path):
    """nodes(n): n stores on one database, each with a data_dir of its own."""
    from mailwright.store.postgresql import PostgresStore
    made = []

    def make(n: int):
        for _ in range(n):
            made.append(PostgresStore(pg_dsn, tmp_path / f"node{len(made)}",
                                      render_views=fetch_views))
        return made[-n:]
    yield make
    for s in made:
        s.close()


def account(store, address: str = "a@shop.test") -> int:
    domain = address.split("@")[1]
    if not asyncio.run(store.is_local_domain(domain)):
        asyncio.run(store.add_domain(domain))
    asyncio.run(store.add_account(parse_mailbox(address), "password-1"))
    return asyncio.run(store.account_id(address))


def rows(store, sql: str, *args) -> list[tuple]:
    return asyncio.run(store.db.fetchall(sql, args))


def test_two_nodes_delivering_into_one_mailbox_get_consecutive_uids(nodes):
    one, two = nodes(2)
    a = account(one)

    async def both():
        await asyncio.gather(*(
            node.deliver(Delivery(message_id=f"M{i}-{k}", mail_from="",
                                  local=[LocalCopy(a)],
                                  local_content=f"Subject: {i} from {k}\r\n\r\nx\r\n".encode()))
            for i in range(50) for k, node in enumerate((one, two))))
    asyncio.run(both())
    got = rows(one, "SELECT m.uid, m.modseq, m.message_id FROM messages m JOIN mailboxes b "
                    "ON m.mailbox_id=b.id WHERE b.account_id=%s AND b.name='INBOX' "
                    "ORDER BY m.uid", a)
    assert [r[0] for r in got] == list(range(1, 101))           # distinct, consecutive
    modseqs = [r[1] for r in got]
    assert all(x < y for x, y in zip(modseqs, modseqs[1:], strict=False))   # in UID order
    assert sorted(r[2] for r in got) == sorted(f"M{i}-{k}" for i in range(50) for k in (0, 1))
    [(uidnext, highest)] = rows(one, "SELECT uidnext, highestmodseq FROM mailboxes WHERE "
                                     "account_id=%s AND name='INBOX'", a)
    assert (uidnext, highest) == (101, modseqs[-1])


def test_several_copies_into_one_delivery_and_the_first_mailbox_the_account_has(nodes):
    [s] = nodes(1)
    a = account(s)
    b = account(s, "b@other.test")
    asyncio.run(s.deliver(Delivery(
        message_id="M1", mail_from="", local_content=b"Subject: x\r\n\r\nx\r\n",
        local=[LocalCopy(a, ("Nope", "Junk", "INBOX")), LocalCopy(b), LocalCopy(a),
               LocalCopy(a)])))
    got = rows(s, "SELECT b.account_id, b.name, m.uid, m.modseq FROM messages m "
                  "JOIN mailboxes b ON m.mailbox_id=b.id ORDER BY b.account_id, b.name, m.uid")
    assert [r[:3] for r in got] == [(a, "INBOX", 1), (a, "INBOX", 2), (a, "Junk", 1),
                                    (b, "INBOX", 1)]
    assert len({r[3] for r in got}) == 1 and got[0][3] > 1         # one new MODSEQ
    assert rows(s, "SELECT count(*) FROM blobs") == [(1,)]        # one blob for all


def test_a_copy_without_any_of_its_mailboxes_delivers_nothing(nodes):
    from mailwright.store.base import StoreError
    [s] = nodes(1)
    a = account(s)
    with pytest.raises(StoreError, match="has none of Nope"):
        asyncio.run(s.deliver(Delivery(
            message_id="M1", mail_from="", local_content=b"Subject: x\r\n\r\nx\r\n",
            local=[LocalCopy(a), LocalCopy(a, ("Nope",))])))
    assert rows(s, "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM blobs), "
                   "(SELECT count(*) FROM message_meta)") == [(0, 0, 0)]


def test_the_blob_rows_go_with_the_last_reference(nodes):
    [s] = nodes(1)
    a = account(s)
    b = account(s, "b@shop.test")
    asyncio.run(s.deliver(Delivery(message_id="M1", mail_from="",
                                   local=[LocalCopy(a), LocalCopy(b)],
                                   local_content=b"Subject: shared\r\n\r\nnull\x00byte\r\n")))
    counts = "SELECT (SELECT count(*) FROM blobs), (SELECT count(*) FROM message_meta), " \
             "(SELECT count(*) FROM message_text)"
    assert rows(s, counts) == [(1, 1, 1)]
    for who in ("a@shop.test", "b@shop.test"):
        box = asyncio.run(s.maildrop(who))
        asyncio.run(s.pop3_update(box.mailbox_id, [box.messages[0].uid], []))
        left = 0 if who.startswith("b") else 1
        assert rows(s, counts) == [(left, left, left)]


def test_removing_an_account_releases_its_blobs(nodes):
    [s] = nodes(1)
    a = account(s)
    asyncio.run(s.deliver(Delivery(message_id="M1", mail_from="", local=[LocalCopy(a)],
                                   local_content=b"Subject: x\r\n\r\nx\r\n")))
    asyncio.run(s.remove_account(parse_mailbox("a@shop.test")))
    assert rows(s, "SELECT count(*) FROM blobs") == [(0,)]


MiB = 1 << 20


def test_a_24_mib_spooled_message_is_stored_byte_exact(nodes):
    [s] = nodes(1)
    a = account(s)
    spool = s.spool()
    spool.write(b"Subject: big\r\nContent-Type: text/plain\r\n\r\n")
    line = b"0123456789abcdef" * 62 + b"\r\n"                  # 994 octets
    for i in range(24 * MiB // len(line)):
        spool.write(line[:-3] + b"%03d" % (i % 1000) if i % 7 == 0 else line)
    relay = spool.content()
    assert isinstance(relay, Spooled) and len(relay) > 24 * MiB - 1024
    local = b"Return-Path: <>\r\n" + relay
    asyncio.run(s.deliver(Delivery(message_id="BIG", mail_from="", local=[LocalCopy(a)],
                                   local_content=local,
                                   remote=[RemoteRecipient("x@far.test")],
                                   relay_content=relay)))
    [message] = asyncio.run(s.maildrop("a@shop.test")).messages
    assert message.size == len(local)
    assert asyncio.run(s.read_blob(message.blob)) == local.read()
    [queued] = asyncio.run(s.queue_messages())
    assert queued.blob != message.blob and queued.size == len(relay)
    assert asyncio.run(s.read_blob(queued.blob)) == relay.read()


def test_a_release_waits_for_a_reference_being_added_and_then_keeps_the_blob(nodes):
    # The race blobrefs.py closes: node 1 adds a reference to a stored blob (a delivery
    # of the same octets) while node 2 removes the blob's last other reference.
    # Node 2's release must wait for node 1's lock, then see its reference.
    import threading

    from mailwright.store.postgresql.messages import add_copies, store_blob
    one, two = nodes(2)
    a = account(one)
    b = account(one, "b@shop.test")
    content = b"Subject: same\r\n\r\nsame octets\r\n"
    asyncio.run(one.deliver(Delivery(message_id="M1", mail_from="", local=[LocalCopy(a)],
                                     local_content=content)))
    [message] = asyncio.run(one.maildrop("a@shop.test")).messages
    locked, go = threading.Event(), threading.Event()

    async def add(cur):
        await store_blob(cur, message.blob, content)
        locked.set()
        await asyncio.to_thread(go.wait, 30)
        await add_copies(cur, Delivery(message_id="M2", mail_from="", local=[LocalCopy(b)]),
                         message.blob, len(content), 0.0)

    async def race():
        adding = asyncio.create_task(one.db.transaction(add))
        assert await asyncio.to_thread(locked.wait, 30)
        box = await two.maildrop("a@shop.test")
        removing = asyncio.create_task(two.pop3_update(box.mailbox_id, [message.uid], []))
        for _ in range(600):                                  # until it waits for the lock
            if (await two.db.fetchone(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname=current_database() "
                    "AND wait_event_type='Lock'"))[0]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the release never waited for the blob's lock")
        assert not removing.done()
        go.set()
        await adding
        assert await removing == 1
    asyncio.run(race())
    [kept] = asyncio.run(one.maildrop("b@shop.test")).messages
    assert kept.blob == message.blob
    assert asyncio.run(two.read_blob(kept.blob)) == content
    assert rows(one, "SELECT count(*) FROM message_meta") == [(1,)]


def test_backfill_parses_what_was_stored_without_a_parse_or_by_an_older_one(nodes):
    from mailwright.store.metarows import META_VERSION
    [s] = nodes(1)
    a = account(s)
    for i, text in enumerate(("Café crème", "plain")):
        asyncio.run(s.deliver(Delivery(
            message_id=f"M{i}", mail_from="", local=[LocalCopy(a)],
            local_content=f"From: Ann <ann@x.test>\r\nSubject: {text}\r\n\r\n{text} body\r\n"
            .encode())))
    parsed = "SELECT m.uid, x.envelope, x.version, t.hdr, t.body FROM messages m " \
             "JOIN message_meta x ON x.id=m.meta_id JOIN message_text t ON t.meta_id=x.id " \
             "ORDER BY m.uid"
    before = rows(s, parsed)
    assert before[0][4] == "cafe creme body\r\n"              # folded as SQLite folds
    # Message 1 as copied from a store without metadata; message 2 by an older parse.
    asyncio.run(s.db.execute("UPDATE messages SET meta_id=NULL WHERE uid=1"))
    asyncio.run(s.db.execute("DELETE FROM message_meta WHERE id NOT IN "
                             "(SELECT meta_id FROM messages WHERE meta_id IS NOT NULL)"))
    asyncio.run(s.db.execute("UPDATE message_meta SET version=0, subject=''"))
    asyncio.run(s.db.execute("UPDATE message_text SET hdr='', body=''"))
    assert asyncio.run(s.backfill_meta()) == 2
    after = rows(s, parsed)
    assert [r[:2] + r[3:] for r in after] == [r[:2] + r[3:] for r in before]
    assert {r[2] for r in after} == {META_VERSION}
    assert asyncio.run(s.backfill_meta()) == 0                 # done once


def test_a_failing_delivery_among_concurrent_ones_fails_alone(nodes):
    # Concurrent deliveries share a transaction (batches.py): one refused (a copy with
    # none of its mailboxes, a queue id used twice) is undone alone.
    from mailwright.store.base import StoreError
    [s] = nodes(1)
    a = account(s)

    def good(i: int) -> Delivery:
        return Delivery(message_id=f"G{i}", mail_from="", local=[LocalCopy(a)],
                        local_content=f"Subject: {i}\r\n\r\nx\r\n".encode())
    bad_box = Delivery(message_id="B1", mail_from="", local=[LocalCopy(a, ("Nope",))],
                       local_content=b"Subject: bad\r\n\r\nx\r\n")
    queued = Delivery(message_id="Q1", mail_from="", remote=[RemoteRecipient("x@far.test")],
                      relay_content=b"Subject: q\r\n\r\nx\r\n")

    async def together():
        return await asyncio.gather(*(s.deliver(good(i)) for i in range(10)), s.deliver(bad_box),
                                    *(s.deliver(good(i)) for i in range(10, 20)),
                                    s.deliver(queued), s.deliver(queued),
                                    return_exceptions=True)
    outcomes = asyncio.run(together())
    assert outcomes[:10] + outcomes[11:21] == [None] * 20
    assert isinstance(outcomes[10], StoreError)
    assert sorted(o is None for o in outcomes[21:]) == [False, True]   # Q1 once
    uids = [m.uid for m in asyncio.run(s.maildrop("a@shop.test")).messages]
    assert uids == list(range(1, 21))
    assert [m.message_id for m in asyncio.run(s.queue_messages())] == ["Q1"]
    assert rows(s, "SELECT count(*) FROM blobs") == [(21,)]
