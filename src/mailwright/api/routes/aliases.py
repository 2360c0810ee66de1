"""/api/v1/aliases: addresses (or "@domain", the catch-all) that forward to targets."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ...store.directory import AliasInfo
from ..auth import Caller, admin_of, managed_address, managed_domain
from ..jsonbody import JsonRoute

router = APIRouter(tags=["Aliases"], route_class=JsonRoute)


class AliasOut(BaseModel):
    source: str = Field(description='an address, or "@domain" for the catch-all')
    targets: list[str]

    @classmethod
    def of(cls, a: AliasInfo) -> AliasOut:
        return cls(source=a.source, targets=list(a.targets))


class AliasIn(BaseModel):
    source: str = Field(min_length=2, max_length=320)
    targets: list[str] = Field(min_length=1, max_length=1000,
                               description="local or remote addresses; added to the "
                                           "alias's targets if it exists")


@router.get("/domains/{domain}/aliases", summary="The domain's aliases")
async def list_aliases(domain: str, request: Request,
                       key: Caller) -> list[AliasOut]:
    admin = admin_of(request)
    name = managed_domain(key, domain)
    await admin.domains.get(name)
    return [AliasOut.of(a) for a in await admin.aliases.list(name)]


@router.post("/aliases", status_code=201, summary="Add an alias, or targets to one")
async def add_alias(body: AliasIn, request: Request,
                    key: Caller) -> AliasOut:
    return AliasOut.of(await admin_of(request).aliases.add(
        managed_address(key, body.source), body.targets))


@router.delete("/aliases/{source}", summary="Remove an alias")
async def remove_alias(source: str, request: Request,
                       key: Caller) -> AliasOut:
    return AliasOut.of(await admin_of(request).aliases.remove(managed_address(key, source)))
