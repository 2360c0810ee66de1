"""Webhooks end to end: a real server, endpoints registered with the CLI, mail sent over
SMTP, and a real HTTP receiver on 127.0.0.1 that checks every signature with README's
`verify`. The receiver goes down and comes back; the server is killed (SIGKILL) with
deliveries in its outbox and one answered but not recorded; an endpoint that always
fails is disabled."""

from __future__ import annotations

import asyncio
import signal
import smtplib
import time

from ..conftest import MailServer
from ..webhook_receiver import Receiver

FAST = "first_retry = 0.2\nmax_retry = 0.5\ntimeout = 5.0\n"


def server(tmp_path, disable_after: int = 1000) -> MailServer:
    srv = MailServer(tmp_path, extra=f"[webhooks]\n{FAST}disable_after = {disable_after}\n")
    srv.cli("domain", "add", "example.test")
    srv.add_user("alice@example.test")
    return srv


def add_webhook(srv: MailServer, url: str, *options: str) -> tuple[int, str]:
    """`mailwright webhook add`: the endpoint's id and its secret (printed once)."""
    res = srv.cli("webhook", "add", url, *options)
    line, secret = res.stdout.splitlines()
    assert line.startswith("added webhook ") and url in line, res.stdout
    return int(line.split()[2]), secret


def send(srv: MailServer, n: int) -> list[str]:
    """n messages to alice over SMTP; the message ids the server gave them."""
    ids = []
    with smtplib.SMTP("127.0.0.1", srv.ports["mx"], timeout=10) as s:
        s.ehlo("client.remote.test")
        for i in range(n):
            s.mail("sender@remote.test")
            s.rcpt("alice@example.test")
            code, reply = s.data(f"Subject: webhook test {i}\r\n\r\nhello\r\n".encode())
            assert code == 250, reply
            ids.append(reply.decode().rsplit(" ", 1)[1])
    return ids


def accepted_ids(receiver: Receiver, path: str) -> list[str]:
    return [r.body["message_id"] for r in receiver.got(path, "accepted")]


def wait_until(check, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_signed_deliveries_and_every_event_once_after_a_receiver_outage(tmp_path):
    srv = server(tmp_path)
    receiver = Receiver().start()
    hook, secret = add_webhook(srv, receiver.url("/hook"), "--event", "accepted")
    receiver.endpoint("/hook", secret)
    srv.start()
    try:
        before = send(srv, 3)
        assert receiver.wait(lambda: len(accepted_ids(receiver, "/hook")) == 3)
        got = receiver.got("/hook")
        assert [r.body["message_id"] for r in got] == before          # in order
        assert all(r.signed for r in got)                             # README's verify
        assert all(r.body["domain"] == "example.test" and r.body["type"] == "accepted"
                   and r.body["data"]["mail_from"] == "sender@remote.test" for r in got)

        receiver.stop()                                # connections refused from now on
        during = send(srv, 3)
        assert wait_until(lambda: "failure(s) in a row" in srv.cli("webhook", "list").stdout)
        receiver.start()                               # back, on the same port
        assert receiver.wait(lambda: len(accepted_ids(receiver, "/hook")) == 6)
        time.sleep(1.5)                                # a poll more: nothing else comes
        got = receiver.got("/hook")
        # Everything, in order, and (a refused connection not being a delivery) once.
        assert [r.body["message_id"] for r in got] == before + during
        assert len({r.delivery for r in got}) == 6
        assert all(r.signed for r in got)
        log = srv.cli("webhook", "deliveries", str(hook)).stdout
        assert "6 deliveries" in log and log.count("delivered") == 6 and "pending" not in log
        assert srv.cli("webhook", "list").stdout.rstrip().endswith("enabled")
    finally:
        srv.stop()
        receiver.stop()


def test_the_outbox_survives_a_crash_and_an_unrecorded_answer_is_sent_again(tmp_path):
    srv = server(tmp_path)
    receiver = Receiver().start()
    hook, secret = add_webhook(srv, receiver.url("/hook"), "--event", "accepted")
    route = receiver.endpoint("/hook", secret, hold=True)    # takes it, answers later
    srv.start()
    try:
        first, second = send(srv, 2)
        assert receiver.wait(lambda: accepted_ids(receiver, "/hook") == [first])
        store = srv.store()
        try:
            assert wait_until(lambda: len(_pending(store, hook)) == 2)
        finally:
            store.close()
        # The receiver has processed `first`; the server dies before hearing its answer.
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        srv.stop()
        route.hold = False
        route.release.set()
        srv.start()
        assert receiver.wait(lambda: len(accepted_ids(receiver, "/hook")) == 3)
        got = receiver.got("/hook")
        assert [r.body["message_id"] for r in got] == [first, first, second]
        # At least once: the repeat carries the same delivery id, for the receiver to skip.
        assert got[0].delivery == got[1].delivery != got[2].delivery
        assert all(r.signed for r in got)
    finally:
        srv.stop()
        receiver.stop()


def _pending(store, hook: int) -> list:
    return asyncio.run(store.webhook_deliveries(hook, 10, state="pending"))


def test_an_endpoint_that_always_fails_is_disabled_with_an_event(tmp_path):
    srv = server(tmp_path, disable_after=4)
    receiver = Receiver().start()
    good, secret = add_webhook(srv, receiver.url("/hook"), "--event", "accepted",
                               "--event", "webhook-disabled")
    receiver.endpoint("/hook", secret)
    broken, broken_secret = add_webhook(srv, receiver.url("/broken"), "--domain",
                                        "example.test", "--event", "accepted")
    receiver.endpoint("/broken", broken_secret, status=500)
    srv.start()
    try:
        [message] = send(srv, 1)
        assert receiver.wait(lambda: receiver.got("/hook", "webhook-disabled"))
        [disabled] = receiver.got("/hook", "webhook-disabled")
        assert disabled.signed
        assert disabled.body["data"] == {"webhook": broken, "url": receiver.url("/broken"),
                                         "failures": 4, "domain": "example.test"}
        assert disabled.body["domain"] == "example.test"
        attempts = receiver.got("/broken")
        assert [r.body["message_id"] for r in attempts] == [message] * 4
        assert len({r.delivery for r in attempts}) == 1 and all(r.signed for r in attempts)
        assert accepted_ids(receiver, "/hook") == [message]
        listed = dict(line.split("\t", 1) for line in
                      srv.cli("webhook", "list").stdout.splitlines())
        assert listed[str(broken)].endswith("disabled")
        assert listed[str(good)].endswith("enabled")
    finally:
        srv.stop()
        receiver.stop()


def test_the_cli_refuses_bad_endpoints_with_a_message(tmp_path):
    srv = server(tmp_path)
    for args, message in (
            (["ftp://example.net/x"], "a webhook URL is http:// or https://"),
            (["https://example.net/x", "--event", "nope"], "unknown event type(s) nope"),
            (["https://example.net/x", "--domain", "else.test"], "no such domain: else.test")):
        res = srv.cli("webhook", "add", *args, check=False)
        assert res.returncode == 1 and message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    res = srv.cli("webhook", "remove", "7", check=False)
    assert res.returncode == 1 and "no webhook 7" in res.stderr
