"""The web admin's guards in process (httpx over ASGI, a real SQLite store): the login
form's own CSRF token, no redirect off the admin after login, the cookie's flags over
http and https, a CSRF token of another session refused, the security headers."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from starlette.routing import Mount, Router

from mailwright.admin import Admin
from mailwright.app import open_store
from mailwright.config import parse
from mailwright.web import app as web_app
from mailwright.web.auth import safe_next

CONFIG = """
hostname = "mx.example.test"
data_dir = "{data_dir}"
[[listeners]]
role = "mx"
port = 2525
[auth]
failure_delay = 0.0
"""
PASSWORD = "web admin password"


@pytest.fixture
def admin(tmp_path):
    cfg = parse(CONFIG.format(data_dir=tmp_path))
    store = open_store(cfg)
    admin = Admin(store, cfg)
    asyncio.run(admin.admins.add("root", PASSWORD))
    try:
        yield admin
    finally:
        store.close()


def client(admin: Admin, scheme: str = "http") -> httpx.AsyncClient:
    # Mounted at /admin as site.py mounts it.
    site = Router(routes=[Mount("/admin", app=web_app.build(admin))])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=site),
                             base_url=f"{scheme}://admin.test")


async def log_in(c: httpx.AsyncClient, next: str = "") -> httpx.Response:
    form = await c.get("/admin/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)[1]
    return await c.post("/admin/login", data={"name": "root", "password": PASSWORD,
                                              "login_token": token, "next": next})


@pytest.mark.parametrize("target, expected", [
    ("/admin/queue?state=held", "/admin/queue?state=held"),
    ("https://evil.example/admin/", "/admin/"),
    ("//evil.example/admin/", "/admin/"),
    ("/administrator", "/admin/"),
    ("/admin/\\evil", "/admin/"),
    ("/admin/x\r\nSet-Cookie: a=b", "/admin/"),
    ("", "/admin/"),
    (None, "/admin/"),
])
def test_next_stays_in_the_admin(target, expected):
    assert safe_next(target) == expected


def test_login_needs_its_form_token(admin):
    async def run():
        async with client(admin) as c:
            r = await c.post("/admin/login", data={"name": "root", "password": PASSWORD})
            assert r.status_code == 403 and "mw_admin" not in r.cookies
            r = await log_in(c, next="https://evil.example/")
            assert (r.status_code, r.headers["location"]) == (303, "/admin/")
    asyncio.run(run())


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_cookie_flags(admin, scheme):
    async def run():
        async with client(admin, scheme) as c:
            r = await log_in(c)
            cookie = next(v for k, v in r.headers.multi_items()
                          if k == "set-cookie" and v.startswith("mw_admin="))
            flags = {f.strip().lower() for f in cookie.split(";")[1:]}
            assert {"httponly", "path=/admin", "samesite=strict"} <= flags
            assert ("secure" in flags) == (scheme == "https")
            assert not any(f.startswith(("max-age", "expires")) for f in flags)
    asyncio.run(run())


def test_another_sessions_csrf_token_is_refused(admin):
    async def run():
        async with client(admin) as a, client(admin) as b:
            await log_in(a)
            await log_in(b)
            page = await a.get("/admin/domains")
            token_a = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
            r = await b.post("/admin/domains", data={"name": "x.test", "csrf": token_a})
            assert r.status_code == 403
            assert await admin.domains.list() == []
            r = await a.post("/admin/domains", data={"name": "x.test", "csrf": token_a})
            assert r.status_code == 303
            assert [d.name for d in await admin.domains.list()] == ["x.test"]
    asyncio.run(run())


def test_security_headers(admin):
    async def run():
        async with client(admin) as c:
            r = await c.get("/admin/login")
            policy = r.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["cache-control"] == "no-store"
    asyncio.run(run())
