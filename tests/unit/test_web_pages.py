"""The campaign, suppression and diagnostics pages of the web admin in process (httpx
over ASGI, a real SQLite store): what bad input gets (a page naming the problem, never
a traceback), that nothing is removed without its confirmation, the CSV's headers."""

from __future__ import annotations

import asyncio
import re

import httpx

from .test_web_auth import admin, client, log_in  # noqa: F401  (admin: a fixture)


async def _logged_in(c: httpx.AsyncClient) -> str:
    """Log in; the session's CSRF token."""
    await log_in(c)
    page = await c.get("/admin/suppressions")
    return re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def test_campaign_report_needs_a_name_or_a_domain(admin):  # noqa: F811
    async def run():
        await admin.domains.add("news.test")
        async with client(admin) as c:
            await _logged_in(c)
            r = await c.get("/admin/campaigns/report")
            assert r.status_code == 422 and "name a campaign" in r.text
            r = await c.get("/admin/campaigns/report", params={"name": "nope"})
            assert r.status_code == 404 and "no campaign &#39;nope&#39;" in r.text
            r = await c.get("/admin/campaigns/report", params={"domain": "other.test"})
            assert r.status_code == 404
            # A domain with no campaign mail yet: a report of zeros, and its CSV.
            r = await c.get("/admin/campaigns/report", params={"domain": "news.test"})
            assert r.status_code == 200 and "Every campaign of news.test" in r.text
            r = await c.get("/admin/campaigns/report.csv", params={"domain": "news.test"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            assert r.headers["content-disposition"] == \
                'attachment; filename="campaign-all-news.test.csv"'
            assert r.text.splitlines()[-1] == "total,0,0,0,0,0,0,0"
    asyncio.run(run())


def test_suppression_is_removed_only_once_confirmed(admin):  # noqa: F811
    async def run():
        await admin.domains.add("news.test")
        await admin.suppressions.add("news.test", "gone@example.org", campaign="spring")
        async with client(admin) as c:
            csrf = await _logged_in(c)
            entry = {"domain": "news.test", "address": "gone@example.org",
                     "campaign": "spring", "csrf": csrf, "return": "/admin/suppressions"}
            r = await c.post("/admin/suppressions/remove", data=entry)
            assert r.status_code == 303
            assert len((await admin.suppressions.list("news.test")).suppressions) == 1
            # The domain-wide entry is another one: there is none to remove.
            r = await c.get("/admin/suppressions/remove", params={
                "domain": "news.test", "address": "gone@example.org"})
            assert r.status_code == 404 and "is not suppressed for news.test" in r.text
            r = await c.post("/admin/suppressions/remove", data={**entry, "confirm": "yes"})
            assert r.status_code == 303 and r.headers["location"] == "/admin/suppressions"
            assert (await admin.suppressions.list("news.test")).suppressions == []
            assert "Removed gone@example.org" in (await c.get("/admin/suppressions")).text
            # Bad input: the form's page says what is wrong.
            r = await c.post("/admin/suppressions", data={
                "domain": "news.test", "address": "not an address", "csrf": csrf,
                "return": "/admin/suppressions"}, follow_redirects=True)
            assert r.status_code == 200 and 'class="flash error"' in r.text
            r = await c.get("/admin/suppressions", params={"after": "x'"})
            assert r.status_code == 200               # a mangled cursor: the first page
            r = await c.get("/admin/suppressions", params={"address": "bob"})
            assert r.status_code == 200 and "invalid address" in r.text.lower()
            assert 'id="s-address" name="address" value="bob"' in r.text
    asyncio.run(run())


def test_diagnostics_refuses_an_unknown_category(admin):  # noqa: F811
    async def run():
        await admin.domains.add("news.test")
        async with client(admin) as c:
            await _logged_in(c)
            r = await c.get("/admin/domains/news.test/diagnostics", params={"only": "ftp"})
            assert r.status_code == 422 and "ftp" in r.text
    asyncio.run(run())
