"""Open relay: does the server take mail from a stranger for a stranger?

MAIL FROM an external address, RCPT TO an address at an external domain — plainly and
in the address forms that fooled relay checks of old (percent hack, source route,
quoted local part, bang path) — each followed by RSET. DATA is never sent, so nothing
can be relayed; the RCPT reply is the verdict (RFC 5321 §3.6.2, RFC 2505 §2: a relay
must refuse at RCPT). External names are reserved ones (RFC 2606), never real domains.

A server that accepts any local part at its own name (a catch-all) would also accept
the tricked forms as local mail; a random address at that name tried first tells the
two apart, so a catch-all is reported as inconclusive rather than as a relay.
"""

from __future__ import annotations

import ipaddress
import secrets

from ..findings import Finding, Severity
from .session import LOST, Refused, Session, Target, describe_error, open_session

SENDER = "relay-check@example.org"
EXTERNAL_USER, EXTERNAL_DOMAIN = "relay-check", "example.net"
WHY = ("RFC 5321 §3.6.2 / RFC 2505 §2: an open relay carries anyone's spam and gets "
       "the server blocklisted")
FIX = ("relay only for authenticated users and trusted networks (Postfix: "
       "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
       "reject_unauth_destination)")
MAX_SESSIONS = 3      # reconnections when the server drops us between forms


def forms(local_domain: str) -> list[tuple[str, str]]:
    """(name, RCPT path) for the external recipient, `local_domain` being the server's."""
    user, ext = EXTERNAL_USER, EXTERNAL_DOMAIN
    return [
        ("plain", f"<{user}@{ext}>"),
        ("percent-hack", f"<{user}%{ext}@{local_domain}>"),
        ("source-route", f"<@{local_domain}:{user}@{ext}>"),
        ("quoted-local-part", f'<"{user}@{ext}"@{local_domain}>'),
        ("bang-path", f"<{ext}!{user}@{local_domain}>"),
    ]


def local_domain(target: Target) -> str:
    try:
        return f"[{ipaddress.ip_address(target.expect_name)}]"
    except ValueError:
        return target.expect_name


async def relay_finding(target: Target) -> Finding:
    domain = local_domain(target)
    control = f"<relay-check-{secrets.token_hex(4)}@{domain}>"
    tries = [("catch-all control", control), *forms(domain)]
    replies: dict[str, str] = {}
    accepted: list[str] = []
    temporary: list[str] = []
    session: Session | None = None
    opened = 0
    try:
        for name, path in tries:
            outcome = None
            for _attempt in range(2):      # once more on a new connection if dropped
                if session is None:
                    if opened >= MAX_SESSIONS:
                        break
                    opened += 1
                    session = await open_session(target)
                try:
                    outcome = await _try(session, path)
                    break
                except LOST:
                    session.abort()
                    session = None
            if outcome is None:
                return target.finding("smtp.open-relay", Severity.INFO,
                                      "could not be tested: the server kept dropping the "
                                      f"connection (at the {name} form)")
            if outcome.startswith("MAIL FROM refused: 530"):
                # RFC 4954 §6: authentication required before any transaction.
                return target.finding("smtp.open-relay", Severity.PASS,
                                      f"no mail without authentication: {outcome}")
            if outcome.startswith("MAIL"):
                return target.finding("smtp.open-relay", Severity.INFO,
                                      f"could not be tested: {outcome} (the sender "
                                      f"<{SENDER}>)")
            replies[name] = f"{path}: {outcome}"
            if outcome.startswith("2"):
                accepted.append(name)
            elif outcome.startswith("4"):
                temporary.append(name)
    except (*LOST, Refused) as e:
        return target.finding("smtp.open-relay", Severity.INFO,
                              f"could not be tested: {describe_error(e)}")
    finally:
        if session is not None:
            await session.close()
    return _verdict(target, replies, accepted, temporary)


async def _try(session: Session, path: str) -> str:
    """The RCPT reply to `path` as "code text", or "MAIL ..." when MAIL was refused."""
    conn = session.conn
    mail = await conn.command(f"MAIL FROM:<{SENDER}>")
    if mail.code != 250:
        outcome = f"MAIL FROM refused: {mail}"
    else:
        outcome = str(await conn.command(f"RCPT TO:{path}"))
    await conn.command("RSET")        # RFC 5321 §4.1.1.5: abort, nothing is kept
    return outcome


def _verdict(target: Target, replies: dict[str, str], accepted: list[str],
             temporary: list[str]) -> Finding:
    catch_all = "catch-all control" in accepted
    relayed = [name for name in accepted if name != "catch-all control"]
    shown = "; ".join(replies[name] for name in relayed)
    if "plain" in relayed or (relayed and not catch_all):
        return target.finding("smtp.open-relay", Severity.FAIL,
                              f"open relay: accepted {', '.join(relayed)} ({shown})", WHY, FIX)
    if relayed:
        return target.finding("smtp.open-relay", Severity.WARN,
                              f"inconclusive: {', '.join(relayed)} accepted, but so is any "
                              f"address at the server's own name (a catch-all?): {shown}",
                              WHY, "make sure such mail is delivered locally, never onwards")
    if [name for name in temporary if name != "catch-all control"]:
        return target.finding("smtp.open-relay", Severity.INFO,
                              "inconclusive: temporary refusals (greylisting?): "
                              + "; ".join(replies[name] for name in temporary))
    names = [name for name in replies if name != "catch-all control"]
    return target.finding("smtp.open-relay", Severity.PASS,
                          f"refused relaying in every form ({', '.join(names)})")
