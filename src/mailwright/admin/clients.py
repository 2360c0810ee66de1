"""The settings a mail client needs for an address of a local domain: this server's
hostname and the client listeners configured (IMAP, POP3, SMTP submission), most
preferred first. Served to clients by public/autoconfig.py (Thunderbird autoconfig,
Outlook autodiscover, an Apple configuration profile); shown by the web admin."""

from __future__ import annotations

from dataclasses import dataclass

from ..trust.records import ClientService, client_services
from . import validate
from .context import Context
from .errors import Invalid


@dataclass(frozen=True)
class ClientSettings:
    domain: str                            # canonical (A-label)
    address: str | None                    # the address asked about, if one was
    hostname: str                          # every service's host: this server
    services: tuple[ClientService, ...]    # most preferred first (trust/records.py)

    def of(self, protocol: str) -> tuple[ClientService, ...]:
        """The services of one protocol (imap, pop3, smtp), most preferred first."""
        return tuple(s for s in self.services if s.protocol == protocol)


class MailClients:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    async def settings(self, *, address: str | None = None,
                       domain: str | None = None) -> ClientSettings:
        """For an address (its domain decides) or a domain; NotFound unless the domain is
        one of ours. Whether the account exists is not asked: these settings are the
        same for every address of the domain, and must not tell who has one."""
        if address is not None:
            parsed = validate.address(address)
            canonical = await validate.local_domain(self.ctx.store, parsed.domain)
            shown: str | None = str(parsed)
        elif domain is not None:
            canonical = await validate.local_domain(self.ctx.store, domain)
            shown = None
        else:
            raise Invalid("give an address or a domain")
        config = self.ctx.config
        return ClientSettings(canonical, shown, config.hostname,
                              tuple(client_services(config)))
