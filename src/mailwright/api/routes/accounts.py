"""/api/v1/accounts: mail accounts (listed per domain), passwords and quotas."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ...admin.accounts import AccountQuota
from ..auth import Caller, admin_of, managed_address, managed_domain
from ..jsonbody import JsonRoute

router = APIRouter(tags=["Accounts"], route_class=JsonRoute)

MAX_PASSWORD = 1024


class AccountOut(BaseModel):
    address: str


class AccountInfoOut(BaseModel):
    address: str
    created: float
    messages: int
    size: int = Field(description="octets stored")


class AccountIn(BaseModel):
    address: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class PasswordIn(BaseModel):
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class QuotaIn(BaseModel):
    limit: int = Field(ge=0, le=2**53, description="octets; 0 for no limit")


class QuotaOut(BaseModel):
    address: str
    limit: int = Field(description="octets; 0 for no limit (RFC 9208 STORAGE)")
    used: int
    messages: int

    @classmethod
    def of(cls, q: AccountQuota) -> QuotaOut:
        return cls(address=q.address, limit=q.limit, used=q.used, messages=q.messages)


@router.get("/domains/{domain}/accounts", summary="The domain's accounts")
async def list_accounts(domain: str, request: Request,
                        key: Caller) -> list[AccountInfoOut]:
    admin = admin_of(request)
    name = managed_domain(key, domain)
    await admin.domains.get(name)                     # 404 for a domain not ours
    return [AccountInfoOut(address=a.address, created=a.created, messages=a.messages,
                           size=a.size) for a in await admin.accounts.list(name)]


@router.post("/accounts", status_code=201, summary="Add an account",
             description="With the default mailboxes (RFC 6154): INBOX, Drafts, Sent, "
                         "Trash, Junk, Archive.")
async def add_account(body: AccountIn, request: Request,
                      key: Caller) -> AccountOut:
    made = await admin_of(request).accounts.add(managed_address(key, body.address),
                                                 body.password)
    return AccountOut(address=made.address)


@router.put("/accounts/{address}/password", summary="Set an account's password")
async def set_password(address: str, body: PasswordIn, request: Request,
                       key: Caller) -> AccountOut:
    done = await admin_of(request).accounts.set_password(managed_address(key, address),
                                                         body.password)
    return AccountOut(address=done.address)


@router.get("/accounts/{address}/quota", summary="An account's quota and usage")
async def get_quota(address: str, request: Request,
                    key: Caller) -> QuotaOut:
    return QuotaOut.of(await admin_of(request).accounts.quota(managed_address(key, address)))


@router.put("/accounts/{address}/quota", summary="Limit an account's stored mail")
async def set_quota(address: str, body: QuotaIn, request: Request,
                    key: Caller) -> QuotaOut:
    return QuotaOut.of(await admin_of(request).accounts.set_quota(
        managed_address(key, address), body.limit))


@router.delete("/accounts/{address}", summary="Remove an account, its mailboxes and mail")
async def remove_account(address: str, request: Request,
                         key: Caller) -> AccountOut:
    gone = await admin_of(request).accounts.remove(managed_address(key, address))
    return AccountOut(address=gone.address)
