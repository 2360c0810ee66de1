"""Mail crossing between two Mailwright instances on distinct loopback addresses,
routed by MX records served from the loopback test DNS server."""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
import ssl
import time

from ..conftest import PASSWORD, MailServer, loopback_dns
from .relaying import ZONE, relay_pair


def submit(server, *messages: tuple[str, str]) -> None:
    """Send (recipient, text) messages as alice@a.test over implicit TLS."""
    ctx = ssl._create_unverified_context()
    with smtplib.SMTP_SSL(server.host, server.ports["submissions"], context=ctx,
                          timeout=30) as s:
        s.login("alice@a.test", PASSWORD)
        for rcpt, text in messages:
            s.sendmail("alice@a.test", [rcpt], text)


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_mail_from_a_to_b_and_bounce_back(tmp_path):
    a, b = relay_pair(tmp_path, ("a.test", "127.0.0.2"), ("b.test", "127.0.0.3"))
    a.start()
    b.start()
    try:
        submit(a, ("bob@b.test",
                   "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: across\r\n\r\nhi bob\r\n"),
               ("nobody@b.test",
                "From: alice@a.test\r\nTo: nobody@b.test\r\nSubject: lost\r\n\r\n?\r\n"))
        [msg] = wait_for(lambda: b.inbox("bob@b.test"))
        assert msg.endswith(b"\r\n\r\nhi bob\r\n")
        # B's trace shows it came from A over TLS (opportunistic STARTTLS on port 25).
        assert b"Received: from mail.example.test ([127.0.0.2])" in msg
        assert b"with ESMTPS" in msg
        # The unknown recipient bounced at B: alice gets a DSN from A.
        [report] = wait_for(lambda: a.inbox("alice@a.test"))
        dsn = email.message_from_bytes(report, policy=email.policy.default)
        status = dsn.get_payload()[1].get_payload()
        assert status[1]["Final-Recipient"] == "rfc822; nobody@b.test"
        assert status[1]["Status"] == "5.1.1"
        assert "127.0.0.3" in status[1]["Remote-MTA"] or "mx.b.test" in status[1]["Remote-MTA"]
        store = a.store()
        try:
            assert asyncio.run(store.queue_messages()) == []
        finally:
            store.close()
    finally:
        a.stop()
        b.stop()


def test_relayhost_with_auth_on_587_and_465(tmp_path):
    """A sends everything through B's submission port (STARTTLS + AUTH, then 465)."""
    (tmp_path / "b").mkdir()
    b = MailServer(tmp_path / "b", host="127.0.0.3",
                   extra="[submission]\nenforce_sender = false\n")
    b.cli("domain", "add", "b.test")
    b.add_user("bob@b.test")
    b.add_user("relay@b.test")
    b.start()
    secret = tmp_path / "relay.secret"
    secret.write_text(PASSWORD + "\n")
    try:
        for port_role, tls in (("submission", "starttls"), ("submissions", "implicit")):
            a_dir = tmp_path / f"a-{port_role}"
            a_dir.mkdir()
            a = MailServer(a_dir, host="127.0.0.2", extra=(
                f'[relayhost]\nhost = "127.0.0.3"\nport = {b.ports[port_role]}\n'
                f'tls = "{tls}"\nusername = "relay@b.test"\npassword_file = "{secret}"\n'
                "verify_certificate = false\n[queue]\ninterval = 1.0\n"))
            a.cli("domain", "add", "a.test")
            a.add_user("alice@a.test")
            a.start()
            try:
                submit(a, ("bob@b.test", f"Subject: via {port_role}\r\n\r\nrelayed\r\n"))
                marker = f"via {port_role}".encode()
                msg = wait_for(lambda m=marker: [x for x in b.inbox("bob@b.test")
                                                 if m in x])[0]
                assert b"with ESMTPSA" in msg        # authenticated, over TLS
            finally:
                a.stop()
    finally:
        b.stop()


def test_kill_9_during_delivery_loses_nothing(tmp_path):
    import asyncio
    import re
    import signal

    from aiosmtpd.controller import Controller

    from mailwright.store.messages import Delivery
    from mailwright.store.queue import RemoteRecipient

    dns = loopback_dns()
    dns.add_zone("sink.test", ZONE.format(d="sink.test", ip="127.0.0.1"))
    seen: list[str] = []

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            seen.append(re.search(rb"Subject: (\S+)", envelope.original_content)[1].decode())
            return "250 2.0.0 ok"

    from ..conftest import free_port
    sink = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    sink.start()
    a = MailServer(tmp_path, extra=f"[queue]\nport = {sink.port}\ninterval = 0.5\n")
    a.cli("domain", "add", "a.test")
    store = a.store()
    total = 1000

    async def fill():
        for i in range(total):
            await store.deliver(Delivery(
                message_id=f"K{i:05d}", mail_from="", remote=[RemoteRecipient("x@sink.test")],
                relay_content=f"Subject: K{i:05d}\r\n\r\nbody\r\n".encode()))
    asyncio.run(fill())
    store.close()
    try:
        a.start()
        wait_for(lambda: len(seen) >= 150, timeout=60)
        a.stop(signal.SIGKILL)
        killed_at = len(seen)
        assert killed_at < total, "everything went before the kill; the test proves nothing"
        a.start()
        wait_for(lambda: len(set(seen)) == total, timeout=120)
        store = a.store()
        try:
            wait_for(lambda: not asyncio.run(store.queue_messages()), timeout=30)
        finally:
            store.close()
        # Duplicates only where the kill fell between the sink's 250 and our commit:
        # at most one message in DATA and one awaiting its commit per lane
        # ([queue] per_destination = 20 lanes to the one destination).
        duplicates = len(seen) - total
        assert duplicates <= 2 * 20, duplicates
    finally:
        a.stop()
        sink.stop()
