"""The [demo] section: on first start, its domain and user are made, with a password
shown once; and, while there is no web admin account, a dev admin `admin` likewise."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ..address import Address
from . import validate
from .admins import Admins
from .context import Context


@dataclass(frozen=True)
class DemoAccount:
    address: Address
    password: str | None   # set only when the account was made now
    admin_password: str | None = None   # the dev web admin's, when made now


DEMO_ADMIN = "admin"


async def ensure_demo(ctx: Context, admins: Admins) -> DemoAccount | None:
    """Create the demo domain and account if missing, and the dev web admin if there is
    no admin at all; None without a [demo] section."""
    demo = ctx.config.demo
    if not (demo.domain and demo.user):
        return None
    address = validate.address(f"{demo.user}@{demo.domain}")
    store = ctx.store
    if not await store.is_local_domain(address.domain):
        await store.add_domain(address.domain)
    admin_password = None
    if not await admins.list():
        admin_password = secrets.token_urlsafe(12)
        await admins.add(DEMO_ADMIN, admin_password)
    if await store.account_id(str(address)) is not None:
        return DemoAccount(address, None, admin_password)
    password = secrets.token_urlsafe(12)
    await store.add_account(address, password)
    return DemoAccount(address, password, admin_password)
