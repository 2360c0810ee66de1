"""DKIM (RFC 6376; Ed25519 by RFC 8463): verify every signature of a message, and sign.

dkimpy does the canonicalisation and the cryptography. Both are blocking
(pure-Python canonicalisation, RSA arithmetic): call these functions from a
worker thread, with a Bridge for the key lookups.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dkim as dkimpy
from dkim.util import InvalidTagValueList, parse_tag_value

from .dnsbridge import Bridge, LookupFailed

# RFC 8301 §3.2: verifiers must not accept RSA keys under 1024 bits.
MIN_KEY_BITS = 1024
# RFC 6376 §5.4.1 recommends these; From is signed once more than it occurs
# ("oversigning", §8.15) so no second From can be added without breaking the
# signature, and the unsubscribe headers so a list cannot be silently redirected.
SIGNED_HEADERS = (
    b"from", b"from", b"reply-to", b"subject", b"date", b"to", b"cc", b"message-id",
    b"in-reply-to", b"references", b"mime-version", b"content-type",
    b"content-transfer-encoding", b"list-unsubscribe", b"list-unsubscribe-post",
)
# At most this many signatures are checked per message (a bound on the work a
# sender can make us do; RFC 6376 §6.1 allows limiting it).
MAX_SIGNATURES = 10

# dkimpy logs every verification problem at error level; our results carry them.
LIBRARY_LOG = logging.getLogger("mailwright.dkim")
LIBRARY_LOG.addHandler(logging.NullHandler())
LIBRARY_LOG.propagate = False


@dataclass(frozen=True)
class DKIMResult:
    result: str            # pass | fail | neutral | temperror | permerror (RFC 8601 §2.7.1)
    domain: str = ""       # d=
    selector: str = ""     # s=
    algorithm: str = ""    # a=
    b: str = ""            # the start of b=, to tell signatures apart (RFC 6008)
    reason: str = ""


def _key_record(bridge: Bridge, domain: str, selector: str) -> bytes:
    """The key record at selector._domainkey.domain (RFC 6376 §3.6.2.1). Raises
    LookupFailed (temperror) or KeyFormatError (permerror: none, or several)."""
    record = bridge.key_record(f"{selector}._domainkey.{domain}")
    if not record:
        raise dkimpy.KeyFormatError("no key record, or several")
    return record


def verify(bridge: Bridge, message: bytes) -> list[DKIMResult]:
    """One result per DKIM-Signature header field, topmost first; [] when unsigned."""
    try:
        d = dkimpy.DKIM(message, logger=LIBRARY_LOG, minkey=MIN_KEY_BITS)
    except dkimpy.MessageFormatError as e:
        return [DKIMResult("permerror", reason=f"message: {e}")]
    headers = [v for n, v in d.headers if n.lower() == b"dkim-signature"]
    results = []
    for idx, value in enumerate(headers[:MAX_SIGNATURES]):
        try:
            tags = parse_tag_value(value)
        except InvalidTagValueList as e:
            results.append(DKIMResult("permerror", reason=f"malformed signature: {e}"))
            continue
        facts = {k: _text(tags.get(k.encode())) for k in ("d", "s", "a", "b")}
        facts["b"] = "".join(facts["b"].split())[:8]
        if facts["a"].lower() == "rsa-sha1":
            # RFC 8301 §3.1: verifiers must not consider rsa-sha1 signatures valid.
            results.append(DKIMResult("permerror", facts["d"].lower(), facts["s"], facts["a"],
                                      facts["b"], "rsa-sha1 is not accepted (RFC 8301)"))
            continue
        result, reason = _verify_one(bridge, d, idx, tags, facts)
        results.append(DKIMResult(result, facts["d"].lower(), facts["s"], facts["a"],
                                  facts["b"], reason))
    return results


def _verify_one(bridge: Bridge, d: dkimpy.DKIM, idx: int, tags: dict,
                facts: dict) -> tuple[str, str]:
    # dkimpy's verify() folds every problem into False or one exception type; the
    # tag and key checks are made here first, so that a broken signature or key
    # record is permerror, an unreachable one temperror, and a mismatch fail.
    try:
        dkimpy.validate_signature_fields(tags)
        record = _key_record(bridge, facts["d"], facts["s"])
        dkimpy.evaluate_pk(f"{facts['s']}._domainkey.{facts['d']}".encode(), record)
    except LookupFailed as e:
        return "temperror", f"key lookup: {e}"
    except Exception as e:                  # dkimpy raises more than DKIMException here
        return "permerror", str(e) or e.__class__.__name__
    try:
        ok = d.verify(idx, dnsfunc=lambda name, timeout=5: record)
    except dkimpy.DKIMException as e:       # e.g. body hash mismatch (RFC 6376 §6.1.3)
        return "fail", str(e)
    except Exception as e:                  # a library bug must not lose the message
        return "temperror", f"internal: {e}"
    return ("pass", "") if ok else ("fail", "signature did not verify")


def _text(value: bytes | None) -> str:
    return value.decode("ascii", "replace").strip() if value else ""


@dataclass(frozen=True)
class SigningKey:
    domain: str
    selector: str
    algorithm: str         # rsa-sha256 | ed25519-sha256
    private_key: bytes     # PEM (RSA) or base64 seed (Ed25519), as dkimpy takes them


def sign(message: bytes, keys: list[SigningKey]) -> bytes:
    """The DKIM-Signature header fields to prepend, one per key, relaxed/relaxed
    (RFC 6376 §3.4.2/§3.4.4: survives the re-folding and trailing-space changes
    of forwarders). Blocking."""
    out = b""
    for key in keys:
        out += dkimpy.sign(message, key.selector.encode(), key.domain.encode(),
                           key.private_key, canonicalize=(b"relaxed", b"relaxed"),
                           include_headers=list(SIGNED_HEADERS),
                           signature_algorithm=key.algorithm.encode(),
                           logger=LIBRARY_LOG, linesep=b"\r\n")
    return out
