"""Diagnostics (`mailwright check`, GET /api/v1/domains/{domain}/check): the checks
of check/ run on a target an admin names, its arguments checked first (Invalid).

`run` needs no store (the CLI checks any domain or server, with or without a mail
server of its own); `Checks.domain` is the API's: a local domain, whose DKIM
selectors the store knows.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..address import AddressError, canonical_domain
from ..check.dns.base import Options
from ..check.findings import Report
from ..check.run import TIMEOUT, categories_of, check_target
from ..check.target import Target, TargetError, check_port, parse_target
from ..dns import Resolver
from . import validate
from .context import Context
from .errors import Invalid

MAX_TIMEOUT = 300.0


def target(text: str) -> Target:
    try:
        return parse_target(text)
    except TargetError as e:
        raise Invalid(str(e)) from None


def _selector(text: str) -> str:
    """RFC 6376 §3.1: a selector is a dot-separated list of DNS labels."""
    try:
        return canonical_domain(text.strip())
    except AddressError as e:
        raise Invalid(f"invalid DKIM selector {text!r}: {e}") from None


async def run(resolver: Resolver, target_text: str, *, only: Iterable[str] = (),
              selectors: Iterable[str] = (), port: int | None = None,
              timeout: float | None = None, allow_private: bool = False, cafile: str = "",
              https_port: int = 443, rcpt: str = "") -> Report:
    """Check a domain or HOST[:PORT]. cafile / https_port: the CA bundle and HTTPS port
    for MTA-STS policies and certificate checks ([queue] ca_bundle, mta_sts_port);
    rcpt: an address the server accepts, for the smuggling probe."""
    where = target(target_text)
    if rcpt:
        rcpt = str(validate.address(rcpt))
    try:
        categories = categories_of(only)
        if port is not None:
            check_port(port)
    except (TargetError, ValueError) as e:
        raise Invalid(str(e)) from None
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
        raise Invalid(f"invalid timeout {timeout}: seconds, more than 0 and at most "
                      f"{MAX_TIMEOUT:g}")
    options = Options(allow_private=allow_private,
                      selectors=tuple(dict.fromkeys(_selector(s) for s in selectors)),
                      cafile=cafile, https_port=https_port, timeout=timeout or 10.0)
    return await check_target(where, resolver=resolver, options=options,
                              categories=categories, port=port, timeout=timeout or TIMEOUT,
                              rcpt=rcpt)


class Checks:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    async def domain(self, domain: str, *, only: Iterable[str] = (),
                     port: int | None = None, allow_private: bool = False) -> Report:
        """A local domain, with the DKIM selectors it publishes (ours are not among the
        common names a stranger's domain is tried with)."""
        name = await validate.local_domain(self.ctx.store, domain)
        keys = await self.ctx.store.dkim_keys(name)
        queue = self.ctx.config.queue
        return await run(self.ctx.resolver, name, only=only,
                         selectors=[k.selector for k in keys], port=port,
                         allow_private=allow_private, cafile=queue.ca_bundle,
                         https_port=queue.mta_sts_port)
