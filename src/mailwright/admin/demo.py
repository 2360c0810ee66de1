"""The [demo] section: on first start, its domain and user are made, with a password
shown once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ..address import Address
from . import validate
from .context import Context


@dataclass(frozen=True)
class DemoAccount:
    address: Address
    password: str | None   # set only when the account was made now


async def ensure_demo(ctx: Context) -> DemoAccount | None:
    """Create the demo domain and account if missing; None without a [demo] section."""
    demo = ctx.config.demo
    if not (demo.domain and demo.user):
        return None
    address = validate.address(f"{demo.user}@{demo.domain}")
    store = ctx.store
    if not await store.is_local_domain(address.domain):
        await store.add_domain(address.domain)
    if await store.account_id(str(address)) is not None:
        return DemoAccount(address, None)
    password = secrets.token_urlsafe(12)
    await store.add_account(address, password)
    return DemoAccount(address, password)
