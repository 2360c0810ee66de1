"""VRFY and EXPN (RFC 5321 §3.5): a server that confirms mailboxes or expands lists to
anyone lets spammers harvest addresses. Asked about "postmaster", which every domain
must have (RFC 5321 §4.5.1): a 2xx naming a mailbox means the server answers for any
name. 252 ("cannot verify, will try") and 5xx are the safe answers."""

from __future__ import annotations

from ..findings import Finding
from ..findings import Severity as S
from .session import LOST, Refused, Target, describe_error, open_session

PROBED = "postmaster"
WHY = ("RFC 5321 §7.3: VRFY and EXPN answered to anyone disclose mailboxes and list "
       "members to address harvesters")


async def enumeration_findings(target: Target) -> list[Finding]:
    try:
        session = await open_session(target)
    except (*LOST, Refused) as e:
        return [target.finding(id, S.INFO, f"could not be tested: {describe_error(e)}")
                for id in ("smtp.vrfy", "smtp.expn")]
    out = []
    try:
        for verb, id, fix in (
                ("VRFY", "smtp.vrfy", "answer VRFY with 252 (Postfix: disable_vrfy_command = "
                                      "yes)"),
                ("EXPN", "smtp.expn", "disable EXPN (502) or restrict it to authenticated "
                                      "users")):
            reply = await session.conn.command(f"{verb} {PROBED}")
            if reply.code in (250, 251):
                out.append(target.finding(id, S.WARN, f"{verb} {PROBED}: {reply}", WHY, fix))
            else:
                out.append(target.finding(id, S.PASS, f"{verb} {PROBED}: {reply}"))
    except LOST as e:
        out.append(target.finding("smtp.expn" if out else "smtp.vrfy", S.INFO,
                                  f"could not be tested: {describe_error(e)}"))
        session.abort()
        return out
    await session.close()
    return out
