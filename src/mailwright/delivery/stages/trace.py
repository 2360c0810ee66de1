"""Stage: trace fields (RFC 5321 §4.4): Received on every copy, Return-Path on those
delivered here."""

from __future__ import annotations

import datetime
import email.utils
import functools
import re

from ...net.connection import TLSInfo
from ..received import ReceivedMessage

_UNSAFE = re.compile(r"[^\x21-\x27\x2a-\x7e\u0080-\U0010ffff]")


class TraceStage:
    def __init__(self, hostname: str):
        self.hostname = hostname

    async def run(self, msg: ReceivedMessage) -> None:
        client, envelope = msg.client, msg.envelope
        recipients = envelope.recipients
        msg.trace = received(
            helo=client.helo, client_ip=client.ip, hostname=self.hostname,
            protocol=protocol_name(client.esmtp, client.tls is not None,
                                   client.account is not None, envelope.smtputf8),
            message_id=msg.id, tls=client.tls,
            recipient=str(recipients[0].address) if len(recipients) == 1 else None,
            timestamp=msg.received_at)
        # RFC 5321 §4.4: the delivery server records the reverse-path at final delivery.
        msg.return_path = return_path(envelope.reverse_path)


def protocol_name(esmtp: bool, tls: bool, authenticated: bool, smtputf8: bool) -> str:
    """WITH protocol: RFC 3848 (ESMTP[S][A]) and RFC 6531 §3.7.3 (UTF8SMTP[S][A])."""
    if not esmtp:
        return "SMTP"
    base = "UTF8SMTP" if smtputf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def received(*, helo: str, client_ip: str, hostname: str, protocol: str, message_id: str,
             tls: TLSInfo | None, recipient: str | None, timestamp: float) -> bytes:
    # The HELO argument is the client's word: keep it printable and short so
    # it can never break the header (no CR/LF, no comment delimiters).
    helo_text = _UNSAFE.sub("?", helo)[:255] or "unknown"
    literal = f"[IPv6:{client_ip}]" if ":" in client_ip else f"[{client_ip}]"
    lines = [f"Received: from {helo_text} ({literal})",
             f"\tby {hostname} (Mailwright) with {protocol} id {message_id}"]
    if tls:
        lines.append(f"\t(using {tls.version} with cipher {tls.cipher} ({tls.bits} bits))")
    # The FOR clause only for a single recipient: naming all would disclose Bcc.
    date = _rfc5322_date(int(timestamp))
    if recipient:
        lines.append(f"\tfor <{recipient}>; {date}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


@functools.lru_cache(maxsize=4)
def _rfc5322_date(second: int) -> str:
    # Formatting a date costs more than the rest of the header; under load
    # many messages share a second.
    return email.utils.format_datetime(datetime.datetime.fromtimestamp(second).astimezone())


def return_path(mail_from: str) -> bytes:
    return f"Return-Path: <{mail_from}>\r\n".encode()
