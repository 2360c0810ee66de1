"""/api/v1/domains: local domains and the DNS records each should publish, with a live
check of what it does publish (through the configured resolver)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from ...admin.domains import Domain
from ..auth import Manager, admin_key, admin_of, managed_domain
from ..jsonbody import JsonRoute

router = APIRouter(prefix="/domains", tags=["Domains"], route_class=JsonRoute)


class DomainOut(BaseModel):
    name: str = Field(description="canonical: lowercase A-label (RFC 5890)")
    display: str = Field(description="as people read it (U-labels)")

    @classmethod
    def of(cls, d: Domain) -> DomainOut:
        return cls(name=d.name, display=d.display)


class DomainIn(BaseModel):
    name: str = Field(min_length=1, max_length=253)


class RecordOut(BaseModel):
    name: str
    type: str
    value: str
    purpose: str


class DnsRecordsOut(BaseModel):
    domain: str
    hostname: str = Field(description="this server: the MX target and its PTR name")
    records: list[RecordOut]
    mta_sts_policy: str = Field(description="served at https://mta-sts.<domain>/"
                                            ".well-known/mta-sts.txt")


class FindingOut(BaseModel):
    status: str = Field(description="found | missing | wrong | error | warn | info (an "
                                    "optional record not published)")
    what: str
    detail: str


class DnsCheckOut(BaseModel):
    domain: str
    ok: bool = Field(description="no record missing or wrong, and DNS answered")
    findings: list[FindingOut]


@router.get("", summary="List local domains (a domain-admin key sees its own)")
async def list_domains(request: Request, key: Manager) -> list[DomainOut]:
    return [DomainOut.of(d) for d in await admin_of(request).domains.list()
            if key.may_manage(d.name)]


@router.post("", status_code=201, summary="Add a local domain",
             dependencies=[Depends(admin_key)])
async def add_domain(body: DomainIn, request: Request) -> DomainOut:
    return DomainOut.of(await admin_of(request).domains.add(body.name))


@router.get("/{domain}", summary="One local domain")
async def get_domain(domain: str, request: Request,
                     key: Manager) -> DomainOut:
    return DomainOut.of(await admin_of(request).domains.get(managed_domain(key, domain)))


@router.delete("/{domain}", summary="Remove a local domain",
               description="Refused (409) while it has accounts or aliases, unless force: "
                           "then its accounts, their mail and its aliases go too.",
               dependencies=[Depends(admin_key)])
async def remove_domain(domain: str, request: Request,
                        force: Annotated[bool, Query()] = False) -> DomainOut:
    return DomainOut.of(await admin_of(request).domains.remove(domain, force=force))


@router.get("/{domain}/dns", summary="The DNS records the domain should publish")
async def dns_records(domain: str, request: Request,
                      key: Manager) -> DnsRecordsOut:
    r = await admin_of(request).dns.records(managed_domain(key, domain))
    return DnsRecordsOut(domain=r.domain, hostname=r.hostname,
                         records=[RecordOut(name=x.name, type=x.type, value=x.value,
                                            purpose=x.purpose) for x in r.records],
                         mta_sts_policy=r.mta_sts_policy)


@router.get("/{domain}/dns/check", summary="Resolve each record: found, missing or wrong")
async def dns_check(domain: str, request: Request,
                    key: Manager) -> DnsCheckOut:
    report = await admin_of(request).dns.check(managed_domain(key, domain))
    return DnsCheckOut(domain=report.domain, ok=not report.failed,
                       findings=[FindingOut(status=f.status, what=f.what, detail=f.detail)
                                 for f in report.findings])
