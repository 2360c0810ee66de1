"""A campaign report end to end: an HTML campaign sent through the send API to three
remote recipients (relayed to a loopback peer), its pixels and links fetched over HTTP
by a person's mail program and by a privacy proxy, one recipient unsubscribing with
RFC 8058's one-click POST; the report over the API and the CLI then has exact figures.
The server, peer and helpers are test_campaigns.py's."""

from __future__ import annotations

import httpx
import pytest

from . import test_campaigns as tc
from .apiserver import ok
from .test_relay import wait_for

# The fixtures of test_campaigns.py, for a server of this module's own.
peer, api, admin = tc.peer, tc.api, tc.admin
RCPTS = [f"r{i}@{tc.REMOTE}" for i in (1, 2, 3)]


def test_report_of_a_tracked_campaign(api, admin, peer):
    with api.client(api.tokens["send"]) as sender:
        ok(sender.post("/messages", json={
            "from": tc.ALICE, "to": RCPTS, "subject": "winter sale", "text": "hi",
            "html": tc.HTML, "campaign": "winter"}), 201)
    found = {r: tc.urls(wait_for(lambda r=r: [e.original_content for e in peer.got(r)])[0])
             for r in RCPTS}
    with tc.public(api) as person:          # a mail client on the recipient's device
        for _ in range(2):                  # a repeat open counts once
            assert person.get(found[RCPTS[0]]["o"][0]).status_code == 200
        assert person.get(found[RCPTS[0]]["c"][0]).status_code == 302
        assert person.post(found[RCPTS[2]]["u"][0],
                           data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with httpx.Client(base_url=f"http://127.0.0.1:{api.ports['http']}",
                      headers={"User-Agent": "Mozilla/5.0"}) as apple:   # a privacy proxy
        assert apple.get(found[RCPTS[1]]["o"][0]).status_code == 200
    wait_for(lambda: tc.events(admin, "opened", RCPTS[1]) and
             tc.events(admin, "unsubscribed", RCPTS[2]) and
             tc.events(admin, "clicked", RCPTS[0]))

    report = ok(admin.get("/campaigns/winter", params={"domain": tc.A}))
    f = report["figures"]
    assert report["messages"] == 3                       # one copy per recipient
    assert {k: f[k] for k in ("sent", "delivered", "bounced", "suppressed", "opened",
                              "opened_all", "clicked", "clicked_all", "unsubscribed")} == {
        "sent": 3, "delivered": 3, "bounced": 0, "suppressed": 0, "opened": 1,
        "opened_all": 2, "clicked": 1, "clicked_all": 1, "unsubscribed": 1}
    assert f["open_rate"] == pytest.approx(1 / 3) and f["open_rate_all"] == pytest.approx(2 / 3)
    assert f["click_rate"] == pytest.approx(1 / 3) and f["click_to_open"] == 1.0
    assert f["unsubscribe_rate"] == pytest.approx(1 / 3) and f["bounce_rate"] == 0.0
    assert sum(d["figures"]["opened"] for d in report["days"]) == 1    # per UTC day

    out = api.cli("campaign", "report", "winter", "--domain", tc.A, "--csv").stdout
    assert out.splitlines()[-1] == "total,3,3,0,0,1,1,1"
