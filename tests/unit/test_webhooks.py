"""Webhooks on a real store of each backend and a real HTTP receiver on 127.0.0.1: the signature
(and README's copy of `verify`), the backoff schedule, fan-out (global and per-domain
endpoints, type filters), the dispatcher's order, pauses, giving up and disabling, and
the admin operations' checks."""

from __future__ import annotations

import asyncio
import calendar
import json
import time

import pytest

from mailwright.admin import Admin, Conflict, Invalid, NotFound
from mailwright.config import ConfigError, WebhookSettings, parse
from mailwright.events.log import EventLog
from mailwright.events.types import Event
from mailwright.store.events import EventQuery, StoredEvent
from mailwright.store.webhooks import PendingWebhook, WebhookDelivery
from mailwright.webhooks import payload, signing
from mailwright.webhooks.dispatcher import Dispatcher, retry_delay

from ..webhook_receiver import Receiver, readme_verify
from .stored import written

SECRET = "whsec_test-secret"
BODY = b'{"id":1,"type":"accepted"}'
NOW = calendar.timegm((2026, 11, 5, 12, 0, 0))

CONFIG = """
hostname = "mx.example.test"
data_dir = "{data_dir}"
[[listeners]]
role = "mx"
port = 2525
{extra}
"""


# --- signatures -----------------------------------------------------------------------

@pytest.mark.parametrize("check", [signing.verify, readme_verify()],
                         ids=["signing.verify", "README"])
def test_a_signature_verifies_only_for_its_secret_body_and_time(check):
    header = signing.sign(SECRET, NOW, BODY)
    assert header == f"t={NOW},v1={signing.digest(SECRET, NOW, BODY)}"
    assert check(SECRET, header, BODY, now=NOW + 299)
    assert check(SECRET, header, BODY, now=NOW - 299)        # our clock a little ahead
    assert not check(SECRET, header, BODY, now=NOW + 301)    # a replay, too late
    assert not check(SECRET, header, BODY + b" ", now=NOW)   # the body changed
    assert not check("whsec_other", header, BODY, now=NOW)
    later = signing.sign(SECRET, NOW + 60, BODY)             # the timestamp is signed
    assert not check(SECRET, later.replace(f"t={NOW + 60}", f"t={NOW}"), BODY, now=NOW)
    for bad in ("", "v1=00", f"t={NOW}", "t=x,v1=00", f"t={NOW},v1=é", "garbage"):
        assert not check(SECRET, bad, BODY, now=NOW), bad


def test_the_digest_is_hmac_sha256_over_timestamp_dot_body():
    # A known answer computed apart from Python:
    # printf '1700000000.{}' | openssl dgst -sha256 -hmac key
    assert signing.digest("key", 1700000000, b"{}") == \
        "9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"


def test_the_body_carries_the_event_and_the_headers_name_and_sign_it():
    event = StoredEvent(41, 1767225600.25, "delivered", None, "M1", "bob@example.net",
                         "example.net", "spring", {"rcpt": "bob@example.net", "attempt": 1})
    delivery = WebhookDelivery(7, 1, 41, "delivered", "pending", NOW, 0, None, None, None,
                               None)
    item = PendingWebhook(delivery, event)
    content = payload.body(item)
    assert json.loads(content) == {
        "id": 41, "delivery": 7, "type": "delivered", "ts": 1767225600.25, "session": None,
        "message_id": "M1", "address": "bob@example.net", "domain": "example.net",
        "tag": "spring", "data": {"rcpt": "bob@example.net", "attempt": 1}}
    headers = payload.headers(SECRET, item, content, NOW)
    assert headers["Mailwright-Delivery"] == "7"
    assert headers["Mailwright-Event"] == "delivered"
    assert headers["Content-Type"] == "application/json"
    assert signing.verify(SECRET, headers["Mailwright-Signature"], content, now=NOW)


# --- the retry schedule ---------------------------------------------------------------

def test_backoff_doubles_from_first_retry_up_to_max_retry():
    s = WebhookSettings(first_retry=10.0, max_retry=3600.0)
    assert [retry_delay(s, n) for n in range(1, 11)] == [
        10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert retry_delay(s, 500) == 3600        # no overflow for long outages


# --- the store, the dispatcher and the admin, together -----------------------------------

class Clock:
    """Time that tests move on: retries come due without waiting. The receiver checks
    signature timestamps against it too."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class World:
    def __init__(self, make_store, settings: str = ""):
        self.store = make_store()
        self.config = parse(CONFIG.format(data_dir=self.store.data_dir, extra=settings))
        self.clock = Clock()
        self.admin = Admin(self.store, self.config, clock=self.clock)
        self.events = EventLog(self.store)
        self.receiver = Receiver(clock=self.clock).start()

    def emit_accepted(self, domain: str, message_id: str) -> None:
        self.events.emit(Event.ACCEPTED, "S1", message_id, ip="127.0.0.1", size=10,
                         mail_from="a@remote.test", rcpts=1, local=1, remote=0, account="",
                         tls="", domain=domain)

    def committed(self) -> None:
        """Wait until the events emitted so far are stored (the writer's next batch)."""
        written(self.store)

    def close(self) -> None:
        self.receiver.stop()            # (make_store closes the store)


@pytest.fixture
def world(make_store):
    w = World(make_store, "[webhooks]\nfirst_retry = 10.0\nmax_retry = 40.0\nmax_age = 600.0\n"
                        "disable_after = 5\ntimeout = 5.0\n")
    asyncio.run(w.admin.domains.add("example.test"))
    asyncio.run(w.admin.domains.add("other.test"))
    yield w
    w.close()


async def _pass(world: World, dispatcher: Dispatcher) -> float:
    """One look at the outbox, and the lanes it started run to their end."""
    pause = await dispatcher.run_once()
    await dispatcher.settle()
    return pause


def test_fan_out_matches_types_and_domains(world):
    async def scenario():
        hooks = world.admin.webhooks
        everything = (await hooks.add(world.receiver.url("/all"))).webhook
        accepted = (await hooks.add(world.receiver.url("/acc"), events=["accepted"])).webhook
        ours = (await hooks.add(world.receiver.url("/ours"), domain="EXAMPLE.test",
                                events=["accepted", "delivered"])).webhook
        off = (await hooks.add(world.receiver.url("/off"))).webhook
        await hooks.disable(off.id)
        world.emit_accepted("example.test", "M1")
        world.emit_accepted("other.test", "M2")
        world.events.emit(Event.DELIVERED, None, "M3", rcpt="x@example.test",
                          remote="mx [127.0.0.1]", tls="", reply="250 ok", attempt=1)
        world.events.emit(Event.IMAP_CONNECT, "S2", ip="127.0.0.1", tls="")
        world.committed()

        async def got(endpoint):
            return [(d.event_type, (await _event(world, d.event_id))["message_id"])
                    for d in reversed(await hooks.deliveries(endpoint.id))]
        assert await got(everything) == [("accepted", "M1"), ("accepted", "M2"),
                                          ("delivered", "M3"), ("imap-connect", None)]
        assert await got(accepted) == [("accepted", "M1"), ("accepted", "M2")]
        # the delivered event's domain is its recipient's
        assert await got(ours) == [("accepted", "M1"), ("delivered", "M3")]
        assert await got(off) == []
        # an endpoint added later gets only what happens after it
        late = (await hooks.add(world.receiver.url("/late"))).webhook
        assert await got(late) == []
        await hooks.enable(off.id)
        world.emit_accepted("other.test", "M4")
        world.committed()
        assert await got(off) == [("accepted", "M4")]
        assert await got(late) == [("accepted", "M4")]
    asyncio.run(scenario())


async def _event(world: World, event_id: int) -> dict:
    page = await world.store.search_events(EventQuery(limit=10_000))
    [message_id] = [e.message_id for e in page.events if e.id == event_id]
    return {"message_id": message_id}


def test_deliveries_are_signed_sent_in_order_and_logged(world):
    async def scenario():
        made = await world.admin.webhooks.add(world.receiver.url("/hook"),
                                              events=["accepted"])
        world.receiver.endpoint("/hook", made.secret)
        for i in range(5):
            world.emit_accepted("example.test", f"M{i}")
        world.committed()
        dispatcher = Dispatcher(world.config.webhooks, world.store, world.events, world.clock)
        try:
            assert await _pass(world, dispatcher) == dispatcher.poll     # nothing paused
        finally:
            await dispatcher.close()
        got = world.receiver.got("/hook")
        assert [r.body["message_id"] for r in got] == [f"M{i}" for i in range(5)]
        assert all(r.signed and r.event == "accepted" for r in got)
        assert [r.delivery for r in got] == [str(r.body["delivery"]) for r in got]
        log = await world.admin.webhooks.deliveries(made.webhook.id)
        assert [(d.state, d.attempts, d.last_status) for d in log] == [("delivered", 1, 200)] * 5
        assert [int(r.delivery) for r in got] == [d.id for d in reversed(log)]
    asyncio.run(scenario())


def test_a_failing_endpoint_pauses_with_backoff_then_gets_everything_in_order(world):
    async def scenario():
        made = await world.admin.webhooks.add(world.receiver.url("/hook"))
        route = world.receiver.endpoint("/hook", made.secret, status=503,
                                        answer=b"busy, come back later\n")
        for i in range(3):
            world.emit_accepted("example.test", f"M{i}")
        world.committed()
        hook_id = made.webhook.id
        dispatcher = Dispatcher(world.config.webhooks, world.store, world.events, world.clock)
        try:
            pauses = []
            for _ in range(4):
                start = world.clock.now
                await _pass(world, dispatcher)
                w = await world.admin.webhooks.show(hook_id)
                pauses.append(w.retry_at - start)
                # paused: a look before the pause ends sends nothing
                world.clock.now = w.retry_at - 1
                assert await _pass(world, dispatcher) == pytest.approx(1.0)
                world.clock.now = w.retry_at
            assert pauses == [10, 20, 40, 40]
            got = world.receiver.got("/hook")
            # one request per attempt, always the first delivery: the others wait behind it
            assert len(got) == 4 and {r.body["message_id"] for r in got} == {"M0"}
            [first] = {r.delivery for r in got}
            w = await world.admin.webhooks.show(hook_id)
            assert (w.enabled, w.failures) == (True, 4)
            [head] = await world.admin.webhooks.deliveries(hook_id, state="pending", limit=1,
                                                           before=int(first) + 1)
            assert (head.attempts, head.last_status, head.last_error) == \
                (4, 503, "HTTP 503: busy, come back later")
            route.status = 200
            await _pass(world, dispatcher)
        finally:
            await dispatcher.close()
        got = world.receiver.got("/hook")
        assert [r.body["message_id"] for r in got[4:]] == ["M0", "M1", "M2"]
        assert got[4].delivery == first                    # the same delivery, retried
        w = await world.admin.webhooks.show(hook_id)
        assert (w.failures, w.retry_at) == (0, None)
        assert {d.state for d in await world.admin.webhooks.deliveries(hook_id)} == \
            {"delivered"}
    asyncio.run(scenario())


def test_an_endpoint_failing_disable_after_times_is_disabled_with_an_event(world):
    async def scenario():
        dead = world.receiver.url("/nothing-here")     # an unknown path: refused
        made = await world.admin.webhooks.add(dead, domain="example.test")
        world.emit_accepted("example.test", "M1")
        world.committed()
        dispatcher = Dispatcher(world.config.webhooks, world.store, world.events, world.clock)
        try:
            for _ in range(5):
                await _pass(world, dispatcher)
                w = await world.admin.webhooks.show(made.webhook.id)
                world.clock.now = w.retry_at or world.clock.now
            assert not w.enabled and w.disabled is not None and w.failures == 5
            world.committed()
            [event] = [e for e in await world.store.events(20)
                       if e["type"] == "webhook-disabled"]
            assert (event["webhook"], event["url"], event["failures"], event["domain"]) == \
                (made.webhook.id, dead, 5, "example.test")
            # disabled: no more attempts, and new events do not fan out to it
            world.emit_accepted("example.test", "M2")
            world.committed()
            world.clock.now += 100                          # past any pause
            await _pass(world, dispatcher)
            assert len(world.receiver.got("/nothing-here")) == 5
            assert len(await world.admin.webhooks.deliveries(made.webhook.id)) == 1
            # enabled again: its pending delivery goes out
            world.receiver.endpoint("/nothing-here", made.secret)
            w = await world.admin.webhooks.enable(made.webhook.id)
            assert (w.enabled, w.failures, w.retry_at) == (True, 0, None)
            await _pass(world, dispatcher)
        finally:
            await dispatcher.close()
        last = world.receiver.got("/nothing-here")[-1]
        assert (last.body["message_id"], last.signed) == ("M1", True)
    asyncio.run(scenario())


def test_a_delivery_older_than_max_age_is_given_up_and_can_be_sent_again(world):
    async def scenario():
        made = await world.admin.webhooks.add(world.receiver.url("/hook"))
        world.receiver.endpoint("/hook", made.secret)
        world.emit_accepted("example.test", "M1")
        world.committed()
        world.clock.now += 601
        dispatcher = Dispatcher(world.config.webhooks, world.store, world.events, world.clock)
        try:
            await _pass(world, dispatcher)
            assert world.receiver.got("/hook") == []
            [d] = await world.admin.webhooks.deliveries(made.webhook.id)
            assert (d.state, d.attempts) == ("failed", 0)
            assert d.last_error == "given up: not delivered within max_age (600 s)"
            w = await world.admin.webhooks.show(made.webhook.id)
            assert (w.enabled, w.failures) == (True, 0)     # not the endpoint's failure
            again = await world.admin.webhooks.redeliver(d.id)
            assert (again.id, again.state, again.queued) == (d.id, "pending", world.clock.now)
            with pytest.raises(Conflict, match="still pending"):
                await world.admin.webhooks.redeliver(d.id)
            await _pass(world, dispatcher)
        finally:
            await dispatcher.close()
        [r] = world.receiver.got("/hook")
        assert (r.delivery, r.body["message_id"], r.signed) == (str(d.id), "M1", True)
    asyncio.run(scenario())


def test_a_receiver_that_does_not_answer_in_time_is_a_failure(make_store):
    w = World(make_store, "[webhooks]\ntimeout = 0.3\n")
    try:
        async def scenario():
            made = await w.admin.webhooks.add(w.receiver.url("/slow"))
            route = w.receiver.endpoint("/slow", made.secret, hold=True)
            w.emit_accepted("example.test", "M1")
            w.committed()
            dispatcher = Dispatcher(w.config.webhooks, w.store, w.events, w.clock)
            try:
                await _pass(w, dispatcher)
            finally:
                route.release.set()
                await dispatcher.close()
            [d] = await w.admin.webhooks.deliveries(made.webhook.id)
            # the receiver got it, we never heard: it stays pending (sent again later)
            assert (d.state, d.attempts, d.last_error) == \
                ("pending", 1, "no answer within 0.3 s")
            assert len(w.receiver.got("/slow")) == 1
        asyncio.run(scenario())
    finally:
        w.close()


def test_events_removed_by_retention_take_their_deliveries_along(world):
    async def scenario():
        made = await world.admin.webhooks.add(world.receiver.url("/hook"))
        world.emit_accepted("example.test", "M1")
        world.committed()
        [d] = await world.admin.webhooks.deliveries(made.webhook.id)
        # The [events] retention's pruning, with a cutoff past every row.
        assert await world.store.prune_events(time.time() + 1, {}, 100) == 1
        assert await world.admin.webhooks.deliveries(made.webhook.id) == []
        await world.admin.webhooks.remove(made.webhook.id)
        with pytest.raises(NotFound):
            await world.admin.webhooks.show(made.webhook.id)
    asyncio.run(scenario())


# --- the admin's checks --------------------------------------------------------------------

@pytest.mark.parametrize("url, problem", [
    ("ftp://example.net/hook", "http:// or https://"),
    ("example.net/hook", "http:// or https://"),
    ("https:///path", "http:// or https://"),
    ("https://example.net:99999/", "invalid webhook URL"),
    ("https://user:pw@example.net/", "no credentials"),
    ("https://example.net/a b", "no spaces"),
    ("https://example.net/#frag", "no #fragment"),
])
def test_add_refuses_urls_it_cannot_post_to(world, url, problem):
    with pytest.raises(Invalid, match=problem):
        asyncio.run(world.admin.webhooks.add(url))


def test_add_checks_event_types_and_the_domain(world):
    hooks = world.admin.webhooks
    url = world.receiver.url("/x")
    with pytest.raises(Invalid, match="unknown event type.*no-such-event"):
        asyncio.run(hooks.add(url, events=["accepted", "no-such-event"]))
    with pytest.raises(Invalid, match="give it alone"):
        asyncio.run(hooks.add(url, events=["*", "accepted"]))
    with pytest.raises(NotFound, match="no such domain: elsewhere.test"):
        asyncio.run(hooks.add(url, domain="elsewhere.test"))
    made = asyncio.run(hooks.add(url, domain="Example.TEST",
                                 events=["delivered", "accepted", "delivered"]))
    assert made.secret.startswith("whsec_") and len(made.secret) > 40
    assert (made.webhook.domain, made.webhook.events) == ("example.test",
                                                          ("accepted", "delivered"))
    assert asyncio.run(hooks.add(url, events=[])).webhook.events == ("*",)
    assert [w.id for w in asyncio.run(hooks.list("example.test"))] == [made.webhook.id]
    assert len(asyncio.run(hooks.list())) == 2
    assert "secret" not in {f for f in vars(made.webhook)}     # shown once, at add


def test_operations_on_missing_endpoints_and_deliveries_say_so(world):
    hooks = world.admin.webhooks
    for op in (hooks.show, hooks.remove, hooks.enable, hooks.disable, hooks.deliveries):
        with pytest.raises(NotFound, match="no webhook 99"):
            asyncio.run(op(99))
    with pytest.raises(NotFound, match="no webhook delivery 99"):
        asyncio.run(hooks.redeliver(99))
    made = asyncio.run(hooks.add(world.receiver.url("/x")))
    with pytest.raises(Invalid, match="limit is 1 to 1000"):
        asyncio.run(hooks.deliveries(made.webhook.id, limit=0))
    with pytest.raises(Invalid, match="unknown delivery state 'sent'"):
        asyncio.run(hooks.deliveries(made.webhook.id, state="sent"))


def test_max_age_must_not_outlive_the_events_it_delivers(tmp_path):
    with pytest.raises(ConfigError, match="webhooks.max_age: 864000 s is longer than the "
                                          r"shortest events retention \(7 days\)"):
        parse(CONFIG.format(data_dir=tmp_path, extra="[events]\nretention_days = 30\n"
                            '[events.domains."example.test"]\nretention_days = 7\n'
                            "[webhooks]\nmax_age = 864000.0\n"))
    with pytest.raises(ConfigError, match="more than 0 seconds"):
        parse(CONFIG.format(data_dir=tmp_path, extra="[webhooks]\nfirst_retry = 0.0\n"))
