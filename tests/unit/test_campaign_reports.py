"""Campaign reports from a known set of events in a real store of each backend: every figure and
rate exact, repeats counted once per copy, machine opens and clicks apart, per-day
series, the domain and campaign scopes, the list, the CSV export."""

from __future__ import annotations

import asyncio
import calendar
import csv
import io

import pytest

from mailwright import cli
from mailwright.admin import Admin, Invalid, NotFound
from mailwright.admin.campaigns import report_csv
from mailwright.config import parse
from mailwright.events.log import EventRow
from mailwright.events.types import Event, check_fields

from .stored import config_text, written

D1, D2 = "2026-11-05", "2026-11-06"


def at(day: str, hour: int, minute: int = 0) -> float:
    y, m, d = map(int, day.split("-"))
    return float(calendar.timegm((y, m, d, hour, minute, 0)))


class Log:
    """Events as the event log records them (declared fields checked), at chosen times."""

    def __init__(self, store):
        self.store = store

    def emit(self, ts: float, event: Event, message_id: str, **data) -> None:
        check_fields(event, data)
        self.store.record_event(EventRow.of(ts, event.value, None, message_id, data))

    def accepted(self, ts, mid, tag, domain="example.test", local=0, remote=1):
        self.emit(ts, Event.ACCEPTED, mid, ip="127.0.0.1", size=100,
                  mail_from=f"news@{domain}", rcpts=local + remote, local=local, remote=remote,
                  account=f"news@{domain}", tls="", domain=domain, tag=tag, role="submission")

    def outcome(self, ts, event, mid, rcpt, tag):
        self.emit(ts, event, mid, rcpt=rcpt, remote="mx.x.test [192.0.2.1]", tls="",
                  reply="250 ok" if event != Event.BOUNCED else "550 5.1.1 no", attempt=1,
                  tag=tag)

    def opened(self, ts, mid, rcpt, tag, machine=False, first=True, domain="example.test"):
        self.emit(ts, Event.OPENED, mid, rcpt=rcpt, domain=domain, first=first,
                  machine=machine, ua="proxy" if machine else "mail-client", tag=tag)

    def clicked(self, ts, mid, rcpt, tag, machine=False, first=True):
        self.emit(ts, Event.CLICKED, mid, rcpt=rcpt, domain="example.test",
                  url="https://shop.test/a", first=first, machine=machine,
                  ua="scanner" if machine else "browser", tag=tag)


@pytest.fixture
def admin(make_store):
    store = make_store()
    text = config_text(store)
    (store.data_dir / "m.toml").write_text(text)       # for the command line
    cfg = parse(text)
    a = Admin(store, cfg)
    asyncio.run(a.domains.add("example.test"))
    asyncio.run(a.domains.add("other.test"))
    log, S = Log(store), "spring"
    # M1: delivered; opened twice by a person (day 1), clicked twice (day 2).
    log.accepted(at(D1, 10), "M1", S)
    log.outcome(at(D1, 10, 1), Event.DELIVERED, "M1", "r1@x.test", S)
    log.opened(at(D1, 11), "M1", "r1@x.test", S)
    log.opened(at(D1, 12), "M1", "r1@x.test", S, first=False)
    log.clicked(at(D2, 9), "M1", "r1@x.test", S)
    log.clicked(at(D2, 9, 5), "M1", "r1@x.test", S, first=False)
    # M2: a privacy proxy opens it on day 1, the person on day 2.
    log.accepted(at(D1, 10), "M2", S)
    log.outcome(at(D1, 10, 1), Event.DELIVERED, "M2", "r2@x.test", S)
    log.opened(at(D1, 10, 2), "M2", "r2@x.test", S, machine=True)
    log.opened(at(D2, 8), "M2", "R2@x.test", S, first=False)
    # M3: only machines (a proxy's open, a link scanner's click).
    log.accepted(at(D1, 10), "M3", S)
    log.outcome(at(D1, 10, 1), Event.DELIVERED, "M3", "r3@x.test", S)
    log.opened(at(D1, 10, 3), "M3", "r3@x.test", S, machine=True)
    log.clicked(at(D1, 10, 3), "M3", "r3@x.test", S, machine=True)
    # M4 bounces; M5 is found suppressed by the queue on day 2.
    log.accepted(at(D1, 10), "M4", S)
    log.outcome(at(D1, 10, 1), Event.BOUNCED, "M4", "r4@x.test", S)
    log.accepted(at(D1, 10), "M5", S)
    log.emit(at(D2, 7), Event.SUPPRESSED, "M5", rcpt="r5@x.test", domain="example.test",
             reason="unsubscribe", stage="queue", tag=S)
    # M6 (day 2): one local and two remote recipients, one deferred first; one of them
    # unsubscribes (twice).
    log.accepted(at(D2, 9), "M6", S, local=1, remote=2)
    log.outcome(at(D2, 9, 1), Event.DELIVERED, "M6", "r6a@x.test", S)
    log.outcome(at(D2, 9, 1), Event.DEFERRED, "M6", "r6b@x.test", S)
    log.outcome(at(D2, 9, 30), Event.DELIVERED, "M6", "r6b@x.test", S)
    for _ in range(2):
        log.emit(at(D2, 10), Event.UNSUBSCRIBED, "M6", rcpt="r6a@x.test",
                 domain="example.test", method="one-click", tag=S)
    # M7: its only recipient suppressed at submission: accepted, nothing to send.
    log.emit(at(D1, 10), Event.SUPPRESSED, "M7", rcpt="r7@x.test", domain="example.test",
             reason="bounce", stage="submission", tag=S)
    log.accepted(at(D1, 10), "M7", S, remote=0)
    # Not spring of example.test: another campaign, another domain, untagged mail.
    log.accepted(at(D2, 15), "A1", "autumn")
    log.outcome(at(D2, 15, 1), Event.DELIVERED, "A1", "r1@x.test", "autumn")
    log.opened(at(D2, 16), "A1", "r1@x.test", "autumn")
    log.accepted(at(D1, 9), "O1", S, domain="other.test")
    log.outcome(at(D1, 9, 1), Event.DELIVERED, "O1", "o1@x.test", S)
    log.accepted(at(D1, 9), "N1", None)
    log.outcome(at(D1, 9, 1), Event.DELIVERED, "N1", "n1@x.test", None)
    written(store)
    return a


def figures(f) -> dict:
    return {k: getattr(f, k) for k in (
        "sent", "delivered", "bounced", "suppressed", "opened", "opened_all", "clicked",
        "clicked_all", "unsubscribed")}


def test_campaign_report_figures_and_rates(admin):
    r = asyncio.run(admin.campaigns.report("spring", "Example.TEST"))
    assert (r.name, r.domain, r.messages, r.first, r.last) == (
        "spring", "example.test", 7, at(D1, 10), at(D2, 9))
    assert figures(r.figures) == {
        "sent": 7, "delivered": 6, "bounced": 1, "suppressed": 2, "opened": 2,
        "opened_all": 3, "clicked": 1, "clicked_all": 2, "unsubscribed": 1}
    f = r.figures
    assert f.bounce_rate == pytest.approx(1 / 7)
    assert (f.open_rate, f.open_rate_all) == (pytest.approx(2 / 6), pytest.approx(3 / 6))
    assert (f.click_rate, f.click_rate_all) == (pytest.approx(1 / 6), pytest.approx(2 / 6))
    assert f.click_to_open == pytest.approx(1 / 2)
    assert f.unsubscribe_rate == pytest.approx(1 / 6)


def test_per_day_series(admin):
    r = asyncio.run(admin.campaigns.report("spring", "example.test"))
    assert [(d.day, figures(d.figures)) for d in r.days] == [
        (D1, {"sent": 5, "delivered": 3, "bounced": 1, "suppressed": 1, "opened": 1,
              "opened_all": 3, "clicked": 0, "clicked_all": 1, "unsubscribed": 0}),
        (D2, {"sent": 2, "delivered": 3, "bounced": 0, "suppressed": 1, "opened": 1,
              "opened_all": 0, "clicked": 1, "clicked_all": 1, "unsubscribed": 1})]


def test_scopes_other_domains_and_campaigns(admin):
    everywhere = asyncio.run(admin.campaigns.report("spring"))
    assert (everywhere.domain, everywhere.messages, everywhere.figures.sent,
            everywhere.figures.delivered) == (None, 8, 8, 7)
    domain = asyncio.run(admin.campaigns.domain_report("example.test"))
    assert (domain.name, domain.messages) == (None, 8)          # spring and autumn
    assert figures(domain.figures) == {
        "sent": 8, "delivered": 7, "bounced": 1, "suppressed": 2, "opened": 3,
        "opened_all": 4, "clicked": 1, "clicked_all": 2, "unsubscribed": 1}
    assert asyncio.run(admin.campaigns.domain_report("other.test")).figures.delivered == 1


def test_list(admin):
    rows = asyncio.run(admin.campaigns.list())
    assert [(c.name, c.domain, c.messages, c.recipients) for c in rows] == [
        ("autumn", "example.test", 1, 1), ("spring", "example.test", 7, 8),
        ("spring", "other.test", 1, 1)]
    assert [c.domain for c in asyncio.run(admin.campaigns.list("other.test"))] == [
        "other.test"]


def test_csv(admin):
    r = asyncio.run(admin.campaigns.report("spring", "example.test"))
    rows = list(csv.reader(io.StringIO(report_csv(r))))
    assert rows[0] == ["day", "sent", "delivered", "bounced", "suppressed", "opened",
                       "clicked", "unsubscribed"]
    assert rows[1:] == [[D1, "5", "3", "1", "1", "1", "0", "0"],
                        [D2, "2", "3", "0", "1", "1", "1", "1"],
                        ["total", "7", "6", "1", "2", "2", "1", "1"]]


def test_refusals(admin):
    with pytest.raises(NotFound, match="no campaign 'winter'"):
        asyncio.run(admin.campaigns.report("winter"))
    with pytest.raises(NotFound, match="from other.test"):
        asyncio.run(admin.campaigns.report("autumn", "other.test"))
    with pytest.raises(Invalid, match="campaign"):
        asyncio.run(admin.campaigns.report(" "))
    with pytest.raises(NotFound):
        asyncio.run(admin.campaigns.domain_report("nowhere.test"))


def test_cli_renders_the_report(admin, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")       # rich folds narrower tables
    config = str(admin.ctx.config.data_dir / "m.toml")
    assert cli.main(["-c", config, "campaign", "report", "spring", "--domain",
                     "example.test", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "total,7,6,1,2,2,1,1"
    assert cli.main(["-c", config, "campaign", "report", "spring", "--domain",
                     "example.test"]) == 0
    table = capsys.readouterr().out
    assert "campaign 'spring' of example.test: 7 message(s)" in table
    assert "33.3%" in table and "14.3%" in table and "50.0%" in table   # open, bounce, CTO
    assert cli.main(["-c", config, "campaign", "list", "--domain", "other.test"]) == 0
    assert "spring" in capsys.readouterr().out
    assert cli.main(["-c", config, "campaign", "report", "winter"]) == 1
    assert "no campaign 'winter'" in capsys.readouterr().err
