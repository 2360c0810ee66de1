"""Where AUTH is offered: never before TLS (credentials in cleartext), and not on an MX
port at all (it invites password guessing where users never submit)."""

from __future__ import annotations

from ..findings import Finding, Severity
from .session import Session, Target


def auth_findings(target: Target, session: Session) -> list[Finding]:
    plain = session.plain_extensions.get("AUTH") if not target.implicit_tls else None
    after = session.conn.extensions.get("AUTH") if session.tls is not None else None
    out = []
    if plain is not None:
        out.append(target.finding(
            "auth.before-tls", Severity.FAIL, f"AUTH {plain} offered before TLS",
            "RFC 8314 §3 / RFC 4954 §4: a password sent before TLS can be read by anyone "
            "on the path", "offer AUTH only after STARTTLS (Postfix: "
            "smtpd_tls_auth_only = yes)"))
    else:
        out.append(target.finding("auth.before-tls", Severity.PASS,
                                  "AUTH not offered without TLS"))
    offered = plain if plain is not None else after
    if target.role == "mx":
        if offered is not None:
            out.append(target.finding(
                "auth.on-mx", Severity.WARN, f"AUTH {offered} offered on an MX port",
                "RFC 6409 §4 / RFC 8314: users submit on 587 or 465; AUTH on port 25 "
                "invites password guessing", "offer AUTH only on the submission ports"))
        else:
            out.append(target.finding("auth.on-mx", Severity.PASS, "no AUTH on the MX port"))
    elif offered is None:
        out.append(target.finding(
            "auth.submission", Severity.INFO, "no AUTH offered on a submission port",
            "RFC 6409 §4: submission authenticates its users",
            "enable AUTH after TLS on this port"))
    else:
        out.append(target.finding("auth.submission", Severity.PASS,
                                  f"AUTH {offered} offered"
                                  + (" after TLS" if plain is None else "")))
    return out
