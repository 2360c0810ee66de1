"""/api/v1/keys: API keys (admin keys only). A new key's token is in the creation
response and nowhere else, ever."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from ...admin.apikeys import ApiKey
from ..auth import admin_key, admin_of
from ..jsonbody import JsonRoute

router = APIRouter(prefix="/keys", tags=["API keys"], dependencies=[Depends(admin_key)],
                   route_class=JsonRoute)


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="the token's public part: mw_<prefix>_…")
    scope: Literal["admin", "domain-admin", "send"]
    domains: list[str]
    created: float
    last_used: float | None
    revoked: float | None
    campaigns: bool = Field(description="its messages are tracked campaign mail")

    @classmethod
    def of(cls, k: ApiKey) -> KeyOut:
        return cls(id=k.id, name=k.name, prefix=k.prefix, scope=k.scope.value,
                   domains=list(k.domains), created=k.created, last_used=k.last_used,
                   revoked=k.revoked, campaigns=k.campaigns)


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="what the key is for")
    scope: Literal["admin", "domain-admin", "send"]
    domains: list[str] = Field(default=[], max_length=1000,
                               description="the domains a domain-admin or send key covers")
    campaigns: bool = Field(False, description="every message the key sends is campaign "
                            "mail: open and click tracking, one-click unsubscribe")


class KeyCreated(BaseModel):
    key: KeyOut
    token: str = Field(description="the secret: shown in this response only")


@router.get("", summary="List API keys")
async def list_keys(request: Request) -> list[KeyOut]:
    return [KeyOut.of(k) for k in await admin_of(request).api_keys.list()]


@router.post("", status_code=201, summary="Create an API key (its token is shown once)")
async def create_key(body: KeyIn, request: Request) -> KeyCreated:
    made = await admin_of(request).api_keys.create(body.name, body.scope, body.domains,
                                                   body.campaigns)
    return KeyCreated(key=KeyOut.of(made.key), token=made.token)


@router.delete("/{key_id}", summary="Revoke an API key")
async def revoke_key(request: Request, key_id: Annotated[int, Path(ge=1, le=2**62)]
                     ) -> KeyOut:
    return KeyOut.of(await admin_of(request).api_keys.revoke(key_id))
