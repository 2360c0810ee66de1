"""Accounts: add, list, change password, set quota, remove."""

from __future__ import annotations

from dataclasses import dataclass

from ..store.directory import AccountInfo
from . import validate
from .context import Context
from .errors import Invalid, NotFound, store_refusals


@dataclass(frozen=True)
class Account:
    address: str           # local part as given, canonical domain


@dataclass(frozen=True)
class AccountQuota:
    """RFC 9208 STORAGE: the limit (0: none) and what the account uses now."""
    address: str
    limit: int             # octets, 0 for no limit
    used: int              # octets stored
    messages: int


class Accounts:
    def __init__(self, ctx: Context):
        self.store = ctx.store

    async def add(self, address: str, password: str) -> Account:
        """A new account with the default mailboxes (RFC 6154 special-use)."""
        a = validate.address(address)
        validate.password(password)
        await validate.existing_domain(self.store, a.domain,
                                 hint=f"add it with: mailwright domain add {a.domain}")
        with store_refusals():                    # exists, or is an alias
            await self.store.add_account(a, password)
        return Account(str(a))

    async def list(self, domain: str | None = None) -> list[AccountInfo]:
        """Accounts with their message count and size, of one domain or all."""
        return await self.store.list_accounts(validate.domain(domain) if domain else None)

    async def set_password(self, address: str, password: str) -> Account:
        a = validate.address(address)
        validate.password(password)
        await validate.existing_account(self.store, a)
        with store_refusals():
            await self.store.set_password(a, password)
        return Account(str(a))

    async def quota(self, address: str) -> AccountQuota:
        """The account's limit and what it uses now."""
        a = validate.address(address)
        account_id = await self.store.account_id(str(a))
        if account_id is None:
            raise NotFound(f"no such account: {a}")
        quota = await self.store.quota(account_id)
        return AccountQuota(str(a), quota.limit, quota.used, quota.messages)

    async def set_quota(self, address: str, limit: int) -> AccountQuota:
        """Limit the account's stored mail to `limit` octets (0: no limit)."""
        if limit < 0:
            raise Invalid(f"a quota is a size in octets (0 for none), not {limit}")
        a = await validate.existing_account(self.store, address)
        with store_refusals():
            await self.store.set_quota(str(a), limit)
        return await self.quota(str(a))

    async def remove(self, address: str) -> Account:
        """The account, its mailboxes and its mail."""
        a = await validate.existing_account(self.store, address)
        with store_refusals():
            await self.store.remove_account(a)
        return Account(str(a))
