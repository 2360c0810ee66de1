"""The mailto: unsubscribe of campaign mail end to end (RFC 2369 §3.2): a campaign
message submitted over SMTP reaches the remote peer with
List-Unsubscribe: <https://...>, <mailto:unsubscribe@DOMAIN?subject=TOKEN>, DKIM-signed
over it; a message to that address with that subject, sent to port 25 as a mailbox
provider would, unsubscribes the recipient (the next campaign send to it is a
`suppressed` event and nothing reaches the peer) and is stored in no mailbox; a
changed token unsubscribes nobody (accepted, an `unsubscribe-ignored` event); a local
user's client may send it through submission. The server, peer and helpers are
test_campaigns.py's."""

from __future__ import annotations

import re
import smtplib
import ssl

from ..conftest import PASSWORD
from . import test_campaigns as tc
from .apiserver import imap_messages, ok
from .test_api_send import SIGNED_BY_A, dkim_verifies
from .test_relay import wait_for

# The fixtures of test_campaigns.py, for a server of this module's own.
peer, api, admin = tc.peer, tc.api, tc.admin
MAILTO = re.compile(rb"<mailto:(unsubscribe@" + re.escape(tc.A.encode()) +
                    rb")\?subject=([\w-]+)>")


def campaign_to(srv, rcpt: str, subject: str) -> None:
    tc.submit(srv, [rcpt], tc.message(subject, "autumn").replace(
        f"To: {tc.BOB}".encode(), f"To: {rcpt}".encode()))


def mailto_of(content: bytes) -> tuple[str, str]:
    """(address, token) of the mailto: URI in the List-Unsubscribe field (unfolded)."""
    head = re.sub(rb"\r\n[ \t]", b" ", content.split(b"\r\n\r\n", 1)[0])
    [field] = [line for line in head.split(b"\r\n") if line.lower().startswith(
        b"list-unsubscribe:")]
    https, mailto = field.split(b":", 1)[1].split(b",")
    assert https.strip().startswith(b"<https://")        # RFC 8058: the https one first
    address, token = MAILTO.fullmatch(mailto.strip()).groups()
    return address.decode(), token.decode()


def send_mx(srv, to: str, subject: str, sender: str) -> None:
    """A message as a mailbox provider's server sends it for its user: to port 25."""
    with smtplib.SMTP("127.0.0.1", srv.ports["mx"], timeout=30) as s:
        s.ehlo("mx.remote.test")
        assert s.sendmail(sender, [to], (f"From: {sender}\r\nTo: {to}\r\nSubject: "
                                         f"{subject}\r\n\r\nunsubscribe\r\n").encode()) == {}


def ignored(admin) -> list[dict]:
    return ok(admin.get("/events", params={"type": "unsubscribe-ignored"}))["events"]


def test_mailto_unsubscribes_and_the_next_send_is_suppressed(api, admin, peer):
    rcpt = f"mailto-reader@{tc.REMOTE}"
    campaign_to(api, rcpt, "autumn by mail")
    [content] = wait_for(lambda: [e.original_content for e in peer.got(rcpt)])
    assert dkim_verifies(admin, content) == SIGNED_BY_A      # covers List-Unsubscribe
    address, token = mailto_of(content)
    assert address == f"unsubscribe@{tc.A}"                  # the sending domain
    assert token == tc.urls(content)["u"][0].rsplit("/", 1)[1]

    # No account, alias or catch-all exists for the address: taken all the same.
    send_mx(api, address, token, rcpt)
    [event] = wait_for(lambda: tc.events(admin, "unsubscribed", rcpt))
    assert event["data"] == {"rcpt": rcpt, "domain": tc.A, "method": "mailto",
                             "tag": "autumn"}
    [entry] = ok(admin.get("/suppressions", params={"address": rcpt}))["suppressions"]
    assert (entry["domain"], entry["reason"], entry["source"], entry["campaign"]) == (
        tc.A, "unsubscribe", "mailto", None)
    # Stored nowhere: accepted with no local copy and nothing queued.
    accepted = ok(admin.get("/events", params={"type": "accepted", "limit": 1000}))["events"]
    assert [(e["data"]["local"], e["data"]["remote"]) for e in accepted
            if e["session"] == event["session"]] == [(0, 0)]

    # A second mail for the same copy suppresses nothing new and is not a second event.
    send_mx(api, address, f"Re: {token}", rcpt)
    campaign_to(api, rcpt, "autumn again")
    [skipped] = wait_for(lambda: tc.events(admin, "suppressed", rcpt))
    assert (skipped["tag"], skipped["data"]["reason"]) == ("autumn", "unsubscribe")
    assert len(peer.got(rcpt)) == 1
    assert len(tc.events(admin, "unsubscribed", rcpt)) == 1


def test_a_changed_token_unsubscribes_nobody(api, admin, peer):
    rcpt = f"kept-reader@{tc.REMOTE}"
    campaign_to(api, rcpt, "autumn kept")
    [content] = wait_for(lambda: [e.original_content for e in peer.got(rcpt)])
    address, token = mailto_of(content)
    changed = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    before = len(ignored(admin))
    # Accepted (no bounce to a sender who may be forged), and only an event says why.
    send_mx(api, address, changed, f"forger@{tc.REMOTE}")
    new = wait_for(lambda: ignored(admin)[:len(ignored(admin)) - before])
    assert [e["data"] for e in new] == [{"rcpt": address, "reason": "invalid-token"}]
    assert ok(admin.get("/suppressions", params={"address": rcpt}))["suppressions"] == []
    assert tc.events(admin, "unsubscribed", rcpt) == []
    campaign_to(api, rcpt, "autumn still")
    wait_for(lambda: len(peer.got(rcpt)) == 2)


def test_a_local_users_client_may_send_it_through_submission(api, admin):
    campaign_to(api, tc.DAVE, "autumn for dave")
    content = tc.received(api, tc.DAVE, "autumn for dave")
    address, token = mailto_of(content)
    ctx = ssl.create_default_context(cafile=str(api.ca))
    ctx.check_hostname = False
    with smtplib.SMTP_SSL("127.0.0.1", api.ports["submissions"], context=ctx,
                          timeout=30) as s:
        s.login(tc.DAVE, PASSWORD)
        assert s.sendmail(tc.DAVE, [address], (f"From: {tc.DAVE}\r\nTo: {address}\r\n"
                                               f"Subject: {token}\r\n\r\n\r\n").encode()) == {}
    [event] = wait_for(lambda: tc.events(admin, "unsubscribed", tc.DAVE))
    assert event["data"]["method"] == "mailto"
    # Dave's mailbox has the campaign, not his unsubscribe mail; nor has anyone's.
    for user in (tc.ALICE, tc.BOB, tc.DAVE):
        assert all(tc.parsed(m)["Subject"] != token for m in imap_messages(api, user))
