"""ARC (RFC 8617): validate the chain on mail we receive, seal mail we forward.

dkimpy implements the chain validation (§5.2) and the sealing (§5.1); blocking,
so called from worker threads with a Bridge for the key lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

import dkim as dkimpy

from .dkim import LIBRARY_LOG, MIN_KEY_BITS, SigningKey
from .dnsbridge import Bridge, LookupFailed


@dataclass(frozen=True)
class ARCResult:
    result: str              # none | pass | fail (the cv= of RFC 8617 §4.1.3)
    instances: int = 0       # how many ARC sets the message carries
    domain: str = ""         # d= of the newest ARC-Seal (who vouches last)
    reason: str = ""


def verify(bridge: Bridge, message: bytes) -> ARCResult:
    def lookup(name, timeout=5):
        return bridge.key_record(name.decode() if isinstance(name, bytes) else name)

    try:
        arc = dkimpy.ARC(message, logger=LIBRARY_LOG, minkey=MIN_KEY_BITS)
        cv, results, reason = arc.verify(dnsfunc=lookup)
    except LookupFailed as e:
        return ARCResult("fail", reason=f"key lookup: {e}")
    except dkimpy.DKIMException as e:
        return ARCResult("fail", reason=str(e))
    except Exception as e:               # malformed beyond what dkimpy expects
        return ARCResult("fail", reason=f"malformed ARC set: {e}")
    if cv is None:       # dkimpy: a seal in the chain says cv=fail, the chain is dead
        return ARCResult("fail", len(results), reason=str(reason or ""))
    result = cv.decode().lower() if isinstance(cv, bytes) else str(cv).lower()
    newest = max(results, key=lambda r: r.get("instance", 0), default={})
    domain = newest.get("as-domain", b"")
    return ARCResult(result if result in ("pass", "fail") else "none", len(results),
                     domain.decode() if isinstance(domain, bytes) else str(domain),
                     reason.decode() if isinstance(reason, bytes) else str(reason or ""))


# RFC 8617 §4.1.2: the AMS signs like a DKIM signature; the header set follows
# dkim.SIGNED_HEADERS, minus the oversigning a forwarder has no reason for.
SEALED_HEADERS = (b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to",
                  b"in-reply-to", b"references", b"mime-version", b"content-type",
                  b"content-transfer-encoding")


def seal(message: bytes, key: SigningKey, authserv_id: str, now: int) -> bytes:
    """The ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results) to
    prepend. The message must carry our Authentication-Results with an arc= result:
    that is the cv= the seal records (RFC 8617 §5.1.1). RSA only: RFC 8617 §3.9 has
    no Ed25519 algorithm for ARC yet."""
    present = {name.lower() for name, _ in dkimpy.ARC(message, logger=LIBRARY_LOG).headers}
    include = [h for h in SEALED_HEADERS if h in present]
    fields = dkimpy.arc_sign(message, key.selector.encode(), key.domain.encode(),
                             key.private_key, authserv_id.encode(), include_headers=include,
                             timestamp=str(now), logger=LIBRARY_LOG, linesep=b"\r\n")
    return b"".join(fields)
