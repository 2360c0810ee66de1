"""The full-text index off the acknowledgement path (store/sqlite/textindex.py): a
delivered message's text waits as a pending row (a long one not even stored yet: it is
made later), SEARCH finds it there as it finds it in the index, the writer indexes it in
the background, a restart (or a kill) leaves nothing behind, and an expunge takes a
pending text along."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailwright.address import parse_mailbox
from mailwright.imap.fetch import views as fetch_views
from mailwright.store import query as q
from mailwright.store.messages import Delivery, LocalCopy
from mailwright.store.sqlite import SQLiteStore, textindex
from mailwright.store.sqlite.db import WriteLock, connect
from mailwright.store.sqlite.textindex import Indexer, index_pending

from .conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
USER = "t@example.test"
MESSAGES = [
    "Subject: Lunch on Friday\r\nFrom: Zoë <zoe@example.test>\r\n\r\nThe Café opens at noon.\r\n",
    "Subject: invoice 42\r\n\r\nPlease pay the invoice by Friday.\r\n",
    "Subject: hello\r\n\r\nNothing to see.\r\n",
]
# (query, UIDs) on MESSAGES: text in headers, in bodies, folded, short, combined.
EXPECTED = [
    (q.Text("friday"), [1, 2]),
    (q.Body("friday"), [2]),
    (q.Text("cafe"), [1]),                     # diacritics and case folded (fold)
    (q.Text("ZOE"), [1]),
    (q.Body("no"), [1, 3]),                    # shorter than a trigram: a scan
    (q.And((q.Text("friday"), q.Not(q.Body("invoice")))), [1]),
    (q.Or(q.Body("nothing"), q.Text("lunch")), [1, 3]),
    (q.Not(q.Text("invoice")), [1, 3]),
    (q.Text("absent words"), []),
]


def open_store(path, background: bool) -> SQLiteStore:
    return SQLiteStore(path, render_views=fetch_views, index_in_background=background)


def setup_account(store: SQLiteStore) -> int:
    asyncio.run(store.add_domain("example.test"))
    asyncio.run(store.add_account(parse_mailbox(USER), PASSWORD))
    return asyncio.run(store.account_id(USER))


def deliver_all(store: SQLiteStore, account: int) -> int:
    """MESSAGES delivered as SMTP delivers them; the INBOX id."""
    for i, text in enumerate(MESSAGES):
        asyncio.run(store.deliver(Delivery(message_id=f"T{i}", mail_from="",
                                           local=[LocalCopy(account)],
                                           local_content=text.encode())))
    return asyncio.run(store.mailbox(account, "INBOX")).id


def counts(store: SQLiteStore) -> tuple[int, int]:
    """(pending texts, texts the index finds): every one of MESSAGES has a Subject."""
    return (store.conn.execute("SELECT count(*) FROM message_text_pending").fetchone()[0],
            store.conn.execute("SELECT count(*) FROM message_text "
                               "WHERE message_text MATCH 'sub'").fetchone()[0])


def answers(store: SQLiteStore, box: int) -> list[list[int]]:
    return [asyncio.run(store.search(box, key)) for key, _ in EXPECTED]


def wait_indexed(store: SQLiteStore) -> None:
    """Until the background indexer has emptied the pending rows (bounded)."""
    deadline = time.monotonic() + 10
    while counts(store)[0] and time.monotonic() < deadline:
        time.sleep(0.01)


def stored(store: SQLiteStore) -> int:
    """How many texts are stored (indexed or not)."""
    return store.conn.execute("SELECT count(*) FROM message_texts").fetchone()[0]


@pytest.fixture(params=["stored", "made later"])
def texts(request, monkeypatch):
    """Texts stored with their delivery, or only marked and made later, as long ones
    are (textindex.DEFERRED_CHARS; with "made later" every text counts as long)."""
    if request.param == "made later":
        monkeypatch.setattr(textindex, "DEFERRED_CHARS", 0)
    return request.param


@pytest.fixture
def quiet(tmp_path):
    """A store whose writer does not index on its own: the test decides when."""
    store = open_store(tmp_path, background=False)
    yield store, setup_account(store)
    store.close()


def test_search_finds_a_message_before_and_after_it_is_indexed(quiet, texts):
    store, account = quiet
    box = deliver_all(store, account)
    assert counts(store) == (3, 0)                     # acknowledged, not indexed
    assert stored(store) == (0 if texts == "made later" else 3)
    before = answers(store, box)
    assert stored(store) == 3                          # the search made them
    assert before == [uids for _, uids in EXPECTED]
    # One at a time: results stay the same with some rows indexed and some not.
    assert asyncio.run(store.index_pending(1)) == 1
    assert counts(store) == (2, 1)
    assert answers(store, box) == before
    assert asyncio.run(store.index_pending(10)) == 2
    assert asyncio.run(store.index_pending(10)) == 0
    assert counts(store) == (0, 3)
    assert answers(store, box) == before


def test_expunging_a_pending_message_removes_its_text(quiet, texts):
    store, account = quiet
    box = deliver_all(store, account)
    asyncio.run(store.index_pending(1))                # message 1 indexed, 2 and 3 not
    assert asyncio.run(store.expunge(box, [1, 2])) == [1, 2]
    assert counts(store) == (1, 0)
    assert asyncio.run(store.search(box, q.Text("friday"))) == []
    assert asyncio.run(store.search(box, q.Text("nothing"))) == [3]
    asyncio.run(store.index_pending(10))
    assert counts(store) == (0, 1)          # 1 left the index, 2 never entered it


def test_the_writer_indexes_in_the_background(tmp_path, texts):
    store = open_store(tmp_path, background=True)
    try:
        box = deliver_all(store, setup_account(store))
        wait_indexed(store)
        assert counts(store) == (0, 3)
        assert answers(store, box) == [uids for _, uids in EXPECTED]
    finally:
        store.close()


def test_texts_left_pending_by_a_kill_are_indexed_after_a_restart(tmp_path, texts):
    # A process that delivers with the indexer off, then is killed (no close).
    script = f"""
import os, pathlib, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from mailwright.store.sqlite import textindex
from tests.unit.test_text_index import deliver_all, open_store, setup_account
textindex.DEFERRED_CHARS = {textindex.DEFERRED_CHARS}
store = open_store(pathlib.Path({str(tmp_path)!r}), background=False)
deliver_all(store, setup_account(store))
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    store = open_store(tmp_path, background=True)
    try:
        wait_indexed(store)
        assert counts(store) == (0, 3)
        box = asyncio.run(store.mailbox(asyncio.run(store.account_id(USER)), "INBOX")).id
        assert answers(store, box) == [uids for _, uids in EXPECTED]
    finally:
        store.close()


def test_the_indexer_waits_for_deliveries_to_pause_unless_too_much_text_waits(quiet):
    store, account = quiet
    deliver_all(store, account)
    conn = connect(store.db_path)           # as the writer's own connection would
    try:
        waiting = conn.execute("SELECT sum(chars) FROM message_text_pending").fetchone()[0]
        assert waiting == sum(len(h) + len(b) for h, b in conn.execute(
            "SELECT hdr, body FROM message_texts"))
        # Deliveries have not paused (the newest text is younger than the delay) and
        # no more than the backlog waits: look again once they will have paused.
        assert Indexer(store.blobs, idle_delay=3600).step(conn) > 3000
        assert Indexer(store.blobs, idle_delay=3600, backlog=waiting).step(conn) > 3000
        assert counts(store) == (3, 0)
        # More than the backlog waits: a batch at once, even while deliveries go on.
        assert Indexer(store.blobs, idle_delay=3600, backlog=waiting - 1).step(conn) == 0
        assert counts(store) == (0, 3)
        assert Indexer(store.blobs).step(conn) is None
        # Deliveries have paused: indexed whatever the backlog.
        asyncio.run(store.deliver(Delivery(
            message_id="P", mail_from="", local=[LocalCopy(account)],
            local_content=b"Subject: paused\r\n\r\nlater\r\n")))
        assert Indexer(store.blobs, idle_delay=0).step(conn) == 0
        assert counts(store) == (0, 4)
        # A batch stops after the text that takes it past its characters.
        for i in range(3):
            asyncio.run(store.deliver(Delivery(
                message_id=f"N{i}", mail_from="", local=[LocalCopy(account)],
                local_content=f"Subject: sub {i}\r\n\r\nnew\r\n".encode())))
        assert counts(store) == (3, 4)
        store._writer.submit(lambda c: index_pending(c, chars=1)).result()
        assert counts(store) == (2, 5)
        store._writer.submit(lambda c: index_pending(c, chars=10**9)).result()
        assert counts(store) == (0, 7)
        # A marker whose metadata is gone (nothing leaves one) is dropped, not kept
        # for ever: the writer would look at it again and again.
        store._writer.submit(lambda c: c.execute(
            "INSERT INTO message_text_pending (meta_id, queued) VALUES (999, 0)")).result()
        assert Indexer(store.blobs).step(conn) == 0
        assert counts(store) == (0, 7)
        assert Indexer(store.blobs).step(conn) is None
    finally:
        conn.close()


def test_the_indexer_takes_the_write_lock_only_to_index(quiet):
    """Whether indexing is due is read without the lock: another process's writer
    holding it does not hold up a look that finds nothing to do."""
    store, account = quiet
    deliver_all(store, account)
    conn = connect(store.db_path)
    other, mine = WriteLock(store.db_path), WriteLock(store.db_path)
    try:
        with other:                          # another process's writer has its turn
            looked = concurrent.futures.ThreadPoolExecutor(1).submit(
                Indexer(store.blobs, idle_delay=3600).step, conn, mine)
            assert looked.result(timeout=10) > 3000      # not due: no wait for the lock
            indexing = concurrent.futures.ThreadPoolExecutor(1).submit(
                Indexer(store.blobs, idle_delay=0).step, conn, mine)
            time.sleep(0.3)
            assert not indexing.done()       # due: it waits for its turn
        assert indexing.result(timeout=10) == 0
        assert counts(store) == (0, 3)
    finally:
        other.close()
        mine.close()
        conn.close()


def test_texts_of_the_previous_index_are_kept_and_indexed_again(tmp_path):
    # A database from before message_texts: the trigram index held the folded texts.
    store = open_store(tmp_path, background=False)
    box = deliver_all(store, setup_account(store))
    asyncio.run(store.index_pending(10))

    def downgrade(c):
        rows = c.execute("SELECT meta_id, hdr, body FROM message_texts").fetchall()
        c.execute("DROP TABLE message_text")
        c.execute("DELETE FROM message_texts")
        c.execute("CREATE VIRTUAL TABLE message_text USING fts5(hdr, body, "
                  "tokenize = 'trigram', detail = none, columnsize = 0)")
        c.executemany("INSERT INTO message_text (rowid, hdr, body) VALUES (?,?,?)", rows)
    store._writer.submit(downgrade).result()
    store.close()

    store = open_store(tmp_path, background=False)
    try:
        assert counts(store) == (3, 0)                  # kept, to be indexed again
        assert answers(store, box) == [uids for _, uids in EXPECTED]
        assert asyncio.run(store.backfill_meta()) == 0  # no message is parsed again
        assert asyncio.run(store.index_pending(10)) == 3
        assert counts(store) == (0, 3)
        assert answers(store, box) == [uids for _, uids in EXPECTED]
    finally:
        store.close()


def long_message(size: int, word: str) -> bytes:
    """A message of about `size` octets whose body holds `word` once, at its end."""
    line = b"All work and no play makes a long message.\r\n"
    return (b"Subject: long\r\n\r\n" + line * (size // len(line)) + word.encode() + b"\r\n")


def deliver(store: SQLiteStore, account: int, content: bytes, i: int = 0) -> None:
    asyncio.run(store.deliver(Delivery(message_id=f"L{i}", mail_from="",
                                       local=[LocalCopy(account)], local_content=content)))


def test_long_texts_are_made_after_their_delivery(quiet):
    store, account = quiet
    small = b"Subject: short\r\n\r\nneedle in a short one\r\n"
    inline = long_message(40_000, "needle")        # a text past DEFERRED_CHARS, in SQLite
    file = long_message(120_000, "needle")         # past INLINE_BLOB_MAX too: a file
    for i, content in enumerate((small, inline, file)):
        deliver(store, account, content, i)
    box = asyncio.run(store.mailbox(account, "INBOX")).id
    # Only the short text went in with its delivery; each is marked with its length.
    assert stored(store) == 1
    marks = [r[0] for r in store.conn.execute(
        "SELECT chars FROM message_text_pending ORDER BY meta_id")]
    assert marks[0] < textindex.DEFERRED_CHARS <= marks[1] < marks[2]
    # SEARCH makes this mailbox's texts first, and finds the word in each.
    assert asyncio.run(store.search(box, q.Body("NEEDLE"))) == [1, 2, 3]
    assert stored(store) == 3
    assert asyncio.run(store.search(box, q.Body("needle in a"))) == [1]
    assert asyncio.run(store.index_pending(10)) == 3
    assert asyncio.run(store.search(box, q.Body("needle"))) == [1, 2, 3]


def test_the_indexer_makes_long_texts_and_indexes_them(quiet):
    store, account = quiet
    for i in range(3):
        deliver(store, account, long_message(50_000, f"word{i}x"), i)
    assert (stored(store), counts(store)) == (0, (3, 0))
    conn = connect(store.db_path)
    try:
        assert Indexer(store.blobs, idle_delay=0).step(conn) == 0
    finally:
        conn.close()
    assert (stored(store), counts(store)) == (3, (0, 3))
    box = asyncio.run(store.mailbox(account, "INBOX")).id
    assert asyncio.run(store.search(box, q.Body("word1x"))) == [2]


def test_a_text_made_for_an_expunged_message_is_not_stored(quiet):
    store, account = quiet
    deliver(store, account, long_message(40_000, "gone"))
    box = asyncio.run(store.mailbox(account, "INBOX")).id
    items = textindex.unmade(store.conn, box)
    made = textindex.make_texts(store.blobs, textindex.inline_blobs(store.conn, items),
                                items)
    assert "gone" in made[0][2]
    assert asyncio.run(store.expunge(box, [1])) == [1]      # meanwhile
    store._writer.submit(lambda c: textindex.store_texts(c, items, made)).result()
    assert stored(store) == 0 and counts(store) == (0, 0)


def test_a_message_whose_file_is_gone_gets_an_empty_text(quiet, caplog):
    store, account = quiet
    content = long_message(120_000, "lost")
    deliver(store, account, content)
    digest = store.conn.execute("SELECT blob FROM messages").fetchone()[0]
    store.blobs.remove(digest)
    # Indexed as an empty text: its mark does not wait for ever.
    assert asyncio.run(store.index_pending(10)) == 1
    assert counts(store) == (0, 0) and stored(store) == 1
    assert "cannot be read" in caplog.text and "its text is left empty" in caplog.text
