"""Web admin accounts and sessions (admin/admins.py) on a real store of each backend: argon2
hashes, tokens kept only as digests, idle and absolute expiry, lockout, and the end of
sessions when a password changes or an admin goes."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from mailwright.admin import Admin, Conflict, Invalid, NotFound
from mailwright.admin.admins import LockedOut
from mailwright.config import parse
from mailwright.events.log import EventLog

from .stored import config_text, table_rows

EXTRA = """\
[auth]
failure_delay = 0.0
max_failures = 3
lockout = 60.0
[http]
admin_idle_timeout = 600.0
admin_session_lifetime = 3600.0
"""
PASSWORD = "correct horse"


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(make_store):
    store = make_store()
    cfg = parse(config_text(store, EXTRA))
    clock = Clock()
    seen: list[tuple[str, dict]] = []
    log = EventLog(store, observers=[lambda e, s, m, data: seen.append((e.value, data))])
    admin = Admin(store, cfg, clock=clock, events=log)
    admin.admins.lockout.clock = clock
    admin.seen = seen
    return admin, clock, store


def run(coro):
    return asyncio.run(coro)


def test_add_list_passwd_remove(env):
    admin, _, store = env
    made = run(admin.admins.add("root", PASSWORD))
    assert made.name == "root" and made.last_login is None
    assert [a.name for a in run(admin.admins.list())] == ["root"]
    with pytest.raises(Conflict, match="already exists"):
        run(admin.admins.add("root", PASSWORD))
    with pytest.raises(Invalid, match="too short"):
        run(admin.admins.add("other", "short"))
    with pytest.raises(Invalid, match="invalid admin name"):
        run(admin.admins.add("two words", PASSWORD))
    [(stored,)] = table_rows(store, "SELECT password_hash FROM admin_users")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with pytest.raises(NotFound):
        run(admin.admins.set_password("nobody", PASSWORD))
    assert run(admin.admins.remove("root")).name == "root"
    with pytest.raises(NotFound):
        run(admin.admins.remove("root"))


def test_login_keeps_only_a_digest_and_records_the_login(env):
    admin, clock, store = env
    run(admin.admins.add("root", PASSWORD))
    session = run(admin.admins.login("root", PASSWORD, "192.0.2.1"))
    assert len(session.token) >= 43 and len(session.csrf) >= 43
    rows = table_rows(store, "SELECT digest, csrf FROM admin_sessions")
    assert rows == [(hashlib.sha256(session.token.encode()).hexdigest(), session.csrf)]
    assert session.token not in str(rows)
    assert run(admin.admins.list())[0].last_login == clock.now
    found = run(admin.admins.session(session.token))
    assert (found.admin, found.csrf) == ("root", session.csrf)
    assert run(admin.admins.session(session.token + "x")) is None
    assert run(admin.admins.session("")) is None
    run(admin.admins.logout(session.token))
    assert run(admin.admins.session(session.token)) is None


def test_wrong_password_or_name_is_one_answer(env):
    admin, _, _ = env
    run(admin.admins.add("root", PASSWORD))
    for name, password in (("root", "wrong password"), ("nobody", PASSWORD)):
        with pytest.raises(Invalid, match="wrong admin name or password") as e:
            run(admin.admins.login(name, password, f"192.0.2.{len(name)}"))
        assert not isinstance(e.value, LockedOut)


def test_idle_and_absolute_expiry(env):
    admin, clock, _ = env
    run(admin.admins.add("root", PASSWORD))
    token = run(admin.admins.login("root", PASSWORD, "192.0.2.1")).token
    start = clock.now
    # Used every 500 s (under the 600 s idle timeout): alive until the 3600 s lifetime.
    while clock.now + 500 < start + 3600:
        clock.now += 500
        assert run(admin.admins.session(token)) is not None, clock.now - start
    clock.now = start + 3600
    assert run(admin.admins.session(token)) is None
    token = run(admin.admins.login("root", PASSWORD, "192.0.2.1")).token
    clock.now += 601
    assert run(admin.admins.session(token)) is None


def test_lockout_after_failures_and_its_end(env):
    admin, clock, _ = env
    run(admin.admins.add("root", PASSWORD))
    for _ in range(2):
        with pytest.raises(Invalid):
            run(admin.admins.login("root", "wrong password", "192.0.2.9"))
    with pytest.raises(LockedOut):              # the third failure locks the address
        run(admin.admins.login("root", "wrong password", "192.0.2.9"))
    with pytest.raises(LockedOut, match="try again in 60 seconds"):   # even the right one
        run(admin.admins.login("root", PASSWORD, "192.0.2.9"))
    assert run(admin.admins.login("root", PASSWORD, "192.0.2.10")).admin == "root"
    clock.now += 61
    assert run(admin.admins.login("root", PASSWORD, "192.0.2.9")).admin == "root"
    # Logged as mail authentication is, protocol "web".
    assert [(t, d["protocol"], d["ip"]) for t, d in admin.seen] == \
        [("auth-fail", "web", "192.0.2.9")] * 3 + [("auth-locked", "web", "192.0.2.9")] * 2 \
        + [("auth-ok", "web", "192.0.2.10"), ("auth-ok", "web", "192.0.2.9")]
    assert admin.seen[0][1]["username"] == "root" and admin.seen[-1][1]["account"] == "root"


def test_password_change_and_removal_end_sessions(env):
    admin, _, _ = env
    run(admin.admins.add("root", PASSWORD))
    run(admin.admins.add("ops", PASSWORD))
    root = run(admin.admins.login("root", PASSWORD, "192.0.2.1")).token
    ops = run(admin.admins.login("ops", PASSWORD, "192.0.2.1")).token
    run(admin.admins.set_password("root", "another password"))
    assert run(admin.admins.session(root)) is None
    assert run(admin.admins.session(ops)) is not None
    with pytest.raises(Invalid):
        run(admin.admins.login("root", PASSWORD, "192.0.2.2"))
    assert run(admin.admins.login("root", "another password", "192.0.2.2"))
    run(admin.admins.remove("ops"))
    assert run(admin.admins.session(ops)) is None


def test_the_demo_makes_a_dev_admin_once(make_store):
    store = make_store()
    cfg = parse(config_text(store, EXTRA) + '[demo]\ndomain = "example.test"\n'
                'user = "demo"\n')
    admin = Admin(store, cfg)
    first = run(admin.ensure_demo())
    assert first.admin_password and first.password
    assert run(admin.admins.login("admin", first.admin_password, "192.0.2.1"))
    again = run(admin.ensure_demo())
    assert (again.password, again.admin_password) == (None, None)
