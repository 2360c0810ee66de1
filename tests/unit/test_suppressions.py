"""The suppression list on a real store of each backend: admin operations (add is idempotent,
remove, paging, refusals) and the check delivery makes (domain-wide vs campaign
entries, addresses compared as lookups compare them)."""

from __future__ import annotations

import asyncio
import calendar

import pytest

from mailwright import cli
from mailwright.admin import Admin, Invalid, NotFound
from mailwright.config import parse

from .stored import config_text

NOW = calendar.timegm((2026, 11, 5, 12, 0, 0))

@pytest.fixture
def admin(make_store):
    store = make_store()
    text = config_text(store)
    (store.data_dir / "m.toml").write_text(text)       # for the command line
    a = Admin(store, parse(text), clock=lambda: NOW)
    asyncio.run(a.domains.add("example.test"))
    asyncio.run(a.domains.add("other.test"))
    return a


def run(coro):
    return asyncio.run(coro)


def test_add_is_idempotent_and_keeps_the_first_entry(admin):
    s = admin.suppressions
    first = run(s.add("Example.TEST", "Bob@Remote.TEST", reason="unsubscribe",
                      source="one-click"))
    assert (first.domain, first.address, first.campaign, first.reason, first.source,
            first.created) == ("example.test", "Bob@remote.test", None, "unsubscribe",
                               "one-click", NOW)
    # The same address as lookups compare it (local part case-insensitive): the same entry.
    again = run(s.add("example.test", "bob@REMOTE.test", reason="manual"))
    assert again == first
    # Per campaign, it is another entry.
    spring = run(s.add("example.test", "bob@remote.test", campaign="spring", reason="manual"))
    assert spring.id != first.id and spring.campaign == "spring"
    assert len(run(s.list("example.test")).suppressions) == 2


def test_check_domain_wide_and_per_campaign(admin):
    s = admin.suppressions
    run(s.add("example.test", "all@remote.test", reason="bounce"))
    run(s.add("example.test", "spring@remote.test", campaign="spring", reason="unsubscribe"))
    assert run(s.check("example.test", "ALL@remote.test")).reason == "bounce"
    assert run(s.check("example.test", "all@remote.test", campaign="autumn")).reason == "bounce"
    assert run(s.check("example.test", "spring@remote.test")) is None
    assert run(s.check("example.test", "spring@remote.test", campaign="autumn")) is None
    assert run(s.check("example.test", "spring@remote.test", campaign="spring")).campaign \
        == "spring"
    # Another sending domain keeps its own list.
    assert run(s.check("other.test", "all@remote.test")) is None
    # A domain-wide entry wins over a campaign's when both exist.
    run(s.add("example.test", "spring@remote.test", reason="complaint"))
    assert run(s.check("example.test", "spring@remote.test", campaign="spring")).reason \
        == "complaint"


def test_idn_domains_compare_canonically(admin):
    run(admin.domains.add("bücher.test"))
    entry = run(admin.suppressions.add("xn--bcher-kva.test", "leser@bücher.test",
                                       reason="manual"))
    assert entry.domain == "xn--bcher-kva.test" and entry.address == "leser@xn--bcher-kva.test"
    assert run(admin.suppressions.check("bücher.test", "Leser@XN--BCHER-KVA.test"))


def test_remove(admin):
    s = admin.suppressions
    run(s.add("example.test", "bob@remote.test", reason="manual"))
    run(s.add("example.test", "bob@remote.test", campaign="spring", reason="manual"))
    with pytest.raises(NotFound, match="not suppressed for campaign 'autumn'"):
        run(s.remove("example.test", "bob@remote.test", campaign="autumn"))
    gone = run(s.remove("example.test", "BOB@remote.test"))
    assert gone.campaign is None
    # The campaign's entry stays.
    assert [e.campaign for e in run(s.list()).suppressions] == ["spring"]
    with pytest.raises(NotFound):
        run(s.remove("example.test", "bob@remote.test"))


def test_list_filters_and_pages(admin):
    s = admin.suppressions
    for i in range(5):
        run(s.add("example.test", f"u{i}@remote.test", reason="manual"))
    run(s.add("other.test", "u0@remote.test", reason="manual"))
    run(s.add("example.test", "u0@remote.test", campaign="c", reason="manual"))
    page = run(s.list("example.test", limit=2))
    assert [e.address for e in page.suppressions] == ["u0@remote.test", "u1@remote.test"]
    seen = [e.address for e in page.suppressions]
    while page.next is not None:
        page = run(s.list("example.test", limit=2, after=page.next))
        seen += [e.address for e in page.suppressions]
    assert seen == [f"u{i}@remote.test" for i in range(5)] + ["u0@remote.test"]
    assert len(run(s.list(address="U0@remote.test")).suppressions) == 3
    assert [e.domain for e in run(s.list(campaign="c")).suppressions] == ["example.test"]
    assert run(s.list("nowhere.test")).suppressions == []


@pytest.mark.parametrize("call, message", [
    (lambda s: s.add("nowhere.test", "a@b.test", reason="manual"), "no such domain"),
    (lambda s: s.add("example.test", "not an address", reason="manual"), "invalid address"),
    (lambda s: s.add("example.test", "a@b.test", reason="dislike"), "unknown reason"),
    (lambda s: s.add("example.test", "a@b.test", campaign=" ", reason="manual"), "campaign"),
    (lambda s: s.list(limit=0), "invalid limit"),
    (lambda s: s.list(after=-1), "invalid after"),
    (lambda s: s.list("bad_domain!"), "invalid domain"),
])
def test_bad_input_is_refused_by_name(admin, call, message):
    with pytest.raises((Invalid, NotFound), match=message):
        run(call(admin.suppressions))


def test_cli(admin, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")       # rich folds narrower tables
    config = str(admin.ctx.config.data_dir / "m.toml")
    assert cli.main(["-c", config, "suppression", "add", "example.test", "Bob@remote.test",
                     "--campaign", "spring", "--reason", "unsubscribe"]) == 0
    assert capsys.readouterr().out == \
        "Bob@remote.test suppressed for campaign 'spring' of example.test (unsubscribe)\n"
    assert cli.main(["-c", config, "suppression", "list", "example.test"]) == 0
    out = capsys.readouterr().out
    assert "Bob@remote.test" in out and "unsubscribe" in out
    assert cli.main(["-c", config, "suppression", "remove", "example.test",
                     "bob@remote.test"]) == 1               # only the campaign's entry
    assert "not suppressed for example.test" in capsys.readouterr().err
    assert cli.main(["-c", config, "suppression", "remove", "example.test",
                     "bob@remote.test", "--campaign", "spring"]) == 0
    assert run(admin.suppressions.list()).suppressions == []
