"""The ACME certificate: what is served (status), and issuing one now (renew)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from ..certificates.files import AcmeFiles, CertificateInfo, describe
from ..certificates.issue import IssueError
from ..certificates.renewal import Renewer, renew_after
from .context import Context
from .errors import Invalid, Unavailable


@dataclass(frozen=True)
class CertificateStatus:
    enabled: bool
    directory: str
    names: tuple[str, ...]                  # what the config asks for
    current: CertificateInfo | None         # what data_dir/acme holds
    renew_after: datetime.datetime | None
    days_left: float | None


class Certificates:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.files = AcmeFiles.of(ctx.config.data_dir)

    async def status(self) -> CertificateStatus:
        settings = self.ctx.config.acme
        cert = self.files.read()
        now = datetime.datetime.fromtimestamp(self.ctx.clock(), datetime.UTC)
        info = describe(cert, self.files.cert) if cert else None
        return CertificateStatus(settings.enabled, settings.directory, settings.names, info,
                                 renew_after(cert) if cert else None,
                                 info.days_left(now) if info else None)

    async def renew(self) -> CertificateInfo:
        """Issue now, whatever the current certificate's age. The running server answers
        the CA's HTTP-01 requests from the files this writes, and loads the new
        certificate within [acme] check_interval."""
        settings = self.ctx.config.acme
        if not settings.enabled:
            raise Invalid("ACME is not enabled: set [acme] enabled = true in the config")
        try:
            return await Renewer(settings, self.files, self.ctx.events).renew()
        except IssueError as e:
            raise Unavailable(f"the CA did not issue a certificate: {e}") from None
