"""Outbound delivery: routing through the loopback DNS, attempts against a real SMTP
peer (aiosmtpd) on loopback, retries driven by a controllable clock, DSNs."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import random
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families

from mailwright.address import parse_mailbox
from mailwright.admin import Admin, NotFound
from mailwright.delivery import suppression
from mailwright.dns import Resolver
from mailwright.events.log import EventLog
from mailwright.imap.fetch import views as fetch_views
from mailwright.metrics import Metrics, render
from mailwright.queue import dsn
from mailwright.queue.runner import QueueRunner
from mailwright.queue.states import BOUNCED, DEFERRED, DELIVERED, FINAL
from mailwright.store.messages import Delivery
from mailwright.store.queue import QueuedRecipient, RecipientUpdate, RemoteRecipient
from mailwright.store.sqlite import SQLiteStore

from ..conftest import free_port, loopback_dns
from .delivery.helpers import Events
from .session_harness import make_config

PEER_ZONE = """$TTL 60
@        IN SOA ns.peer.test. h.peer.test. 1 3600 600 86400 60
@        IN MX  10 mx1.peer.test.
@        IN MX  10 mx2.peer.test.
@        IN MX  20 backup.peer.test.
mx1      IN A   127.0.0.1
mx2      IN A   127.0.0.1
backup   IN A   127.0.0.1
implicit IN A   127.0.0.1
nullmx   IN MX  0 .
dangling IN MX  10 nowhere.peer.test.
"""


class Peer:
    """A scriptable SMTP server: answers per recipient from a dict, records messages."""

    def __init__(self):
        self.rcpt_replies: dict[str, list[str]] = {}
        self.received: list[tuple[str, list[str], bytes]] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        script = self.rcpt_replies.get(address)
        if script:
            reply = script.pop(0) if len(script) > 1 else script[0]
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.original_content))
        return "250 2.0.0 accepted"


@pytest.fixture(scope="module")
def dns_port():
    server = loopback_dns()
    server.add_zone("peer.test", PEER_ZONE)
    return server.port


@pytest.fixture
def peer():
    p = Peer()
    p.controller.start()
    yield p
    p.controller.stop()


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def home_store(path) -> SQLiteStore:
    """A store for the sending side: domain home.test, account sender@home.test."""
    store = SQLiteStore(path, render_views=fetch_views)
    asyncio.run(store.add_domain("home.test"))
    asyncio.run(store.add_account(parse_mailbox("sender@home.test"), "password-1"))
    return store


@pytest.fixture
def world(tmp_path, dns_port, peer):
    store = home_store(tmp_path)
    clock = Clock()
    cfg = make_config()
    cfg = dataclasses.replace(cfg, hostname="mx.home.test",
                              queue=dataclasses.replace(cfg.queue, port=peer.port, timeout=5))
    runner = QueueRunner(cfg, store, Resolver(["127.0.0.1"], port=dns_port, timeout=2),
                         EventLog(None), clock=clock)
    yield store, runner, clock, peer
    store.close()


def enqueue(store, clock, rcpts: list[str], body=b"Subject: hello\r\n\r\nbody\r\n",
            notify=None, ret=None, envid=None, mail_from="sender@home.test", tag=None,
            sender_account=None) -> str:
    message_id = f"Q{random.getrandbits(32):08X}"
    asyncio.run(store.deliver(Delivery(
        message_id=message_id, mail_from=mail_from,
        remote=[RemoteRecipient(r, notify) for r in rcpts], relay_content=body,
        ret=ret, envid=envid, tag=tag, sender_account=sender_account)))
    # The store stamps real time; move "created" onto the test clock.
    store._writer.submit(lambda c: c.execute("UPDATE queue SET created=? WHERE message_id=?",
                                     (clock.now, message_id))).result()
    store._writer.submit(lambda c: c.execute(
        "UPDATE queue_recipients SET next_attempt=? WHERE queue_id=(SELECT id FROM queue "
        "WHERE message_id=?)", (clock.now, message_id))).result()
    return message_id


def reconfigured(runner: QueueRunner, *, port: int | None = None, **config) -> QueueRunner:
    """A runner on `runner`'s store, resolver, events and clock with a changed
    configuration (port: the queue's SMTP port); routing is built from it."""
    cfg = dataclasses.replace(runner.config, **config)
    if port is not None:
        cfg = dataclasses.replace(cfg, queue=dataclasses.replace(cfg.queue, port=port))
    return QueueRunner(cfg, runner.store, runner.resolver, runner.events, clock=runner.clock)


def sender_inbox(store) -> list[bytes]:
    return [asyncio.run(store.read_blob(r["blob"]))
            for r in store.mailbox_messages(parse_mailbox("sender@home.test"))]


# --- delivery, retry, bounce ---------------------------------------------------------
def test_delivered_to_peer_with_envelope(world):
    store, runner, clock, peer = world
    enqueue(store, clock, ["rcpt@peer.test", "other@peer.test"])
    assert asyncio.run(runner.run_once()) == 1
    [(mail_from, rcpts, content)] = peer.received
    assert mail_from == "sender@home.test"
    assert sorted(rcpts) == ["other@peer.test", "rcpt@peer.test"]
    assert content == b"Subject: hello\r\n\r\nbody\r\n"
    assert asyncio.run(store.queue_messages()) == []
    assert sender_inbox(store) == []              # no DSN unless asked


def test_the_tag_and_sender_domain_of_queued_mail_are_on_its_delivery_events(world):
    store, runner, clock, peer = world
    events = Events()
    runner = QueueRunner(runner.config, store, runner.resolver, events.log, clock=clock)
    peer.rcpt_replies["slow@peer.test"] = ["451 4.7.1 try later"]
    peer.rcpt_replies["gone@peer.test"] = ["550 5.1.1 no such user"]
    tagged = enqueue(store, clock, ["ok@peer.test", "slow@peer.test", "gone@peer.test"],
                     tag="newsletter-7")
    plain = enqueue(store, clock, ["plain@peer.test"])
    assert asyncio.run(store.queue_message(tagged)).tag == "newsletter-7"
    asyncio.run(runner.run_once())
    outcomes = {(row[2], row[3]["rcpt"]): (row[0], row[3].get("tag"), row[3].get("domain"))
                for row in events.rows if row[0] in ("delivered", "deferred", "bounced")}
    # domain: the sender's (sender@home.test), whose mail it is, not the recipient's.
    assert outcomes == {
        (tagged, "ok@peer.test"): ("delivered", "newsletter-7", "home.test"),
        (tagged, "slow@peer.test"): ("deferred", "newsletter-7", "home.test"),
        (tagged, "gone@peer.test"): ("bounced", "newsletter-7", "home.test"),
        (plain, "plain@peer.test"): ("delivered", None, "home.test")}


def test_451_then_250_after_backoff(world):
    store, runner, clock, peer = world
    # Three MX hosts, all this peer: each defers once, so the first run defers.
    peer.rcpt_replies["slow@peer.test"] = ["451 4.7.1 try later"] * 3 + ["250 OK"]
    mid = enqueue(store, clock, ["slow@peer.test"])
    asyncio.run(runner.run_once())
    assert peer.received == []
    [r] = asyncio.run(store.queue_message(mid)).recipients
    assert r.state == "deferred" and r.last_reply.startswith("451 4.7.1")
    assert r.next_attempt == pytest.approx(clock.now + 300)
    [attempt] = asyncio.run(store.queue_attempts(mid))
    assert attempt["address"] == "slow@peer.test" and attempt["reply"].startswith("451")
    assert attempt["remote"].endswith("[127.0.0.1]") and attempt["tls"] == ""
    assert asyncio.run(runner.run_once()) == 0          # not due yet
    clock.now += 301
    assert asyncio.run(runner.run_once()) == 1
    assert asyncio.run(store.queue_message(mid)) is None
    assert peer.received[-1][1] == ["slow@peer.test"]


def test_550_bounces_with_dsn_to_sender(world):
    store, runner, clock, peer = world
    peer.rcpt_replies["gone@peer.test"] = ["550 5.1.1 no such user"]
    body = b"Subject: lost\r\nX-Test: 1\r\n\r\nthe original \xc3\xa4\r\n"
    enqueue(store, clock, ["gone@peer.test", "fine@peer.test"], body=body, envid="ENV-7")
    asyncio.run(runner.run_once())
    assert [r for _, r, _ in peer.received] == [["fine@peer.test"]]
    [report] = sender_inbox(store)
    assert report.startswith(b"Return-Path: <>\r\n")
    msg = email.message_from_bytes(report, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    human, status, original = msg.get_payload()
    fields = status.get_payload()
    assert fields[0]["Reporting-MTA"] == "dns; mx.home.test"
    assert fields[0]["Original-Envelope-Id"] == "ENV-7"
    assert fields[1]["Final-Recipient"] == "rfc822; gone@peer.test"
    assert fields[1]["Action"] == "failed" and fields[1]["Status"] == "5.1.1"
    assert fields[1]["Diagnostic-Code"].startswith("smtp; 550 5.1.1")
    assert len(fields) == 2                       # the delivered one is not reported
    assert body in report                         # the whole original, byte for byte


def test_never_bounce_a_bounce_and_notify_never(world):
    store, runner, clock, peer = world
    peer.rcpt_replies["gone@peer.test"] = ["550 5.1.1 no such user"]
    enqueue(store, clock, ["gone@peer.test"], mail_from="")
    enqueue(store, clock, ["gone@peer.test"], notify="NEVER")
    asyncio.run(runner.run_once())
    assert sender_inbox(store) == []
    assert asyncio.run(store.queue_messages()) == []


def test_notify_success_and_ret_hdrs(world):
    store, runner, clock, peer = world
    enqueue(store, clock, ["fine@peer.test"], notify="SUCCESS", ret="HDRS",
            body=b"Subject: tell me\r\n\r\nsecret body\r\n")
    asyncio.run(runner.run_once())
    [report] = sender_inbox(store)
    msg = email.message_from_bytes(report, policy=email.policy.default)
    _, status, returned = msg.get_payload()
    assert status.get_payload()[1]["Action"] == "delivered"
    assert returned.get_content_type() == "text/rfc822-headers"
    assert b"secret body" not in report


def test_unreachable_host_defers_then_gives_up(world):
    store, runner, clock, peer = world
    runner = reconfigured(runner, port=free_port())   # nobody there
    mid = enqueue(store, clock, ["x@peer.test"])
    asyncio.run(runner.run_once())
    [r] = asyncio.run(store.queue_message(mid)).recipients
    assert r.state == "deferred" and r.last_reply.startswith("451 4.4.1")
    clock.now += runner.settings.max_age + 1
    asyncio.run(runner.run_once())
    assert asyncio.run(store.queue_message(mid)) is None
    [report] = sender_inbox(store)
    assert b"gave up after 5 days" in report


def test_outcomes_carry_the_delay_since_queueing(world):
    """delivered / deferred / bounced say how long the message has been queued: the
    delivery delay histogram (metrics/) is made of it."""
    store, runner, clock, peer = world
    metrics = Metrics()
    runner.events = EventLog(None, observers=[metrics.observe])
    peer.rcpt_replies["slow@peer.test"] = ["451 4.7.1 try later"] * 3 + ["250 OK"]
    enqueue(store, clock, ["slow@peer.test"])
    enqueue(store, clock, ["gone@nullmx.peer.test"])
    clock.now += 42.5
    asyncio.run(runner.run_once())                        # deferred once, bounced
    clock.now += 301
    asyncio.run(runner.run_once())                        # delivered
    body, _ = asyncio.run(render(metrics))
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for family in text_string_to_metric_families(body.decode())
           for s in family.samples}
    assert got["mailwright_deliveries_total", (("result", "deferred"),)] == 1
    assert got["mailwright_delivery_delay_seconds_sum", (("result", "bounced"),)] == 42.5
    assert got["mailwright_delivery_delay_seconds_sum", (("result", "delivered"),)] == 343.5
    assert got["mailwright_delivery_delay_seconds_count", (("result", "delivered"),)] == 1


def test_null_mx_bounces_at_once(world):
    store, runner, clock, _ = world
    enqueue(store, clock, ["x@nullmx.peer.test"])
    asyncio.run(runner.run_once())
    [report] = sender_inbox(store)
    assert b"Status: 5.1.10" in report


def test_dsn_notify_rules():
    r = QueuedRecipient(1, "a@b.test", None, None, "pending", 0, 0.0, None)
    assert dsn.wanted(r, "failed") and dsn.wanted(r, "delayed") and not dsn.wanted(r, "delivered")
    never = dataclasses.replace(r, notify="NEVER")
    assert not dsn.wanted(never, "failed")
    success = dataclasses.replace(r, notify="SUCCESS")
    assert dsn.wanted(success, "delivered") and not dsn.wanted(success, "failed")


def test_delay_warning_once(world):
    store, runner, clock, peer = world
    runner = reconfigured(runner, port=free_port())   # nobody there
    mid = enqueue(store, clock, ["late@peer.test"])
    asyncio.run(runner.run_once())
    assert sender_inbox(store) == []                  # too early to warn
    clock.now += runner.settings.delay_warning + 1
    asyncio.run(runner.run_once())
    [warning] = sender_inbox(store)
    assert b"Subject: Delivery Status Notification (Delay)" in warning
    assert b"Action: delayed" in warning and b"Status: 4.4.1" in warning
    clock.now += runner.settings.max_retry + 1
    asyncio.run(runner.run_once())
    assert len(sender_inbox(store)) == 1               # not twice
    assert asyncio.run(store.queue_message(mid)).recipients[0].delay_warned


class SevenBitPeer:
    """A bare RFC 5321 server without 8BITMIME (nor STARTTLS, DSN, SMTPUTF8)."""

    def __init__(self):
        import socketserver
        import threading
        received = self.received = []

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                w = self.wfile.write
                w(b"220 seven-bit peer\r\n")
                while line := self.rfile.readline():
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        w(b"250-peer\r\n250 SIZE 10000000\r\n")
                    elif verb == b"DATA":
                        w(b"354 go\r\n")
                        data = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data += chunk
                        received.append(data)
                        w(b"250 ok\r\n")
                    elif verb == b"QUIT":
                        w(b"221 bye\r\n")
                        return
                    else:
                        w(b"250 ok\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_8bit_converted_for_a_peer_without_8bitmime(world):
    store, runner, clock, _ = world
    peer = SevenBitPeer()
    runner = reconfigured(runner, port=peer.port)
    body = ("Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n").encode()
    enqueue(store, clock, ["seven@peer.test"], body=body)
    enqueue(store, clock, ["seven@peer.test"], body="Subject: Grüße\r\n\r\nx\r\n".encode())
    asyncio.run(runner.run_once())
    peer.server.shutdown()
    [sent] = peer.received
    assert max(sent) < 128 and b"Content-Transfer-Encoding: quoted-printable" in sent
    assert email.message_from_bytes(sent).get_payload(decode=True) == "Grüße\r\n".encode()
    [report] = sender_inbox(store)                 # the 8-bit header one bounced
    assert b"Status: 5.6.3" in report


def test_transport_override_sends_a_domain_elsewhere(world):
    store, runner, clock, peer = world
    from mailwright.config import TransportSettings
    runner = reconfigured(runner, port=free_port(), transports=(             # MX path dead
        TransportSettings("partner.test", "127.0.0.1", peer.port, "none"),))
    enqueue(store, clock, ["x@partner.test"])          # partner.test is in no DNS zone
    asyncio.run(runner.run_once())
    assert [r for _, r, _ in peer.received] == [["x@partner.test"]]


def test_transports_config():
    from mailwright.config import ConfigError, parse
    base = 'hostname = "m.example.test"\ndata_dir = "d"\n[[listeners]]\nrole = "mx"\nport = 25\n'
    cfg = parse(base + '[[transports]]\ndomain = "Partner.TEST"\nhost = "gw.partner.test"\n'
                'port = 2525\ntls = "starttls"\n')
    assert cfg.transports[0].domain == "partner.test" and cfg.transports[0].port == 2525
    with pytest.raises(ConfigError, match=r"transports\[0\].tls"):
        parse(base + '[[transports]]\ndomain = "p.test"\nhost = "h"\ntls = "maybe"\n')
    with pytest.raises(ConfigError, match=r"transports\[0\].host"):
        parse(base + '[[transports]]\ndomain = "p.test"\n')


def test_message_without_final_crlf_is_terminated(world):
    store, runner, clock, peer = world
    enqueue(store, clock, ["x@peer.test"], body=b"Subject: bdat\r\n\r\nno newline at end")
    asyncio.run(runner.run_once())
    [(_, _, content)] = peer.received
    assert content == b"Subject: bdat\r\n\r\nno newline at end\r\n"


def test_unreachable_destination_backs_off_as_a_whole(world):
    store, runner, clock, _ = world
    runner = reconfigured(runner, port=free_port())   # nobody there
    enqueue(store, clock, ["a@peer.test"])
    asyncio.run(runner.run_once())
    assert runner.unreachable["peer.test"][0] == 1
    later = enqueue(store, clock, ["b@peer.test"])       # new mail, same dead destination
    asyncio.run(runner.run_once())
    [r] = asyncio.run(store.queue_message(later)).recipients
    assert r.state == "deferred" and "unreachable" in r.last_reply   # no connection tried
    assert asyncio.run(store.queue_attempts(later))[0]["remote"] == ""


def test_client_pipelines_mail_rcpt_data(world):
    """RFC 2920: with PIPELINING offered, MAIL, every RCPT and DATA arrive before the
    server has answered any of them."""
    import socket
    import threading
    store, runner, clock, _ = world
    listener = socket.create_server(("127.0.0.1", 0))
    first_batch: list[bytes] = []

    def serve():
        conn, _ = listener.accept()
        f = conn.makefile("rwb")
        f.write(b"220 pipe\r\n")
        f.flush()
        f.readline()                                   # EHLO
        f.write(b"250-pipe\r\n250 PIPELINING\r\n")
        f.flush()
        conn.settimeout(2)
        batch = b""
        while batch.count(b"\r\n") < 4:              # MAIL, 2 x RCPT, DATA, unanswered
            batch += conn.recv(4096)
        first_batch.append(batch)
        f.write(b"250 ok\r\n250 ok\r\n550 5.1.1 nope\r\n354 go\r\n")
        f.flush()
        rest = b""
        while not rest.endswith(b"\r\n.\r\n"):
            rest += conn.recv(4096)
        f.write(b"250 2.0.0 queued\r\n")
        f.flush()
        f.readline()                                   # QUIT
        f.write(b"221 bye\r\n")
        f.flush()
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    runner = reconfigured(runner, port=listener.getsockname()[1])
    mid = enqueue(store, clock, ["ok@peer.test", "gone@peer.test"])
    asyncio.run(runner.run_once())
    thread.join(5)
    listener.close()
    [batch] = first_batch
    assert batch.startswith(b"MAIL FROM:<sender@home.test>") and batch.endswith(b"DATA\r\n")
    assert asyncio.run(store.queue_message(mid)) is None                    # delivered + bounced
    assert b"Status: 5.1.1" in sender_inbox(store)[0]


def test_two_runners_never_deliver_the_same_message(world):
    """Worker processes each run a queue runner: claims keep them apart."""
    store, runner, clock, peer = world
    other = QueueRunner(runner.config, store, runner.resolver, EventLog(None), clock=clock)
    for i in range(30):
        enqueue(store, clock, [f"r{i}@peer.test"])

    async def both():
        return await asyncio.gather(runner.run_once(), other.run_once())
    counts = asyncio.run(both())
    assert sum(counts) == 30
    delivered = sorted(r for _, rcpts, _ in peer.received for r in rcpts)
    assert delivered == sorted(f"r{i}@peer.test" for i in range(30))    # each once
    assert asyncio.run(store.queue_messages()) == []


def test_message_leaves_the_queue_once_every_recipient_is_final(tmp_path):
    # RFC 5321 §4.5.4.1: a recipient is retried until delivered or given up (bounced);
    # a held one waits for the admin. The message and its blob go with the last.
    store = home_store(tmp_path)
    try:
        clock = Clock(time.time())
        mid = enqueue(store, clock, ["a@far.test", "b@far.test", "c@far.test"])
        asyncio.run(store.queue_set_state(mid, "held", clock.now))
        store._writer.submit(lambda c: c.execute("UPDATE queue_recipients SET state='pending' "
                                         "WHERE address='a@far.test'")).result()
        [message] = asyncio.run(store.queue_claim(clock.now, 10, lease=60))
        [a] = message.recipients
        assert not asyncio.run(store.queue_update(message.id, [
            RecipientUpdate(a.id, DELIVERED, "250 ok")], FINAL))     # b, c held
        asyncio.run(store.queue_set_state(mid, "retry", clock.now))
        [message] = asyncio.run(store.queue_claim(clock.now, 10, lease=60))
        b, c = message.recipients
        assert not asyncio.run(store.queue_update(message.id, [
            RecipientUpdate(b.id, BOUNCED, "550 no"),
            RecipientUpdate(c.id, DEFERRED, "451 later", clock.now + 60)], FINAL))
        assert asyncio.run(store.queue_message(mid)) is not None
        [message] = asyncio.run(store.queue_claim(clock.now + 60, 10, lease=60))
        blob = message.blob
        assert asyncio.run(store.queue_update(message.id, [
            RecipientUpdate(message.recipients[0].id, DELIVERED, "250 ok")], FINAL))
        assert asyncio.run(store.queue_message(mid)) is None
        assert store.conn.execute("SELECT count(*) FROM blob_inline WHERE digest=?",
                                  (blob,)).fetchone()[0] == 0
    finally:
        store.close()


# --- the text of finished messages ([events] message_retention_days) -----------------
def test_delivered_text_stays_readable_for_message_retention_days(world):
    store, runner, clock, peer = world
    admin = Admin(store, runner.config)
    mid = enqueue(store, clock, ["rcpt@peer.test"], body=b"Subject: kept\r\n\r\nkept\r\n")
    queued = asyncio.run(admin.queue.raw(mid))
    assert queued.content == b"Subject: kept\r\n\r\nkept\r\n" and queued.finished is None
    asyncio.run(runner.run_once())
    assert peer.received and asyncio.run(store.queue_message(mid)) is None
    done = asyncio.run(admin.queue.raw(mid))
    assert done.content == queued.content and done.finished is not None
    assert runner.config.events.message_retention_days == 7                 # the default
    assert asyncio.run(admin.events.prune(done.finished + 7 * 86400 - 1)).messages == 0
    assert asyncio.run(admin.events.prune(done.finished + 7 * 86400 + 1)).messages == 1
    with pytest.raises(NotFound, match="message_retention_days"):
        asyncio.run(admin.queue.raw(mid))
    assert store.conn.execute("SELECT count(*) FROM blob_inline").fetchone()[0] == 0


def test_no_message_retention_removes_the_text_at_delivery(world):
    store, runner, clock, peer = world
    cfg = runner.config
    runner = reconfigured(runner, events=dataclasses.replace(cfg.events,
                                                             message_retention_days=0))
    mid = enqueue(store, clock, ["rcpt@peer.test"])
    asyncio.run(runner.run_once())
    assert peer.received
    with pytest.raises(NotFound):
        asyncio.run(Admin(store, runner.config).queue.raw(mid))
    assert store.conn.execute("SELECT count(*) FROM blob_inline").fetchone()[0] == 0


# --- the suppression list: honoured at each attempt, hard bounces added ------------------
SENDER = "sender@home.test"


def suppress(store, address, campaign=None):
    asyncio.run(suppression.add(store, "home.test", address, campaign=campaign,
                                reason="unsubscribe", source="one-click", created=1.0))


def with_events(runner: QueueRunner, **campaigns) -> tuple[QueueRunner, Events]:
    events = Events()
    cfg = dataclasses.replace(runner.config, campaigns=dataclasses.replace(
        runner.config.campaigns, **campaigns))
    return QueueRunner(cfg, runner.store, runner.resolver, events.log,
                       clock=runner.clock), events


def suppressed_events(events: Events) -> list[dict]:
    return [row[3] for row in events.rows if row[0] == "suppressed"]


def test_an_entry_added_while_queued_stops_that_recipient_only(world):
    store, runner, clock, peer = world
    runner, events = with_events(runner)
    mid = enqueue(store, clock, ["left@peer.test", "stays@peer.test"], notify="FAILURE",
                  sender_account=SENDER, tag="spring")
    suppress(store, "LEFT@peer.test")                  # after queueing
    assert asyncio.run(runner.run_once()) == 1
    assert [r for _, r, _ in peer.received] == [["stays@peer.test"]]
    assert suppressed_events(events) == [{"rcpt": "left@peer.test", "domain": "home.test",
                                          "reason": "unsubscribe", "stage": "queue",
                                          "tag": "spring"}]
    assert [row[0] for row in events.rows if row[0] != "suppressed"] == ["delivered"]
    assert asyncio.run(store.queue_message(mid)) is None   # every recipient final
    assert sender_inbox(store) == []                   # no DSN for a suppression


def test_a_message_with_every_recipient_suppressed_leaves_unsent(world):
    store, runner, clock, peer = world
    runner, events = with_events(runner)
    suppress(store, "a@peer.test")
    suppress(store, "b@peer.test", campaign="spring")
    mid = enqueue(store, clock, ["a@peer.test", "b@peer.test"], sender_account=SENDER,
                  tag="spring")
    asyncio.run(runner.run_once())
    assert peer.received == []
    assert {e["rcpt"] for e in suppressed_events(events)} == {"a@peer.test", "b@peer.test"}
    assert asyncio.run(store.queue_message(mid)) is None


def test_campaign_entries_and_mail_not_from_our_users(world):
    store, runner, clock, peer = world
    runner, events = with_events(runner)
    suppress(store, "x@peer.test", campaign="spring")
    suppress(store, "y@peer.test")
    enqueue(store, clock, ["x@peer.test"], sender_account=SENDER, tag="autumn")
    # No authenticated sender (a forward of mail from another server): never checked.
    enqueue(store, clock, ["y@peer.test"], sender_account=None)
    asyncio.run(runner.run_once())
    assert sorted(r for _, rcpts, _ in peer.received for r in rcpts) == [
        "x@peer.test", "y@peer.test"]
    assert suppressed_events(events) == []


def test_hard_bounces_suppress_when_configured(world):
    store, runner, clock, peer = world
    peer.rcpt_replies["gone@peer.test"] = ["550 5.1.1 no such user"]
    peer.rcpt_replies["full@peer.test"] = ["552 5.2.2 mailbox full"]
    off, _ = with_events(runner)
    enqueue(store, clock, ["gone@peer.test"], sender_account=SENDER)
    asyncio.run(off.run_once())
    assert asyncio.run(store.suppressions(None, None, None, 10, None)) == []

    on, events = with_events(runner, suppress_on_bounce=True)
    enqueue(store, clock, ["gone@peer.test", "full@peer.test", "ok@peer.test"],
            sender_account=SENDER, tag="spring")
    enqueue(store, clock, ["gone@peer.test"])          # not our user's: not added
    asyncio.run(on.run_once())
    [entry] = asyncio.run(store.suppressions(None, None, None, 10, None))
    assert (entry.domain, entry.address, entry.campaign, entry.reason) == (
        "home.test", "gone@peer.test", None, "bounce")
    assert entry.source.startswith("550 5.1.1 no such user")
    # The next message of the domain to that address is not sent.
    before = len(peer.received)
    enqueue(store, clock, ["gone@peer.test"], sender_account=SENDER)
    asyncio.run(on.run_once())
    assert len(peer.received) == before
    assert suppressed_events(events)[-1]["reason"] == "bounce"
def test_stop_lets_the_delivery_in_progress_record_its_outcome(world):
    """SIGTERM (app.py): no new run starts, the one in flight finishes and commits."""
    store, runner, clock, peer = world
    mid = enqueue(store, clock, ["user@peer.test"])
    started = threading.Event()            # set on the peer's own thread

    async def slow_data(server, session, envelope):
        started.set()
        await asyncio.sleep(0.5)           # the peer is still busy when stop() comes
        peer.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.original_content))
        return "250 2.0.0 accepted"

    peer.handle_DATA = slow_data

    async def scenario():
        task = asyncio.create_task(runner.run())
        for _ in range(200):               # bounded: until the peer has the DATA
            if started.is_set():
                break
            await asyncio.sleep(0.02)
        runner.stop()
        await asyncio.wait_for(task, 10)   # returns by itself, not cancelled
        return task

    task = asyncio.run(scenario())
    assert not task.cancelled()
    assert len(peer.received) == 1
    assert asyncio.run(store.queue_message(mid)) is None      # delivered, recorded
