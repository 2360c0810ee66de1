"""`mailwright migrate --from sqlite:PATH`: a single-node install copied into
PostgreSQL looks the same to an IMAP client (UIDVALIDITY, UIDs, MODSEQs, flags,
bodies, search), and the queue and the event log come along."""

import asyncio

import pytest

from mailwright.address import parse_mailbox
from mailwright.auth.logins import Logins
from mailwright.events.log import EventLog
from mailwright.imap.fetch import views as fetch_views
from mailwright.imap.notify import MailboxWatch
from mailwright.imap.session import ImapSession
from mailwright.store.messages import Delivery, LocalCopy
from mailwright.store.postgresql import PostgresStore
from mailwright.store.postgresql.from_sqlite import (
    MigrateError,
    copy_from_sqlite,
    parse_source,
)
from mailwright.store.queue import RemoteRecipient
from mailwright.store.sqlite import SQLiteStore
from mailwright.store.sqlite.db import INLINE_BLOB_MAX

from .session_harness import TLS, drive, make_config

USER, PASSWORD = "mover@example.test", "moving-password-1"
BIG = b"Subject: big one\r\n\r\n" + (b"y" * 998 + b"\r\n") * (INLINE_BLOB_MAX // 1000 + 2)


def single_node(data_dir) -> None:
    """An install with some history: messages (one in a blob file), flags, an
    expunge (a UID gap, HIGHESTMODSEQ moved), a folder, queued mail, events."""
    s = SQLiteStore(data_dir, render_views=fetch_views)
    try:
        asyncio.run(s.add_domain("example.test"))
        asyncio.run(s.add_account(parse_mailbox(USER), PASSWORD))
        account = asyncio.run(s.account_id(USER))
        for i, content in enumerate([b"Subject: first\r\nFrom: A <a@x.test>\r\n\r\nhello\r\n",
                                     b"Subject: second\r\n\r\nsecond body\r\n", BIG,
                                     b"Subject: fourth\r\n\r\nfour\r\n"]):
            asyncio.run(s.deliver(Delivery(message_id=f"MIG{i}", mail_from="a@x.test",
                                           local=[LocalCopy(account)],
                                           local_content=content)))
        asyncio.run(s.deliver(Delivery(message_id="OUT1", mail_from=USER,
                                       remote=[RemoteRecipient("far@remote.test")],
                                       relay_content=b"Subject: out\r\n\r\nout\r\n")))
        c = Imap(s, log=True)          # its events are in the log
        assert c.cmd('c CREATE "Projects"')[-1].startswith(b"c OK")
        assert c.cmd("s SELECT INBOX")[-1].startswith(b"s OK")
        assert c.cmd(r"f STORE 1 +FLAGS (\Flagged $Label1)")[-1].startswith(b"f OK")
        assert c.cmd(r"d STORE 2 +FLAGS (\Deleted)")[-1].startswith(b"d OK")
        assert c.cmd("e EXPUNGE")[-1].startswith(b"e OK")
        asyncio.run(s.add_suppression("example.test", "gone@remote.test", "gone@remote.test",
                                      None, "bounce", "550 no such user", 1.0))
    finally:
        s.close()


class Imap:
    def __init__(self, store, log: bool = False):
        config = make_config()
        self.s = ImapSession("192.0.2.9", TLS, config, store, Logins.from_settings(config.auth),
                             EventLog(store if log else None), MailboxWatch(store))
        self.s.greeting()
        assert self.cmd(f'a LOGIN {USER} "{PASSWORD}"')[-1].startswith(b"a OK")

    def cmd(self, line: str) -> list[bytes]:
        out, _ = drive(self.s, (line + "\r\n").encode())
        return out.split(b"\r\n")[:-1]


def imap_view(store) -> list[list[bytes]]:
    c = Imap(store)
    return [c.cmd("1 SELECT INBOX (CONDSTORE)"),
            c.cmd("2 UID FETCH 1:* (UID FLAGS MODSEQ INTERNALDATE RFC822.SIZE BODY.PEEK[])"),
            c.cmd("3 UID SEARCH TEXT body"),
            c.cmd("4 STATUS Projects (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)"),
            c.cmd('5 LIST "" "*"')]


def test_an_imap_client_sees_the_same_mailboxes_after_the_move(pg_dsn, tmp_path):
    old = tmp_path / "single"
    single_node(old)
    before = SQLiteStore(old, render_views=fetch_views)
    try:
        expected = imap_view(before)
        queued = asyncio.run(before.queue_messages())
        events = asyncio.run(before.events(limit=1000))
        blocked = asyncio.run(before.suppressions(None, None, None, 10, None))
    finally:
        before.close()
    assert b"* 3 EXISTS" in expected[0] and len(expected[1]) > 10     # the view is real

    copied = {c.table: c.rows for c in copy_from_sqlite(pg_dsn, parse_source(f"sqlite:{old}"))}
    assert copied["messages"] == 3 and copied["blobs"] == 4 and copied["queue"] == 1
    assert copied["events"] > 0

    after = PostgresStore(pg_dsn, tmp_path / "node", render_views=fetch_views)
    try:
        assert imap_view(after) == expected
        moved = asyncio.run(after.queue_messages())
        assert [(m.message_id, m.blob, [r.address for r in m.recipients]) for m in moved] == \
            [(m.message_id, m.blob, [r.address for r in m.recipients]) for m in queued]
        assert asyncio.run(after.read_blob(moved[0].blob)) == b"Subject: out\r\n\r\nout\r\n"
        assert asyncio.run(after.events(limit=1000)) == events
        assert asyncio.run(after.suppressions(None, None, None, 10, None)) == blocked
        # New rows get ids after the copied ones: a delivery now takes the next UID.
        account = asyncio.run(after.account_id(USER))
        asyncio.run(after.deliver(Delivery(message_id="NEW", mail_from="a@x.test",
                                           local=[LocalCopy(account)],
                                           local_content=b"Subject: new\r\n\r\nnew\r\n")))
        c = Imap(after)
        assert b"* 4 EXISTS" in c.cmd("6 SELECT INBOX")
        assert c.cmd("7 FETCH 4 UID") == [b"* 4 FETCH (UID 5)", b"7 OK FETCH completed"]
    finally:
        after.close()


def test_a_database_with_data_is_refused_and_left_as_it_was(pg_dsn, tmp_path):
    old = tmp_path / "single"
    single_node(old)
    copy_from_sqlite(pg_dsn, parse_source(f"sqlite:{old}"))
    with pytest.raises(MigrateError, match=r"already holds data \(in .*domains"):
        copy_from_sqlite(pg_dsn, parse_source(f"sqlite:{old}"))


@pytest.mark.parametrize("source, wanted", [
    ("postgres:x", "expected sqlite:PATH"),
    ("sqlite:", "expected sqlite:PATH"),
    ("sqlite:/nonexistent/dir", "no SQLite store there"),
])
def test_a_source_that_is_not_a_sqlite_install_is_named(source, wanted):
    with pytest.raises(MigrateError, match=wanted):
        parse_source(source)


def test_the_command_line_copies_and_names_what_is_wrong(pg_dsn, tmp_path):
    import subprocess
    import sys

    from tests.conftest import write_config
    old = tmp_path / "single"
    single_node(old)
    (tmp_path / "pg").mkdir()
    (tmp_path / "lite").mkdir()
    pg, _ = write_config(tmp_path / "pg", extra=f'[store]\nbackend = "postgresql"\n'
                                                f'dsn = "{pg_dsn}"\n')
    lite, _ = write_config(tmp_path / "lite")

    def migrate(config, source):
        return subprocess.run([sys.executable, "-m", "mailwright", "--config", str(config),
                               "migrate", "--from", source], capture_output=True, text=True,
                              timeout=120)
    res = migrate(lite, f"sqlite:{old}")
    assert res.returncode != 0 and "--from copies into PostgreSQL" in res.stderr
    res = migrate(pg, "sqlite:/nonexistent")
    assert res.returncode != 0 and "no SQLite store there" in res.stderr
    assert "Traceback" not in res.stderr
    res = migrate(pg, f"sqlite:{old}")
    assert res.returncode == 0, res.stderr
    assert "messages\t3" in res.stdout and f"copied sqlite:{old}" in res.stdout
    res = migrate(pg, f"sqlite:{old}")
    assert res.returncode != 0 and "already holds data" in res.stderr
