"""When to ask the CA, and the housekeeping loop that does it (the primary worker's).

A certificate is renewed once 2/3 of its lifetime has passed: 60 of Let's Encrypt's 90
days, leaving a third of the lifetime to retry in when the CA is down. A missing
certificate, or one that does not name every configured name, is issued at once.
A failed attempt keeps the certificate in use and is tried again at the next check.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable

from cryptography import x509

from ..config import AcmeSettings
from ..events.log import EventLog
from ..events.types import Event
from .files import AcmeFiles, CertificateInfo, describe, dns_names
from .issue import IssueError, issue

log = logging.getLogger("mailwright")

RENEW_AT = 2 / 3        # of the lifetime


def renew_after(cert: x509.Certificate) -> datetime.datetime:
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_before_utc + lifetime * RENEW_AT


def reason_to_issue(cert: x509.Certificate | None, names: tuple[str, ...],
                    now: datetime.datetime) -> str | None:
    """Why a certificate must be (re)issued now: "missing", "names", "renewal"; None if
    the current one is good for now."""
    if cert is None:
        return "missing"
    if not set(names) <= set(dns_names(cert)):
        return "names"
    if now >= renew_after(cert):
        return "renewal"
    return None


class Renewer:
    """Issues and renews the certificate in data_dir/acme; `installed` is called after
    new files are written (app.py: load them into the serving TLS contexts)."""

    def __init__(self, settings: AcmeSettings, files: AcmeFiles, events: EventLog,
                 installed: Callable[[], object] = lambda: None,
                 clock: Callable[[], datetime.datetime] = (
                     lambda: datetime.datetime.now(datetime.UTC))):
        self.settings = settings
        self.files = files
        self.events = events
        self.installed = installed
        self.clock = clock

    async def check(self) -> CertificateInfo | None:
        """Issue if due; the new certificate, or None if none was needed."""
        reason = reason_to_issue(self.files.read(), self.settings.names, self.clock())
        return await self.renew(reason) if reason else None

    async def renew(self, reason: str = "forced") -> CertificateInfo:
        """Issue now, write the files, tell the server. Raises IssueError after
        emitting certificate-renewal-failed (the files in place are left alone)."""
        names = " ".join(self.settings.names)
        log.info("requesting a certificate for %s from %s (%s)", names,
                 self.settings.directory, reason)
        try:
            issued = await asyncio.to_thread(issue, self.settings, self.files)
        except IssueError as e:
            kept = self.files.read()
            self.events.emit(Event.CERTIFICATE_RENEWAL_FAILED, names=names, reason=reason,
                             error=str(e), directory=self.settings.directory,
                             kept_until=kept.not_valid_after_utc.isoformat() if kept else None)
            log.error("certificate for %s not issued: %s", names, e)
            raise
        await asyncio.to_thread(self.files.write, issued.fullchain_pem, issued.key_pem)
        info = describe(x509.load_pem_x509_certificate(issued.fullchain_pem), self.files.cert)
        self.events.emit(Event.CERTIFICATE_ISSUED, names=" ".join(info.names), reason=reason,
                         issuer=info.issuer, serial=info.serial,
                         not_after=info.not_after.isoformat())
        log.info("certificate for %s issued by %s, valid until %s", names, info.issuer,
                 info.not_after.isoformat())
        self.installed()
        return info

    async def run(self) -> None:
        """Check now, then every check_interval seconds, until cancelled."""
        while True:
            try:
                await self.check()
            except IssueError:
                pass                    # emitted and logged; tried again next time
            except Exception:
                log.exception("certificate renewal check failed")
            await asyncio.sleep(self.settings.check_interval)
