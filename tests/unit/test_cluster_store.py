"""What nodes on one PostgreSQL database share beyond the data (store/cluster.py):
news of changed mailboxes, leadership, exclusive locks, failed-login counters. Two
stores with their own data_dir are two nodes; every wait is bounded."""

import asyncio
import time

import pytest

from mailwright.auth.lockout import AuthLockout
from mailwright.config import AuthSettings
from mailwright.imap.fetch import views as fetch_views
from mailwright.pop3.locks import ClusterMaildropLocks
from mailwright.store.cluster import Cluster
from mailwright.store.postgresql import holds


@pytest.fixture
def nodes(pg_dsn, tmp_path):
    from mailwright.store.postgresql import PostgresStore
    made = []

    def node(name: str, closed_by_test: bool = False):
        s = PostgresStore(pg_dsn, tmp_path / name, render_views=fetch_views)
        if not closed_by_test:
            made.append(s)
        return s
    yield node
    for s in made:
        s.close()


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


def test_the_postgresql_store_is_a_cluster_and_sqlite_is_not(nodes, make_store):
    assert isinstance(nodes("a"), Cluster)
    s = make_store()
    assert isinstance(s, Cluster) == (type(s).__name__ == "PostgresStore")


def mailbox(store) -> int:
    """A mailbox row (written directly: this is about the trigger on its versions)."""
    async def make(cur):
        await cur.execute("INSERT INTO domains (name, created) VALUES ('d.test', 0) "
                          "RETURNING id")
        (domain,) = await cur.fetchone()
        await cur.execute(
            "INSERT INTO accounts (domain_id, local_part, lookup, password_hash, "
            "scram_salt, scram_stored_key, scram_server_key, scram_iterations, created) "
            "VALUES (%s, 'u', 'u@d.test', '', '', '', '', 1, 0) RETURNING id", (domain,))
        (account,) = await cur.fetchone()
        await cur.execute("INSERT INTO mailboxes (account_id, name, uidvalidity) "
                          "VALUES (%s, 'INBOX', 1) RETURNING id", (account,))
        return (await cur.fetchone())[0]
    return asyncio.run(store.db.transaction(make))


def test_a_mailbox_changed_on_one_node_is_heard_on_the_other(nodes):
    a, b = nodes("a"), nodes("b")
    box = mailbox(a)

    async def scenario():
        heard: list = []
        await b.watch_mailboxes(heard.append)
        await a.db.execute("UPDATE mailboxes SET uidnext=uidnext+1 WHERE id=%s", (box,))
        await until(lambda: heard == [box], timeout=1.0)
        # A change of anything else (a name) is no news for IDLE.
        await a.db.execute("UPDATE mailboxes SET name='Other' WHERE id=%s", (box,))
        await a.db.execute("UPDATE mailboxes SET highestmodseq=highestmodseq+1 "
                           "WHERE id=%s", (box,))
        await until(lambda: len(heard) == 2, timeout=1.0)
        assert heard == [box, box]
    asyncio.run(scenario())


def test_one_leader_at_a_time_and_the_next_takes_over_when_it_goes(nodes, monkeypatch):
    from mailwright.store.postgresql import cluster
    monkeypatch.setattr(cluster, "LEAD_RETRY", 0.05)
    a, b = nodes("a", closed_by_test=True), nodes("b")

    async def scenario():
        lost_a = asyncio.Event()
        await asyncio.wait_for(a.lead("housekeeping", lost_a.set), 2)
        follower = asyncio.ensure_future(b.lead("housekeeping", lambda: None))
        await asyncio.sleep(0.3)
        assert not follower.done()                       # a leads
        a.close()                                        # a's session ends: b leads
        await asyncio.wait_for(follower, 5)
    asyncio.run(scenario())


def test_a_leader_whose_session_breaks_is_told(nodes, monkeypatch):
    monkeypatch.setattr(holds, "HEALTH_INTERVAL", 0.1)
    a, b = nodes("a"), nodes("b")

    async def scenario():
        lost = asyncio.Event()
        await a.lead("housekeeping", lost.set)
        # The database ends a's session (as when the network to it breaks).
        await b.db.execute("SELECT pg_terminate_backend(pid) FROM pg_locks "
                           "WHERE locktype='advisory' AND granted")
        await asyncio.wait_for(lost.wait(), 5)
        await asyncio.wait_for(b.lead("housekeeping", lambda: None), 5)
        assert await a.try_exclusive("maildrop:x")          # a new session for a's holds
    asyncio.run(scenario())


def test_a_maildrop_is_locked_for_every_node_until_released(nodes):
    a, b = ClusterMaildropLocks(nodes("a")), ClusterMaildropLocks(nodes("b"))

    async def scenario():
        assert await a.acquire("user@d.test")
        assert not await a.acquire("User@d.test")          # same process, same maildrop
        assert not await b.acquire("user@d.test")
        assert await b.acquire("other@d.test")
        assert "user@d.test" in a
        a.release("user@d.test")
        deadline = time.monotonic() + 5
        while not await b.acquire("user@d.test"):           # released without waiting
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    asyncio.run(scenario())


def test_failed_logins_on_both_nodes_add_up_and_lock_out_everywhere(nodes):
    settings = AuthSettings(max_failures=4, failure_window=60, lockout=300,
                            failure_delay=0.01)
    a, b = nodes("a"), nodes("b")
    on_a, on_b = AuthLockout(settings, shared=a), AuthLockout(settings, shared=b)

    async def scenario():
        await a.watch_lockouts(on_a.lock)
        await b.watch_lockouts(on_b.lock)
        for lockout in (on_a, on_b, on_a):          # 3 failures: 2 on a, 1 on b
            lockout.record_failure("192.0.2.7")
        await asyncio.sleep(0.3)
        assert on_a.locked_for("192.0.2.7") == 0 and on_b.locked_for("192.0.2.7") == 0
        on_b.record_failure("192.0.2.7")            # the 4th, in the cluster
        await until(lambda: on_a.locked_for("192.0.2.7") > 290, timeout=2)
        await until(lambda: on_b.locked_for("192.0.2.7") > 290, timeout=2)
        assert on_a.locked_for("198.51.100.1") == 0
    asyncio.run(scenario())


def test_idle_on_one_node_is_woken_by_a_change_on_the_other_without_polling(nodes):
    from mailwright.imap.notify import MailboxWatch
    a, b = nodes("a"), nodes("b")
    box = mailbox(a)

    async def scenario():
        watch = MailboxWatch(b, interval=3600, changes=b)    # a poll would come too late
        woken = asyncio.Event()
        await watch.watch(box, woken.set)
        await a.db.execute("UPDATE mailboxes SET uidnext=uidnext+1 WHERE id=%s", (box,))
        await asyncio.wait_for(woken.wait(), 1)
        assert watch.task is None                            # no polling task
        watch.unwatch(box, woken.set)
    asyncio.run(scenario())
