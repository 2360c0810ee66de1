"""The queue's store interface on both backends: claims and leases, outcomes, the
text of finished messages, the admin's changes; and, on PostgreSQL, several nodes
claiming from one queue."""

import asyncio
import time

import pytest

from mailwright.imap.fetch import views as fetch_views
from mailwright.queue.states import BOUNCED, DEFERRED, DELIVERED, FINAL
from mailwright.store.messages import Delivery
from mailwright.store.queue import RecipientUpdate, RemoteRecipient

BODY = b"Subject: queued\r\n\r\nbody\r\n"


def enqueue(store, message_id: str, rcpts: list[str], body: bytes = BODY) -> None:
    asyncio.run(store.deliver(Delivery(
        message_id=message_id, mail_from="sender@home.test",
        remote=[RemoteRecipient(r) for r in rcpts], relay_content=body)))


def later() -> float:
    """A time every recipient queued so far is due at."""
    return time.time() + 1


def claim(store, now: float, limit: int = 100, lease: float = 60):
    return asyncio.run(store.queue_claim(now, limit, lease))


def test_a_claim_leases_due_recipients_until_the_lease_runs_out(make_store):
    s = make_store()
    enqueue(s, "M1", ["a@far.test", "b@far.test"])
    enqueue(s, "M2", ["c@far.test"])
    now = later()
    first = claim(s, now)
    assert [m.message_id for m in first] == ["M1", "M2"]
    assert [r.address for r in first[0].recipients] == ["a@far.test", "b@far.test"]
    assert first[0].blob and first[0].size == len(BODY)
    assert claim(s, now + 59) == []                      # leased
    again = claim(s, now + 61)                           # the lease ran out: a dead worker's
    assert [m.message_id for m in again] == ["M1", "M2"]


def test_a_claim_takes_at_most_limit_messages_in_queue_order(make_store):
    s = make_store()
    for i in range(5):
        enqueue(s, f"M{i}", [f"r{i}@far.test"])
    now = later()
    assert [m.message_id for m in claim(s, now, limit=2)] == ["M0", "M1"]
    assert [m.message_id for m in claim(s, now, limit=10)] == ["M2", "M3", "M4"]


def test_outcomes_are_recorded_and_the_message_leaves_once_every_recipient_is_final(
        make_store):
    s = make_store()
    enqueue(s, "M1", ["a@far.test", "b@far.test", "c@far.test"])
    now = later()
    [m] = claim(s, now)
    a, b, c = m.recipients
    assert not asyncio.run(s.queue_update(m.id, [
        RecipientUpdate(a.id, DELIVERED, "250 ok", address=a.address, remote="mx [1.2.3.4]"),
        RecipientUpdate(b.id, BOUNCED, "550 no", address=b.address),
        RecipientUpdate(c.id, DEFERRED, "451 later", now + 300, delay_warned=True,
                        address=c.address)], FINAL))
    queued = asyncio.run(s.queue_message("M1"))
    states = {r.address: (r.state, r.attempts, r.last_reply) for r in queued.recipients}
    assert states == {"a@far.test": (DELIVERED, 1, "250 ok"),
                      "b@far.test": (BOUNCED, 1, "550 no"),
                      "c@far.test": (DEFERRED, 1, "451 later")}
    assert queued.recipients[2].delay_warned and queued.recipients[2].next_attempt == now + 300
    assert asyncio.run(s.queue_depth()) == {DELIVERED: 1, BOUNCED: 1, DEFERRED: 1}
    attempts = asyncio.run(s.queue_attempts("M1"))
    assert [(x["address"], x["reply"]) for x in attempts] == [
        ("a@far.test", "250 ok"), ("b@far.test", "550 no"), ("c@far.test", "451 later")]
    assert attempts[0]["remote"] == "mx [1.2.3.4]"
    assert claim(s, now + 10) == []                      # c is deferred until now + 300
    [m] = claim(s, now + 300)
    assert [r.address for r in m.recipients] == ["c@far.test"]
    assert asyncio.run(s.queue_update(m.id, [
        RecipientUpdate(m.recipients[0].id, DELIVERED, "250 ok")], FINAL))
    assert asyncio.run(s.queue_message("M1")) is None
    assert asyncio.run(s.queue_depth()) == {}


def test_a_finished_message_keeps_its_text_until_pruned(make_store):
    s = make_store()
    enqueue(s, "M1", ["a@far.test"])
    [m] = claim(s, later())
    assert asyncio.run(s.queue_update(m.id, [
        RecipientUpdate(m.recipients[0].id, DELIVERED, "250 ok")], FINAL, keep_finished=True))
    finished = asyncio.run(s.queue_finished("M1"))
    assert (finished.message_id, finished.mail_from, finished.size) == \
        ("M1", "sender@home.test", len(BODY))
    assert asyncio.run(s.read_blob(finished.blob)) == BODY
    assert asyncio.run(s.prune_finished(finished.finished, 10)) == 0     # not before
    assert asyncio.run(s.prune_finished(finished.finished + 1, 10)) == 1
    assert asyncio.run(s.queue_finished("M1")) is None


def test_pruning_goes_in_batches(make_store):
    s = make_store()
    for i in range(5):
        enqueue(s, f"M{i}", ["a@far.test"], body=BODY + str(i).encode())
    for m in claim(s, later()):
        asyncio.run(s.queue_update(m.id, [RecipientUpdate(m.recipients[0].id, BOUNCED,
                                                          "550 no")], FINAL, True))
    assert asyncio.run(s.prune_finished(time.time() + 1, 2)) == 5
    assert all(asyncio.run(s.queue_finished(f"M{i}")) is None for i in range(5))


def test_hold_release_retry_and_delete(make_store):
    s = make_store()
    enqueue(s, "M1", ["a@far.test", "b@far.test"])
    enqueue(s, "M2", ["c@far.test"])
    now = later()
    assert asyncio.run(s.queue_set_state("M1", "held", now)) == 2
    assert [m.message_id for m in claim(s, now)] == ["M2"]
    assert asyncio.run(s.queue_depth())["held"] == 2
    assert asyncio.run(s.queue_set_state(None, "held", now)) == 1    # M2's c (leased)
    assert asyncio.run(s.queue_set_state(None, "retry", now + 5)) == 3
    assert claim(s, now + 4) == []                                    # due at now + 5
    assert {m.message_id for m in claim(s, now + 120)} == {"M1", "M2"}
    assert asyncio.run(s.queue_delete("M1"))
    assert not asyncio.run(s.queue_delete("M1"))
    assert [m.message_id for m in asyncio.run(s.queue_messages())] == ["M2"]


def test_two_processes_claiming_at_once_take_disjoint_messages(make_store):
    first = make_store()
    second = make_store(same_as=first)
    for i in range(40):
        enqueue(first, f"M{i:02}", [f"r{i}@far.test"])
    now = later()

    async def race():
        return await asyncio.gather(*(s.queue_claim(now, 5, 60)
                                      for _ in range(6) for s in (first, second)))
    taken = [m.message_id for batch in asyncio.run(race()) for m in batch]
    assert sorted(taken) == [f"M{i:02}" for i in range(40)]   # each once, none left


# --- several nodes (PostgreSQL) ------------------------------------------------------
@pytest.fixture
def nodes(pg_dsn, tmp_path):
    """Two nodes' stores on one database, each with its own data_dir (its node id)."""
    from mailwright.store.postgresql import PostgresStore
    made = []

    def node(name: str):
        s = PostgresStore(pg_dsn, tmp_path / name, render_views=fetch_views)
        made.append(s)
        return s
    yield node
    for s in made:
        s.close()


def test_a_node_starting_voids_its_own_old_claims_only(nodes, tmp_path):
    a, b = nodes("a"), nodes("b")
    assert a.node != b.node
    enqueue(a, "MA", ["x@far.test"])
    now = later()
    assert [m.message_id for m in claim(a, now)] == ["MA"]
    enqueue(a, "MB", ["y@far.test"])
    assert [m.message_id for m in claim(b, now + 1)] == ["MB"]
    # Node b restarts: a's claim is a live node's and stands.
    assert asyncio.run(nodes("b").queue_release_leases()) == 1
    assert [m.message_id for m in claim(b, now + 2)] == ["MB"]
    # Node a restarts (same data_dir, same id): its old claim is void at once.
    restarted = nodes("a")
    assert restarted.node == a.node
    assert asyncio.run(restarted.queue_release_leases()) == 1
    assert [m.message_id for m in claim(restarted, now + 3)] == ["MA"]


def test_outcomes_of_one_message_from_two_nodes_at_once_still_drop_it(nodes):
    # Each node claimed some recipients of one message (the other's came due later);
    # their outcomes commit at once: the last one to commit sees every recipient final.
    a, b = nodes("a"), nodes("b")
    enqueue(a, "M1", ["x@far.test", "y@far.test"])
    now = later()
    [m] = claim(a, now)
    x, y = m.recipients
    asyncio.run(a.queue_update(m.id, [RecipientUpdate(x.id, DEFERRED, "451", now + 10),
                                      RecipientUpdate(y.id, DEFERRED, "451", now + 20)],
                               FINAL))
    [mx] = claim(a, now + 10)
    [my] = claim(b, now + 20)

    async def both():
        return await asyncio.gather(
            a.queue_update(mx.id, [RecipientUpdate(x.id, DELIVERED, "250")], FINAL),
            b.queue_update(my.id, [RecipientUpdate(y.id, DELIVERED, "250")], FINAL))
    assert sorted(asyncio.run(both())) == [False, True]
    assert asyncio.run(a.queue_messages()) == []
