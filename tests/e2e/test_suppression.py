"""The suppression list against a real server: entries made over the API; mail to a
suppressed address, submitted over SMTP (AUTH on 465) and through the send API, is
accepted and never relayed while the other recipients of the same message are (the
remote side an aiosmtpd peer on 127.0.0.1 reached through [[transports]]); each
skipped recipient is a `suppressed` event; a hard bounce suppresses ([campaigns]
suppress_on_bounce); domain-admin keys see and change only their own domains' lists."""

from __future__ import annotations

import smtplib
import ssl
import threading

import pytest
from aiosmtpd.controller import Controller

from ..conftest import PASSWORD, free_port
from .apiserver import ApiServer, error_of, ok, provision
from .test_relay import wait_for

A, B = "example.test", "other.test"
ALICE, CAROL = f"alice@{A}", f"carol@{B}"
REMOTE = "remote.test"               # routed by [[transports]] to the peer


class Peer:
    """The remote SMTP server: refuses gone@ for good (550 5.1.1), keeps the rest."""

    def __init__(self):
        self.received: list = []
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("gone@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append(list(envelope.rcpt_tos))
        return "250 2.0.0 taken"

    def envelopes_with(self, rcpt: str) -> list[list[str]]:
        with self.lock:
            return [r for r in self.received if rcpt in r]


@pytest.fixture(scope="module")
def peer():
    p = Peer()
    p.controller.start()
    yield p
    p.controller.stop()


@pytest.fixture(scope="module")
def api(tmp_path_factory, peer):
    srv = ApiServer(tmp_path_factory.mktemp("suppress"), extra=(
        "[queue]\ninterval = 0.5\n"
        "[campaigns]\nsuppress_on_bounce = true\n"
        f'[[transports]]\ndomain = "{REMOTE}"\nhost = "127.0.0.1"\n'
        f'port = {peer.controller.port}\ntls = "none"\n'))
    root = srv.create_key("root", "admin")
    srv.start()
    try:
        provision(srv, root, (A, B), (ALICE, CAROL), key_domain=A)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def admin(api):
    with api.client(api.tokens["admin"]) as c:
        yield c


def submit(srv: ApiServer, rcpts: list[str], subject: str) -> None:
    """As alice, over implicit TLS with SMTP AUTH (RFC 8314, RFC 4954)."""
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    ctx.check_hostname = False
    with smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], context=ctx,
                          timeout=30) as s:
        s.login(ALICE, PASSWORD)
        refused = s.sendmail(ALICE, rcpts, f"From: {ALICE}\r\nSubject: {subject}\r\n\r\nhi\r\n")
        assert refused == {}                      # every RCPT accepted: 250


def suppressed_events(admin, rcpt: str) -> list[dict]:
    page = ok(admin.get("/events", params={"type": "suppressed", "address": rcpt}))
    return page["events"]


def test_suppressed_recipients_are_skipped_the_others_relayed(api, admin, peer):
    made = ok(admin.post("/suppressions", json={
        "domain": A, "address": "Left@Remote.TEST", "source": "asked by phone"}), 201)
    assert {k: made[k] for k in ("domain", "address", "campaign", "reason", "source")} == {
        "domain": A, "address": "Left@remote.test", "campaign": None, "reason": "manual",
        "source": "asked by phone"}
    # Adding it again returns the entry that is there.
    assert ok(admin.post("/suppressions", json={"domain": A, "address": "left@remote.test",
                                                "reason": "unsubscribe"}), 201) == made

    # SMTP submission: accepted (250 for every recipient), relayed to the other only.
    submit(api, ["left@remote.test", "smtp-stays@remote.test"], "over smtp")
    [envelope] = wait_for(lambda: peer.envelopes_with("smtp-stays@remote.test"))
    assert envelope == ["smtp-stays@remote.test"]
    [event] = wait_for(lambda: suppressed_events(admin, "left@remote.test"))
    assert event["domain"] == A and event["message_id"]
    assert event["data"] == {"rcpt": "left@remote.test", "domain": A, "reason": "manual",
                             "stage": "submission"}

    # The send API: the answer names the suppressed recipient.
    with api.client(api.tokens["send"]) as sender:
        sent = ok(sender.post("/messages", json={
            "from": ALICE, "to": ["LEFT@remote.test", "api-stays@remote.test"],
            "subject": "over the API", "text": "hi", "tag": "spring"}), 201)
    assert [(r["address"], r["accepted"], r["suppressed"]) for r in sent["recipients"]] == [
        ("LEFT@remote.test", True, "manual"), ("api-stays@remote.test", True, None)]
    [envelope] = wait_for(lambda: peer.envelopes_with("api-stays@remote.test"))
    assert envelope == ["api-stays@remote.test"]
    events = wait_for(lambda: [e for e in suppressed_events(admin, "left@remote.test")
                               if e["message_id"] == sent["id"]])
    assert events[0]["tag"] == "spring"
    assert peer.envelopes_with("left@remote.test") == []
    assert peer.envelopes_with("LEFT@remote.test") == []

    # Removed: sent to again.
    gone = ok(admin.delete(f"/suppressions/{A}/left@remote.test"))
    assert gone["id"] == made["id"]
    error_of(admin.delete(f"/suppressions/{A}/left@remote.test"), 404)
    submit(api, ["left@remote.test"], "again")
    wait_for(lambda: peer.envelopes_with("left@remote.test"))


def test_a_hard_bounce_suppresses(api, admin, peer):
    submit(api, ["gone@remote.test"], "first")
    entries = wait_for(lambda: ok(admin.get("/suppressions", params={
        "address": "gone@remote.test"}))["suppressions"])
    assert [(e["domain"], e["reason"], e["campaign"]) for e in entries] == [
        (A, "bounce", None)]
    assert entries[0]["source"].startswith("550 5.1.1")
    submit(api, ["gone@remote.test"], "second")
    [event] = wait_for(lambda: suppressed_events(admin, "gone@remote.test"))
    assert event["data"]["reason"] == "bounce"


def test_domain_admin_keys_keep_to_their_domains(api, admin):
    ok(admin.post("/suppressions", json={"domain": B, "address": "x@remote.test"}), 201)
    ok(admin.post("/suppressions", json={"domain": A, "address": "x@remote.test"}), 201)
    with api.client(api.tokens["domain-admin"]) as mine:
        listed = ok(mine.get("/suppressions"))["suppressions"]
        assert listed and {e["domain"] for e in listed} == {A}
        error_of(mine.get("/suppressions", params={"domain": B}), 403)
        error_of(mine.post("/suppressions", json={"domain": B, "address": "y@remote.test"}),
                 403)
        error_of(mine.delete(f"/suppressions/{B}/x@remote.test"), 403)
        made = ok(mine.post("/suppressions", json={
            "domain": A, "address": "z@remote.test", "campaign": "spring",
            "reason": "unsubscribe"}), 201)
        error_of(mine.delete(f"/suppressions/{A}/z@remote.test"), 404)   # not domain-wide
        assert ok(mine.delete(f"/suppressions/{A}/z@remote.test",
                              params={"campaign": "spring"}))["id"] == made["id"]
    error_of(admin.post("/suppressions", json={"domain": A, "address": "no address"}), 422)
    error_of(admin.post("/suppressions", json={"domain": "nowhere.test",
                                               "address": "a@b.test"}), 404)
    error_of(admin.post("/suppressions", json={"domain": A, "address": "a@b.test",
                                               "reason": "dislike"}), 422)
