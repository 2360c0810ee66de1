"""One mail transaction for queued mail over an outbound connection
(mx/connection.py): what to send and what the replies mean.

ESMTP parameters go out only where the peer announced them (SIZE, BODY, SMTPUTF8,
DSN's RET/ENVID/NOTIFY/ORCPT), the content is made fit for the peer (8BITMIME,
line length), and every reply, error and timeout becomes a per-recipient outcome:
delivered, deferred or bounced.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..mx.connection import LOST, OutboundConnection
from ..mx.downgrade import ConversionImpossible, is_8bit, shorten_lines, to_7bit
from ..mx.smtpclient import SMTPConnection
from ..smtpreply import Reply
from ..store.queue import QueuedMessage, QueuedRecipient
from .states import BOUNCED, DEFERRED, DELIVERED


@dataclass(frozen=True)
class Outcome:
    state: str          # delivered | deferred | bounced
    reply: str          # "250 2.0.0 ok" or our own "451 4.4.1 connection failed: ..."
    remote: str = ""    # host [ip] that gave it
    tls: str = ""       # "TLSv1.3 TLS_AES_256_GCM_SHA384" when the connection was encrypted


def _state(code: int) -> str:
    return DELIVERED if code < 400 else DEFERRED if code < 500 else BOUNCED


def _xtext(text: str) -> str:
    """RFC 3461 §4: encode "+", "=" and anything outside 33-126."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}"
                   for c in text)


async def send(connection: OutboundConnection, message: QueuedMessage,
               recipients: list[QueuedRecipient], content: bytes) -> dict[int, Outcome]:
    """One mail transaction: an outcome for each recipient. A connection that could
    not be opened, or is lost now, defers them all (and carries no more mail)."""
    if connection.failure:
        return _deferred(connection, recipients)
    try:
        outcomes = await _transaction(connection.smtp, message, recipients, content,
                                      connection.remote, connection.timeout)
    except LOST as e:
        connection.lost(e, "4.4.2")
        return _deferred(connection, recipients)
    return {rid: dataclasses.replace(o, tls=connection.tls) for rid, o in outcomes.items()}


def _deferred(connection: OutboundConnection,
              recipients: list[QueuedRecipient]) -> dict[int, Outcome]:
    outcome = Outcome(DEFERRED, connection.failure or "", connection.remote)
    return {r.id: outcome for r in recipients}


async def _transaction(conn: SMTPConnection, message: QueuedMessage,
                       recipients: list[QueuedRecipient], content: bytes, remote: str,
                       timeout: float) -> dict[int, Outcome]:
    if message.smtputf8 and not conn.supports("SMTPUTF8"):
        # RFC 6531 §3.2: without SMTPUTF8 at the next hop the message cannot go on.
        bounce = Outcome(BOUNCED, "553 5.6.7 the receiving server does not support SMTPUTF8",
                         remote)
        return {r.id: bounce for r in recipients}
    # RFC 5322 §2.1.1 / RFC 5321 §4.5.3.1.6: no line over 998 octets goes out as it
    # is (sessions re-encode before signing; this catches DSNs and older entries).
    content = shorten_lines(content)
    if not conn.supports("8BITMIME") and is_8bit(content):
        try:
            content = to_7bit(content)
        except ConversionImpossible as e:
            bounce = Outcome(BOUNCED, f"554 5.6.3 the receiving server does not support "
                                      f"8BITMIME and the message cannot be converted: {e}",
                             remote)
            return {r.id: bounce for r in recipients}
    dsn = conn.supports("DSN")
    params = []
    if conn.supports("SIZE"):
        params.append(f"SIZE={len(content)}")
    if message.body == "8BITMIME" and conn.supports("8BITMIME"):
        params.append("BODY=8BITMIME")
    if message.smtputf8:
        params.append("SMTPUTF8")
    if dsn and message.ret:
        params.append(f"RET={message.ret}")
    if dsn and message.envid:
        params.append(f"ENVID={_xtext(message.envid)}")
    lines = [" ".join([f"MAIL FROM:<{message.mail_from}>", *params])]
    for r in recipients:
        rcpt = [f"RCPT TO:<{r.address}>"]
        if dsn and r.notify:
            rcpt.append(f"NOTIFY={r.notify}")
        if dsn and r.orcpt:
            addr_type, _, original = r.orcpt.partition(";")
            rcpt.append(f"ORCPT={addr_type};{_xtext(original)}")
        lines.append(" ".join(rcpt))
    lines.append("DATA")
    encoding = "utf-8" if message.smtputf8 else "ascii"
    if conn.supports("PIPELINING"):
        replies = await conn.pipeline(lines, encoding)      # RFC 2920 §3.1
    else:
        replies = []
        for line in lines:
            replies.append(await conn.command(line, encoding))
            if len(replies) == 1 and replies[0].code >= 300:
                break                                       # MAIL refused: stop here
    mail_reply, rcpt_replies = replies[0], replies[1:len(recipients) + 1]
    data_reply = replies[-1] if len(replies) == len(lines) else None
    if data_reply is not None and data_reply.code == 354 and \
            (mail_reply.code >= 300 or all(r.code >= 300 for r in rcpt_replies)):
        await conn.data(b"", timeout)       # RFC 2920 §3.1: end a DATA nobody can use
        data_reply = None
    if mail_reply.code >= 300:
        await conn.command("RSET")
        outcome = Outcome(_state(mail_reply.code), str(mail_reply), remote)
        return {r.id: outcome for r in recipients}
    outcomes: dict[int, Outcome] = {}
    accepted = []
    for r, reply in zip(recipients, rcpt_replies, strict=True):
        if reply.code < 300:
            accepted.append(r)
        else:
            outcomes[r.id] = Outcome(_state(reply.code), str(reply), remote)
    if not accepted:
        await conn.command("RSET")
        return outcomes
    if data_reply is None or data_reply.code != 354:
        await conn.command("RSET")
        refused = data_reply or Reply(451, "4.3.0", "DATA was not accepted")
        for r in accepted:
            outcomes[r.id] = Outcome(_state(refused.code), str(refused), remote)
        return outcomes
    # RFC 5321 §4.5.3.2.6: wait 10 minutes for the reply to the final ".".
    final = await conn.data(content, max(timeout, 600))
    for r in accepted:
        outcomes[r.id] = Outcome(_state(final.code), str(final), remote)
    return outcomes
