"""Complaints: feedback reports in the Abuse Reporting Format (ARF, RFC 5965) that
mailbox providers' feedback loops send when a recipient marks our user's mail as spam.

A report is a multipart/report with report-type=feedback-report (RFC 5965 §2): a
human-readable part, a message/feedback-report part (§3.1: Feedback-Type, and the
optional Original-Rcpt-To, Original-Mail-From, Reported-Domain), and the reported
message or its header (message/rfc822 or text/rfc822-headers). Who complained is
Original-Rcpt-To, else the reported message's To when it names one mailbox; which of
our domains sent it is the reported message's From domain, else Original-Mail-From's,
else Reported-Domain's. Many feedback loops redact the recipient: such a report names
nobody and suppresses nobody.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

from ..address import AddressError, parse_mailbox

# RFC 5965 §7.3 feedback types that are a complaint about the mail itself (not "virus":
# a report about content, not a wish to receive nothing; not "other").
COMPLAINT_TYPES = frozenset({"abuse", "fraud"})


@dataclass(frozen=True)
class FeedbackReport:
    feedback_type: str               # lowercase, RFC 5965 §3.1 Feedback-Type
    recipients: tuple[str, ...]      # who complained (canonical addresses)
    domains: tuple[str, ...]         # candidate sending domains, most telling first

    @property
    def complaint(self) -> bool:
        return self.feedback_type in COMPLAINT_TYPES


def parse_report(content: bytes) -> FeedbackReport | None:
    """The report a message carries, or None when it is not an ARF report."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    if message.get_content_type() != "multipart/report" or \
            (message.get_param("report-type") or "").lower() != "feedback-report":
        return None
    parts = list(message.iter_parts())
    fields = next((_inner(p) for p in parts
                   if p.get_content_type() == "message/feedback-report"), None)
    if fields is None or not fields.get("Feedback-Type"):
        return None
    original = next((_inner(p) for p in parts if p.get_content_type() in
                     ("message/rfc822", "text/rfc822-headers")), None)
    recipients = [_mailbox(v) for v in fields.get_all("Original-Rcpt-To") or []]
    if not recipients and original is not None:
        to = original.get_all("To") or []
        found = [a.addr_spec for header in to for a in getattr(header, "addresses", ())]
        recipients = [_mailbox(found[0])] if len(found) == 1 else []
    domains = []
    if original is not None:
        domains += [_domain(a.addr_spec) for header in original.get_all("From") or []
                    for a in getattr(header, "addresses", ())]
    domains += [_domain(v) for v in fields.get_all("Original-Mail-From") or []]
    domains += [_domain("x@" + str(v).strip()) for v in fields.get_all("Reported-Domain") or []]
    return FeedbackReport(str(fields["Feedback-Type"]).strip().lower(),
                          tuple(dict.fromkeys(r for r in recipients if r)),
                          tuple(dict.fromkeys(d for d in domains if d)))


def _inner(part: Message) -> Message | None:
    """The fields of a message/* part (the email package parses its body as a message),
    or of a text/rfc822-headers part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload[0] if payload else None
    if isinstance(payload, str):
        return HeaderParser(policy=email.policy.default).parsestr(payload)
    return None


def _mailbox(value: object) -> str | None:
    text = str(value).strip().removeprefix("<").removesuffix(">").strip()
    try:
        return str(parse_mailbox(text))
    except AddressError:
        return None


def _domain(value: object) -> str | None:
    address = _mailbox(value)
    return address.rpartition("@")[2] if address else None
