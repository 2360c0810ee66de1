"""End-of-data smuggling (CVE-2023-51764/51765/51766, "SMTP smuggling"): does the
server take a sequence other than <CR><LF>.<CR><LF> (RFC 5321 §4.1.1.4) as the end of
a message? A server that does lets a sender hide a second message inside the first.

Found without delivering anything. For each sequence, on a connection of its own:

    MAIL FROM:<>                    (the null sender, which every server accepts)
    RCPT TO:<rcpt>                  (an address the server accepts: the caller's)
    DATA
    X-Mailwright-Check: ... / Subject: ... headers, then lines of "x" until the text
    exceeds the server's advertised SIZE limit by a little (RFC 1870: it must refuse it)
    <the sequence>NOOP<CR><LF>

and then the connection is dropped: the real end of data is never sent, so a server
that is not fooled discards the transaction (RFC 5321 §4.1.1.4). A server that takes
the sequence as the end of data answers at once — and, the message being over its
size limit, refuses it (552) instead of delivering it. An answer before the sequence
is sent, or no SIZE limit to lean on, makes the probe inconclusive rather than risky.
"""

from __future__ import annotations

import asyncio

from ..findings import Finding, Severity
from .extensions import size_limit
from .session import LOST, Refused, Session, Target, describe_error, open_session

SEQUENCES = (
    ("<LF>.<LF>", b"\n.\n"),
    ("<CR>.<CR>", b"\r.\r"),
    ("<LF>.<CR><LF>", b"\n.\r\n"),
    ("<CR><LF>.<LF>", b"\r\n.\n"),
)
HEADER = (b"X-Mailwright-Check: end-of-data (SMTP smuggling) probe; never to be delivered\r\n"
          b"Subject: mailwright check: end-of-data probe, discard\r\n\r\n")
FILLER_LINE = b"x" * 78 + b"\r\n"
OVERSHOOT = 4096                 # octets beyond the limit
MAX_PROBE_SIZE = 64 << 20        # no more than this is ever sent per sequence
EARLY_WAIT = 0.5                 # a reply before the sequence: the server reads no further
ANSWER_WAIT = 5.0                # a reply after it within this: it took it as the end
SIZE_REFUSALS = ("5.3.4", "5.2.3", "4.3.4", "5.2.2")
WHY = ("RFC 5321 §4.1.1.4: only <CR><LF>.<CR><LF> ends the data; accepting another "
       "ending lets a sender smuggle a forged second message (CVE-2023-51764/5/6)")
FIX = ("accept only <CR><LF>.<CR><LF> as end of data (Postfix 3.9+: "
       "smtpd_forbid_bare_newline = normalize or reject)")


async def smuggling_finding(target: Target, rcpt: str) -> Finding:
    if not rcpt:
        return target.finding("smtp.smuggling", Severity.INFO,
                              "not tested: it needs an address this server accepts "
                              "(--rcpt), which is never sent a message")
    results = await asyncio.gather(*(_sequence(target, rcpt, data)
                                     for _, data in SEQUENCES))
    ended = [(name, detail) for (name, _), (verdict, detail) in zip(SEQUENCES, results,
                                                                    strict=True)
             if verdict == "ended"]
    unknown = [(name, detail) for (name, _), (verdict, detail) in zip(SEQUENCES, results,
                                                                      strict=True)
               if verdict == "unknown"]
    if ended:
        return target.finding("smtp.smuggling", Severity.FAIL,
                              "takes " + "; ".join(f"{n} as end of data ({d})" for n, d in ended),
                              WHY, FIX)
    if unknown:
        return target.finding("smtp.smuggling", Severity.INFO,
                              "inconclusive: " + "; ".join(f"{n}: {d}" for n, d in unknown))
    return target.finding("smtp.smuggling", Severity.PASS,
                          "only <CR><LF>.<CR><LF> ends data: "
                          + "; ".join(f"{name} {detail}" for (name, _), (_, detail)
                                      in zip(SEQUENCES, results, strict=True)))


async def _sequence(target: Target, rcpt: str, sequence: bytes) -> tuple[str, str]:
    """("ended" | "not-ended" | "unknown", what happened)."""
    try:
        session = await open_session(target)
    except (*LOST, Refused) as e:
        return "unknown", describe_error(e)
    try:
        return await _probe(session, rcpt, sequence)
    except LOST as e:
        return "unknown", describe_error(e)
    finally:
        await session.drop()          # never QUIT mid-DATA: dropping aborts it


async def _probe(session: Session, rcpt: str, sequence: bytes) -> tuple[str, str]:
    conn = session.conn
    limit = size_limit(session)
    if not limit:
        return "unknown", ("no SIZE limit advertised, so nothing would keep a message "
                           "ended early from being delivered: not tried")
    if limit > MAX_PROBE_SIZE:
        return "unknown", f"SIZE {limit} is more than this probe sends ({MAX_PROBE_SIZE})"
    mail = await conn.command("MAIL FROM:<>")
    if mail.code != 250:
        return "unknown", f"MAIL FROM:<> refused: {mail}"
    recipient = await conn.command(f"RCPT TO:<{rcpt}>")
    if recipient.code not in (250, 251):
        return "unknown", f"RCPT TO:<{rcpt}> refused: {recipient}"
    data = await conn.command("DATA")
    if data.code != 354:
        return "unknown", f"DATA refused: {data}"
    lines = (limit + OVERSHOOT - len(HEADER)) // len(FILLER_LINE) + 1
    conn.writer.write(HEADER)
    chunk = FILLER_LINE * 8192
    for start in range(0, lines, 8192):
        conn.writer.write(chunk if lines - start >= 8192 else FILLER_LINE * (lines - start))
        await asyncio.wait_for(conn.writer.drain(), conn.timeout)
    try:
        early = await conn.read_reply(EARLY_WAIT)
        return "unknown", f"answered before the sequence was sent: {early}"
    except TimeoutError:
        pass                    # still reading the message, as it should
    conn.writer.write(sequence + b"NOOP\r\n")
    await asyncio.wait_for(conn.writer.drain(), conn.timeout)
    try:
        reply = await conn.read_reply(min(conn.timeout, ANSWER_WAIT))
    except TimeoutError:
        return "not-ended", "not taken as end of data"
    except LOST:
        return "not-ended", "refused (connection closed)"
    if 200 <= reply.code < 300:
        return "ended", f"and the over-size message accepted: {reply}"
    if reply.code == 552 or reply.status in SIZE_REFUSALS:
        return "ended", f"answered {reply}"
    return "not-ended", f"refused: {reply}"
