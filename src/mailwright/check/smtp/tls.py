"""TLS as a sender meets it: STARTTLS offered (or TLS from the first byte on 465), the
protocol versions accepted — each probed alone with a context pinned to it — and the
cipher negotiated."""

from __future__ import annotations

import asyncio
import ssl
import warnings

from ..findings import Finding, Severity
from .session import LOST, Session, Target, describe_error, open_session, unverified_context

WHY_STARTTLS = ("RFC 3207: without STARTTLS every message and credential crosses the "
                "network in cleartext")
WHY_IMPLICIT = "RFC 8314 §3: port 465 speaks TLS from the first byte"
WHY_OLD = "RFC 8996: TLS 1.0 and 1.1 are deprecated (weak hashes, no AEAD ciphers)"

VERSIONS = (
    # (finding id, label, the version pinned, deprecated)
    ("tls.version.tls1_0", "TLS 1.0", ssl.TLSVersion.TLSv1, True),
    ("tls.version.tls1_1", "TLS 1.1", ssl.TLSVersion.TLSv1_1, True),
    ("tls.version.tls1_2", "TLS 1.2", ssl.TLSVersion.TLSv1_2, False),
    ("tls.version.tls1_3", "TLS 1.3", ssl.TLSVersion.TLSv1_3, False),
)
# OpenSSL errors raised on our side before anything reaches the server: the local
# library cannot speak the version (compiled out, or refused by its configuration).
# (UNSUPPORTED_PROTOCOL is the server's answer: it chose another version.)
LOCAL_REFUSALS = ("NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE")
WEAK_CIPHERS = ("RC4", "DES-CBC3", "3DES", "NULL", "EXP", "MD5", "ANON")


def encryption_findings(target: Target, session: Session,
                        handshake_error: BaseException | None) -> list[Finding]:
    """Whether the session could be encrypted, and with what."""
    if target.implicit_tls:
        # The session exists, so its TLS handshake succeeded (else connecting failed).
        out = [target.finding("tls.implicit", Severity.PASS,
                              f"TLS from the first byte: {session.tls.version()}")]
    elif "STARTTLS" not in session.plain_extensions:
        return [target.finding("tls.starttls", Severity.FAIL, "STARTTLS not offered",
                               WHY_STARTTLS, "configure a certificate and enable STARTTLS")]
    elif handshake_error is not None:
        return [target.finding("tls.starttls", Severity.FAIL,
                               f"STARTTLS offered, handshake failed: "
                               f"{describe_error(handshake_error)}", WHY_STARTTLS,
                               "check the certificate, key and TLS settings of the server")]
    elif session.starttls is None or session.starttls.code != 220:
        return [target.finding("tls.starttls", Severity.FAIL,
                               f"STARTTLS offered, then refused: {session.starttls}",
                               WHY_STARTTLS, "answer STARTTLS with 220")]
    else:
        out = [target.finding("tls.starttls", Severity.PASS,
                              f"STARTTLS offered and working: {session.tls.version()}")]
    out.append(_cipher(target, session.tls))
    return out


def implicit_failed(target: Target, error: BaseException) -> Finding:
    return target.finding("tls.implicit", Severity.FAIL,
                          f"TLS handshake failed: {describe_error(error)}", WHY_IMPLICIT,
                          "serve TLS on this port, or submit on 587 with STARTTLS")


def _cipher(target: Target, tls: ssl.SSLObject) -> Finding:
    name, version, bits = tls.cipher()
    seen = f"{version} {name} ({bits} bits)"
    if bits < 128 or any(weak in name.upper() for weak in WEAK_CIPHERS):
        return target.finding("tls.cipher", Severity.WARN, seen,
                              "RFC 7525 §4.2: RC4, 3DES, NULL, export and < 128-bit ciphers "
                              "are broken", "disable weak ciphers; prefer AEAD suites")
    forward_secret = version == "TLSv1.3" or name.startswith(("ECDHE", "DHE"))
    if not forward_secret:
        return target.finding("tls.cipher", Severity.INFO, seen + ", no forward secrecy",
                              "RFC 7525 §4.2: prefer (EC)DHE key exchange",
                              "prefer ECDHE cipher suites")
    return target.finding("tls.cipher", Severity.PASS, seen)


def pinned_context(version: ssl.TLSVersion) -> ssl.SSLContext | None:
    """A context that speaks only `version`; None when the local OpenSSL cannot. For
    1.0/1.1 the security level is lowered for this probe only: OpenSSL 3 refuses them
    at its default level 1+ (their SHA-1 MAC), which would hide what the server does."""
    ctx = unverified_context()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)    # 1.0/1.1 on purpose
            ctx.minimum_version = version
            ctx.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        return None
    return ctx


async def version_findings(target: Target) -> list[Finding]:
    """One handshake per version, all at once."""
    results = await asyncio.gather(*(_try_version(target, v) for _, _, v, _ in VERSIONS))
    out = []
    accepted = []
    for (id, label, _, deprecated), (outcome, detail) in zip(VERSIONS, results, strict=True):
        if outcome == "untestable":
            out.append(target.finding(id, Severity.INFO,
                                      f"{label} could not be tested: the local OpenSSL "
                                      f"cannot speak it ({detail})"))
        elif outcome == "error":
            out.append(target.finding(id, Severity.INFO,
                                      f"{label} could not be tested: {detail}"))
        elif outcome == "accepted":
            accepted.append(label)
            out.append(target.finding(id, Severity.WARN if deprecated else Severity.PASS,
                                      f"{label} accepted ({detail})",
                                      WHY_OLD if deprecated else "",
                                      f"disable {label} (minimum version TLS 1.2)"
                                      if deprecated else ""))
        elif deprecated:
            out.append(target.finding(id, Severity.PASS, f"{label} refused"))
        else:
            out.append(target.finding(id, Severity.INFO, f"{label} refused ({detail})",
                                      "RFC 8446 (TLS 1.3) and RFC 5246 (TLS 1.2) are the "
                                      "versions current senders speak",
                                      f"enable {label}"))
    if accepted and not {"TLS 1.2", "TLS 1.3"} & set(accepted):
        out.append(target.finding("tls.version.modern", Severity.FAIL,
                                  f"only {', '.join(accepted)} accepted", WHY_OLD,
                                  "enable TLS 1.2 and 1.3"))
    return out


async def _try_version(target: Target, version: ssl.TLSVersion) -> tuple[str, str]:
    """("accepted", cipher) | ("refused", why) | ("untestable", why) | ("error", why)."""
    ctx = pinned_context(version)
    if ctx is None:
        return "untestable", "version not available"
    try:
        session = await open_session(target, tls_context=ctx)
    except ssl.SSLError as e:
        if getattr(e, "reason", "") in LOCAL_REFUSALS and not _alert(e):
            return "untestable", e.reason
        return "refused", getattr(e, "reason", None) or describe_error(e)
    except LOST as e:
        # A server that refuses a version often just closes the connection mid-handshake.
        if isinstance(e, ConnectionError | EOFError) or "EOF" in str(e):
            return "refused", "connection closed during the handshake"
        return "error", describe_error(e)
    except Exception as e:      # Refused greeting / EHLO: not a TLS answer
        return "error", describe_error(e)
    try:
        if session.tls is None:
            return "error", "no TLS session"
        name, _, _ = session.tls.cipher()
        return "accepted", name
    finally:
        await session.drop()


def _alert(e: ssl.SSLError) -> bool:
    """An alert from the server (TLSV1_ALERT_PROTOCOL_VERSION...) is its answer."""
    return "ALERT" in str(getattr(e, "reason", "") or "")
