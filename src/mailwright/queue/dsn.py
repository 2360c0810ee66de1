"""Delivery status notifications (RFC 3464) sent back to the envelope sender.

The report is assembled here rather than with email.message: the returned
original must go back byte for byte (8-bit, long header lines and all), and
the email package re-folds and re-encodes what it serialises.
"""

from __future__ import annotations

import email.utils
import secrets
import time
from dataclasses import dataclass

from ..store.queue import QueuedMessage, QueuedRecipient


@dataclass(frozen=True)
class Notice:
    recipient: QueuedRecipient
    action: str          # failed | delayed | delivered | relayed
    reply: str           # "550 5.1.1 user unknown"
    remote: str = ""     # "mx.example.net [192.0.2.1]"


def wanted(recipient: QueuedRecipient, action: str) -> bool:
    """RFC 3461 §4.1: NOTIFY decides; without it, failures (and delays) are reported."""
    notify = (recipient.notify or "FAILURE,DELAY").upper().split(",")
    if "NEVER" in notify:
        return False
    return {"failed": "FAILURE", "delayed": "DELAY",
            "delivered": "SUCCESS", "relayed": "SUCCESS"}[action] in notify


def _status(reply: str) -> str:
    parts = reply.split()
    if len(parts) > 1 and parts[1][:1] in "245" and parts[1].count(".") == 2:
        return parts[1]
    code = parts[0] if parts else "500"
    return {"2": "2.0.0", "4": "4.0.0"}.get(code[:1], "5.0.0")


def build(*, hostname: str, message: QueuedMessage, notices: list[Notice],
          original: bytes, now: float | None = None) -> bytes:
    """The whole DSN message (headers and body), CRLF line ends."""
    now = time.time() if now is None else now
    date = email.utils.formatdate(now, localtime=True)
    failed = any(n.action == "failed" for n in notices)
    delayed = all(n.action == "delayed" for n in notices)
    subject = ("Undelivered Mail Returned to Sender" if failed else
               "Delivery Status Notification (Delay)" if delayed else
               "Delivery Status Notification (Success)")
    boundary = f"=_mailwright_{secrets.token_hex(12)}"
    headers = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{message.mail_from}>",
        f"Subject: {subject}",
        f"Date: {date}",
        f"Message-ID: <{message.message_id}.{secrets.token_hex(4)}.dsn@{hostname}>",
        "Auto-Submitted: auto-replied",                # RFC 3834 §5
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    human = [f"This is the mail system at {hostname}.", ""]
    if failed:
        human.append("Your message could not be delivered to one or more recipients.")
    elif delayed:
        human.append("Your message has not been delivered yet; delivery will be retried.")
    else:
        human.append("Your message was delivered as you asked to be told.")
    human.append("")
    for n in notices:
        human.append(f"<{n.recipient.address}>: {n.action}: {n.reply}"
                     + (f" (from {n.remote})" if n.remote else ""))
    # RFC 3464 §2.2: per-message fields, then one block per recipient.
    status = [f"Reporting-MTA: dns; {hostname}"]
    if message.envid:
        status.append(f"Original-Envelope-Id: {message.envid}")
    status.append(f"Arrival-Date: {email.utils.formatdate(message.created, localtime=True)}")
    for n in notices:
        status.append("")
        if n.recipient.orcpt:
            addr_type, _, original_rcpt = n.recipient.orcpt.partition(";")
            status.append(f"Original-Recipient: {addr_type}; {original_rcpt}")
        status += [f"Final-Recipient: rfc822; {n.recipient.address}",
                   f"Action: {n.action}", f"Status: {_status(n.reply)}"]
        if n.remote:
            status.append(f"Remote-MTA: dns; {n.remote.split()[0]}")
        if n.reply and n.reply[:1].isdigit():
            status.append(f"Diagnostic-Code: smtp; {n.reply}")
        status.append(f"Last-Attempt-Date: {date}")
    # RFC 3461 §4.3: RET=HDRS returns the header only; otherwise the whole message.
    if message.ret == "HDRS":
        end = original.find(b"\r\n\r\n")
        returned_type = "text/rfc822-headers"
        returned = original[:end + 2] if end >= 0 else original
    else:
        returned_type = "message/rfc822"
        returned = original
    if not returned.endswith(b"\r\n"):
        returned += b"\r\n"
    crlf = "\r\n"
    text = (crlf.join(headers) + crlf + crlf
            + f"--{boundary}{crlf}Content-Type: text/plain; charset=utf-8{crlf}{crlf}"
            + crlf.join(human) + crlf + crlf
            + f"--{boundary}{crlf}Content-Type: message/delivery-status{crlf}{crlf}"
            + crlf.join(status) + crlf + crlf
            + f"--{boundary}{crlf}Content-Type: {returned_type}{crlf}{crlf}")
    return (text.encode("utf-8") + returned + f"{crlf}--{boundary}--{crlf}".encode())
