"""/api/v1/domains/{domain}/dkim: DKIM key sets. Rotation is generate (published, not
signing), then activate once the records have propagated, then delete the old set
once mail signed with it has arrived."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ...admin.dkim import KeySet
from ...store.directory import DKIMKeyInfo
from ..auth import Caller, admin_of, managed_domain
from ..jsonbody import JsonRoute

router = APIRouter(prefix="/domains/{domain}/dkim", tags=["DKIM keys"], route_class=JsonRoute)


class DkimKeyOut(BaseModel):
    name: str = Field(description="the key set")
    selector: str
    algorithm: str = Field(description="rsa-sha256 | ed25519-sha256")
    txt: str = Field(description="the TXT record at <selector>._domainkey.<domain>")
    active: bool = Field(description="mail from the domain is signed with it")
    created: float

    @classmethod
    def of(cls, k: DKIMKeyInfo) -> DkimKeyOut:
        return cls(name=k.name, selector=k.selector, algorithm=k.algorithm, txt=k.txt,
                   active=k.active, created=k.created)


class KeySetOut(BaseModel):
    domain: str
    name: str
    active: bool
    keys: list[DkimKeyOut]

    @classmethod
    def of(cls, s: KeySet) -> KeySetOut:
        return cls(domain=s.domain, name=s.name, active=s.active,
                   keys=[DkimKeyOut.of(k) for k in s.keys])


class GenerateIn(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=50,
                             description="key set name (default mwYYYYMM); selectors "
                                         "<name>-rsa and <name>-ed25519")


@router.get("", summary="The domain's DKIM keys")
async def list_keys(domain: str, request: Request,
                    key: Caller) -> list[DkimKeyOut]:
    return [DkimKeyOut.of(k) for k in await admin_of(request).dkim.list(
        managed_domain(key, domain))]


@router.post("", status_code=201, summary="Generate a key set (RSA-2048 and Ed25519)",
             description="It signs at once if the domain has no signing set; otherwise it "
                         "is only published until activated (rotation).")
async def generate(domain: str, request: Request, key: Caller,
                   body: GenerateIn | None = None) -> KeySetOut:
    made = await admin_of(request).dkim.generate(managed_domain(key, domain),
                                                 body.name if body else None)
    return KeySetOut.of(made)


@router.post("/{name}/activate", summary="Sign with this key set from now on")
async def activate(domain: str, name: str, request: Request,
                   key: Caller) -> KeySetOut:
    return KeySetOut.of(await admin_of(request).dkim.activate(managed_domain(key, domain),
                                                              name))


@router.delete("/{name}", summary="Retire a key set that no longer signs")
async def retire(domain: str, name: str, request: Request,
                 key: Caller) -> KeySetOut:
    return KeySetOut.of(await admin_of(request).dkim.retire(managed_domain(key, domain), name))
