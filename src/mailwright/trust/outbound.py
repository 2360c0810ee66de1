"""What we add to mail leaving on behalf of our domains: DKIM signatures on mail our
users submit, and an ARC set on mail we forward through an alias."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time

from ..store.base import MailStore
from ..store.blobs import Content, head_of, whole
from . import arc as arc_mod
from . import authresults as ar
from . import dkim as dkim_mod
from .inbound import author_domain
from .keys import signing_keys

log = logging.getLogger(__name__)
# Keys are re-read this often, so `mailwright dkim activate` takes effect in a
# running server without a restart.
KEY_CACHE_SECONDS = 30.0


class OutboundSigner:
    def __init__(self, store: MailStore, authserv_id: str,
                 pool: concurrent.futures.Executor | None = None):
        self.store = store
        self.authserv_id = authserv_id
        self.pool = pool or concurrent.futures.ThreadPoolExecutor(4, "mailwright-sign")
        self._keys: dict[str, tuple[float, list[dkim_mod.SigningKey]]] = {}

    async def keys(self, domain: str) -> list[dkim_mod.SigningKey]:
        now = time.monotonic()
        hit = self._keys.get(domain)
        if hit is None or hit[0] < now:
            hit = self._keys[domain] = (now + KEY_CACHE_SECONDS,
                                        await signing_keys(self.store, domain))
        return hit[1]

    async def signing_domain(self, content: Content, mail_from: str) -> str | None:
        """The From domain when it is ours and has keys (what DMARC aligns with),
        else the MAIL FROM domain when that has keys."""
        fields, _ = ar.split_header(head_of(content))
        author, _ = author_domain(fields)
        for domain in (author, mail_from.rpartition("@")[2].lower() if mail_from else None):
            if domain and await self.store.is_local_domain(domain) and await self.keys(domain):
                return domain
        return None

    async def sign(self, content: Content, mail_from: str) -> bytes:
        """DKIM-Signature fields to prepend (b"" when no local key applies). A spooled
        message is read whole in the signing thread (the body hash needs all of it)."""
        domain = await self.signing_domain(content, mail_from)
        if domain is None:
            return b""
        keys = await self.keys(domain)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.pool, _sign_whole, content, keys)
        except Exception as e:             # a bad key file must not lose the message
            log.error("DKIM signing for %s failed: %s", domain, e)
            return b""

    async def seal(self, content: Content, domains: list[str]) -> bytes:
        """An ARC set for a forward, sealed by the first of the alias domains with an
        RSA key; content must carry our Authentication-Results (with arc=)."""
        for domain in domains:
            key = next((k for k in await self.keys(domain) if k.algorithm == "rsa-sha256"),
                       None)
            if key is None:
                continue
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    self.pool, _seal_whole, content, key, self.authserv_id,
                    int(time.time()))
            except Exception as e:
                log.error("ARC sealing for %s failed: %s", domain, e)
                return b""
        return b""


def _sign_whole(content: Content, keys: list[dkim_mod.SigningKey]) -> bytes:
    return dkim_mod.sign(whole(content), keys)


def _seal_whole(content: Content, key: dkim_mod.SigningKey, authserv_id: str,
                now: int) -> bytes:
    return arc_mod.seal(whole(content), key, authserv_id, now)
