"""MTA-STS (RFC 8461): a domain's published demand for authenticated TLS.

The TXT record `_mta-sts.<domain>` says a policy exists (and its id); the policy
itself comes over HTTPS from `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
Under `mode: enforce` only MX hosts matching the policy's `mx` patterns are used,
and only over STARTTLS with a certificate valid for the MX host name; a failure
defers the mail, it never falls back to plaintext.

The policy fetch is one HTTPS GET written here rather than with an HTTP library:
it must connect to the address our resolver returned (never the system resolver),
follow no redirects (§3.3) and read at most 64 KB, which is a few lines over
asyncio streams and a hook in any client library.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..dns import DNSError, Resolver

log = logging.getLogger("mailwright.mtasts")

MAX_POLICY = 64 * 1024          # RFC 8461 §3.3
MAX_AGE_LIMIT = 31557600        # RFC 8461 §3.2: max_age at most about a year


@dataclass(frozen=True)
class Policy:
    mode: str                   # enforce | testing | none
    mx: tuple[str, ...]
    max_age: int
    id: str = ""

    def allows(self, host: str) -> bool:
        """RFC 8461 §4.1: exact names, or "*." matching exactly one leftmost label."""
        host = host.lower().rstrip(".")
        for pattern in self.mx:
            pattern = pattern.lower().rstrip(".")
            if pattern.startswith("*."):
                if host.count(".") >= 1 and host.split(".", 1)[1] == pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False


class PolicyError(Exception):
    pass


def parse_policy(text: str) -> Policy:
    """RFC 8461 §3.2: "key: value" lines; version, mode, max_age required."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyError(f"malformed policy line {line!r}")
        fields.setdefault(key.strip().lower(), []).append(value.strip())
    if fields.get("version") != ["STSv1"]:
        raise PolicyError("version is not STSv1")
    mode = (fields.get("mode") or [""])[0]
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"bad mode {mode!r}")
    try:
        max_age = int((fields.get("max_age") or [""])[0])
    except ValueError:
        raise PolicyError("max_age missing or not a number") from None
    mx = tuple(fields.get("mx", []))
    if mode != "none" and not mx:
        raise PolicyError("no mx patterns")
    return Policy(mode, mx, min(max_age, MAX_AGE_LIMIT))


def parse_txt(records: list[str]) -> str | None:
    """The policy id from `v=STSv1; id=...`, None without exactly one such record."""
    found = [r for r in records if r.startswith("v=STSv1")]
    if len(found) != 1:
        return None
    for part in found[0].split(";"):
        key, _, value = part.strip().partition("=")
        if key == "id" and value:
            return value
    return None


class MTASTS:
    def __init__(self, resolver: Resolver, cafile: str = "", port: int = 443,
                 timeout: float = 30.0, clock: Callable[[], float] = time.time):
        self.resolver = resolver
        self.port = port
        self.timeout = timeout
        self.clock = clock
        self.context = ssl.create_default_context(cafile=cafile or None)
        self._cache: dict[str, tuple[Policy, float]] = {}

    async def policy(self, domain: str) -> Policy | None:
        """The domain's policy: cached while valid (RFC 8461 §5.1), refreshed when the
        TXT id changes; a failed refresh keeps the cached one."""
        domain = domain.lower()
        cached = self._cache.get(domain)
        now = self.clock()
        try:
            policy_id = parse_txt(await self.resolver.txt(f"_mta-sts.{domain}"))
        except DNSError:
            policy_id = None
        if cached and cached[1] > now and (policy_id is None or policy_id == cached[0].id):
            return cached[0]
        if policy_id is None:
            return cached[0] if cached and cached[1] > now else None
        try:
            text = await self.fetch(domain)
            fetched = parse_policy(text)
        except (OSError, ssl.SSLError, TimeoutError, PolicyError, DNSError, ValueError) as e:
            log.warning("MTA-STS policy for %s not fetched: %s", domain, e)
            return cached[0] if cached and cached[1] > now else None
        policy = Policy(fetched.mode, fetched.mx, fetched.max_age, policy_id)
        self._cache[domain] = (policy, now + policy.max_age)
        return policy

    async def fetch(self, domain: str) -> str:
        """The policy file's text, uncached (`mailwright check` shows why a fetch
        failed: OSError, ssl.SSLError, TimeoutError, PolicyError, DNSError)."""
        host = f"mta-sts.{domain}"
        addresses = await self.resolver.addresses(host)
        if not addresses:
            raise PolicyError(f"{host} has no address")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            addresses[0], self.port, ssl=self.context, server_hostname=host), self.timeout)
        try:
            # HTTP/1.0: the answer comes whole, no chunked encoding, then the close.
            writer.write(f"GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\n"
                         "User-Agent: Mailwright\r\n\r\n".encode())
            await writer.drain()
            data = b""
            while len(data) <= MAX_POLICY + 8192:
                chunk = await asyncio.wait_for(reader.read(65536), self.timeout)
                if not chunk:
                    break
                data += chunk
        finally:
            writer.close()
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep:
            raise PolicyError("no HTTP response")
        status = head.split(b"\r\n", 1)[0].split()
        if len(status) < 2 or status[1] != b"200":         # §3.3: no redirects
            raise PolicyError(f"HTTP status {b' '.join(status[1:]).decode(errors='replace')}")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(b":") for line in head.split(b"\r\n")[1:])}
        if not headers.get(b"content-type", b"").lower().startswith(b"text/plain"):
            raise PolicyError("policy is not text/plain")
        if len(body) > MAX_POLICY:
            raise PolicyError("policy larger than 64 KB")
        return body.decode("utf-8")
