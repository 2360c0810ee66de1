"""The suppression list against a real server: entries made over the API; mail to a
suppressed address, submitted over SMTP (AUTH on 465) and through the send API, is
accepted and never relayed while the other recipients of the same message are (the
remote side an aiosmtpd peer on 127.0.0.1 reached through [[transports]]); each
skipped recipient is a `suppressed` event; a hard bounce suppresses ([campaigns]
suppress_on_bounce), and so does a complaint (an ARF report, RFC 5965, sent to the mx
port at the feedback address); domain-admin keys see and change only their own domains' lists; a
campaign's report over the API counts what happened to it."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from ..conftest import PASSWORD
from .apiserver import ApiServer, error_of, ok, provision
from .peer import Peer, running
from .test_relay import wait_for

A, B = "example.test", "other.test"
ALICE, CAROL, FBL = f"alice@{A}", f"carol@{B}", f"fbl@{A}"
REMOTE = "remote.test"               # routed by [[transports]] to the peer


@pytest.fixture(scope="module")
def peer():
    # gone*@ does not exist (550 5.1.1): a hard bounce.
    yield from running(Peer(lambda a: "550 5.1.1 no such user" if a.startswith("gone") else None))


@pytest.fixture(scope="module")
def api(tmp_path_factory, peer):
    srv = ApiServer(tmp_path_factory.mktemp("suppress"), extra=(
        "[queue]\ninterval = 0.5\n"
        f'[campaigns]\nsuppress_on_bounce = true\nfeedback_address = "{FBL}"\n'
        + peer.transport(REMOTE)))
    root = srv.create_key("root", "admin")
    srv.start()
    try:
        provision(srv, root, (A, B), (ALICE, CAROL, FBL), key_domain=A)
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
    [envelope] = wait_for(lambda: [e.rcpt_tos for e in peer.got("smtp-stays@remote.test")])
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
    [envelope] = wait_for(lambda: [e.rcpt_tos for e in peer.got("api-stays@remote.test")])
    assert envelope == ["api-stays@remote.test"]
    events = wait_for(lambda: [e for e in suppressed_events(admin, "left@remote.test")
                               if e["message_id"] == sent["id"]])
    assert events[0]["tag"] == "spring"
    assert [e.rcpt_tos for e in peer.got("left@remote.test")] == []
    assert [e.rcpt_tos for e in peer.got("LEFT@remote.test")] == []

    # Removed: sent to again.
    gone = ok(admin.delete(f"/suppressions/{A}/left@remote.test"))
    assert gone["id"] == made["id"]
    error_of(admin.delete(f"/suppressions/{A}/left@remote.test"), 404)
    submit(api, ["left@remote.test"], "again")
    wait_for(lambda: [e.rcpt_tos for e in peer.got("left@remote.test")])


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


def test_campaign_report_over_the_api(api, admin, peer):
    ok(admin.post("/suppressions", json={"domain": A, "address": "left2@remote.test",
                                         "campaign": "summer"}), 201)
    with api.client(api.tokens["send"]) as sender:
        sent = ok(sender.post("/messages", json={
            "from": ALICE, "subject": "summer sale", "text": "hi", "tag": "summer",
            "to": ["ok1@remote.test", "ok2@remote.test", "gone2@remote.test",
                   "left2@remote.test"]}), 201)
    wait_for(lambda: ok(admin.get("/events", params={
        "type": ["delivered", "bounced"], "message_id": sent["id"]}))["events"][2:])

    report = ok(admin.get("/campaigns/summer", params={"domain": A}))
    assert (report["name"], report["domain"], report["messages"]) == ("summer", A, 1)
    f = report["figures"]
    assert {k: f[k] for k in ("sent", "delivered", "bounced", "suppressed", "opened",
                              "clicked", "unsubscribed")} == {
        "sent": 3, "delivered": 2, "bounced": 1, "suppressed": 1, "opened": 0,
        "clicked": 0, "unsubscribed": 0}
    assert f["bounce_rate"] == pytest.approx(1 / 3) and f["open_rate"] == 0.0
    assert f["click_to_open"] is None                     # no opens: no denominator
    [day] = report["days"]
    assert day["figures"]["sent"] == 3
    csv = admin.get("/campaigns/summer", params={"domain": A, "format": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[-1] == "total,3,2,1,1,0,0,0"
    listed = {(c["name"], c["domain"]) for c in ok(admin.get("/campaigns"))}
    assert ("summer", A) in listed
    whole = ok(admin.get(f"/domains/{A}/campaign-report"))
    assert whole["name"] is None and whole["figures"]["sent"] >= 3
    with api.client(api.tokens["domain-admin"]) as mine:     # a key of A: its only domain
        assert ok(mine.get("/campaigns/summer"))["figures"] == f
        error_of(mine.get("/campaigns/summer", params={"domain": B}), 403)
        error_of(mine.get(f"/domains/{B}/campaign-report"), 403)
    error_of(admin.get("/campaigns/winter"), 404)


ARF = """From: fbl@isp.test\r
To: {fbl}\r
Subject: complaint\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=feedback-report; boundary="b1"\r
\r
--b1\r
Content-Type: text/plain\r
\r
This is an email abuse report\r
--b1\r
Content-Type: message/feedback-report\r
\r
Feedback-Type: abuse\r
User-Agent: Test/1.0\r
Version: 1\r
Original-Rcpt-To: <angry@remote.test>\r
\r
--b1\r
Content-Type: text/rfc822-headers\r
\r
From: {sender}\r
To: angry@remote.test\r
Subject: sale\r
\r
--b1--\r
"""


def test_a_complaint_suppresses(api, admin, peer):
    with smtplib.SMTP("127.0.0.1", api.ports["mx"], timeout=30) as s:
        s.sendmail("fbl@isp.test", [FBL], ARF.format(fbl=FBL, sender=ALICE))
    entries = wait_for(lambda: ok(admin.get("/suppressions", params={
        "address": "angry@remote.test"}))["suppressions"])
    assert [(e["domain"], e["reason"], e["campaign"]) for e in entries] == [
        (A, "complaint", None)]
    [event] = ok(admin.get("/events", params={"type": "complained"}))["events"]
    assert event["data"] == {"rcpt": "angry@remote.test", "domain": A, "type": "abuse",
                             "suppressed": True}
    submit(api, ["angry@remote.test"], "more")
    [suppressed] = wait_for(lambda: suppressed_events(admin, "angry@remote.test"))
    assert suppressed["data"]["reason"] == "complaint"
