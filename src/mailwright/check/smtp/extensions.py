"""The ESMTP extensions the EHLO reply lists (RFC 5321 §4.1.1.1): all of them as one
finding, and those that matter to senders one by one."""

from __future__ import annotations

from ..findings import Finding, Severity
from .session import Session, Target

# (keyword, id, why it matters) — a missing one is information, not a fault: mail
# still flows, only less efficiently or less widely.
NOTABLE = (
    ("PIPELINING", "smtp.ext.pipelining",
     "RFC 2920: senders send MAIL, RCPT and DATA in one round trip"),
    ("8BITMIME", "smtp.ext.8bitmime",
     "RFC 6152: without it senders must re-encode 8-bit messages"),
    ("SMTPUTF8", "smtp.ext.smtputf8",
     "RFC 6531: internationalised (UTF-8) addresses are refused without it"),
    ("CHUNKING", "smtp.ext.chunking", "RFC 3030: BDAT, binary-clean chunked transfer"),
    ("ENHANCEDSTATUSCODES", "smtp.ext.enhancedstatuscodes",
     "RFC 2034: machine-readable status codes make bounces clearer"),
)
WHY_SIZE = "RFC 1870: senders learn the size limit before sending, not after the data"


def extension_findings(target: Target, session: Session) -> list[Finding]:
    ext = session.conn.extensions
    listed = " ".join(f"{k} {v}".strip() for k, v in ext.items()) or "(none: HELO only)"
    out = [target.finding("smtp.ehlo", Severity.PASS if ext else Severity.WARN,
                          f"EHLO lists {listed}",
                          "RFC 5321 §4.1.1.1: ESMTP servers answer EHLO with their extensions",
                          "" if ext else "support EHLO (ESMTP)")]
    out.append(_size(target, ext))
    for keyword, id, why in NOTABLE:
        if keyword in ext:
            out.append(target.finding(id, Severity.PASS, f"{keyword} advertised"))
        else:
            out.append(target.finding(id, Severity.INFO, f"{keyword} not advertised", why,
                                      f"enable {keyword} if the server supports it"))
    return out


def _size(target: Target, ext: dict[str, str]) -> Finding:
    if "SIZE" not in ext:
        return target.finding("smtp.ext.size", Severity.INFO, "SIZE not advertised", WHY_SIZE,
                              "advertise SIZE with the message size limit")
    value = ext["SIZE"].strip()
    if not value.isdigit():
        # RFC 1870 §4: the parameter is optional; without it the limit is unknown.
        return target.finding("smtp.ext.size", Severity.INFO,
                              f"SIZE advertised without a limit ({value or 'no value'})",
                              WHY_SIZE, "advertise SIZE with the message size limit")
    limit = int(value)
    if limit == 0:
        return target.finding("smtp.ext.size", Severity.INFO,
                              "SIZE 0: no fixed limit declared", WHY_SIZE)
    return target.finding("smtp.ext.size", Severity.PASS,
                          f"SIZE {limit} ({limit / 1024 / 1024:.1f} MiB)")


def size_limit(session: Session) -> int:
    """The advertised fixed size limit in octets; 0 when none is declared."""
    value = session.conn.extensions.get("SIZE", "").strip()
    return int(value) if value.isdigit() else 0
