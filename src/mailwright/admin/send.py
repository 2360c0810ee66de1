"""Sending a message from one of our domains (the HTTP API's POST /api/v1/messages):
from structured fields or as a raw RFC 5322 message, then exactly the path of an
authenticated SMTP submission: the submission rules (delivery/submission.py) and the
submission pipeline (delivery/assemble.py: trace, relay format, DKIM signing, store
or queue).

Decisions:
- Who sends. The caller is allowed whole domains (an API key: `allowed_domains`; None
  for any local domain). The envelope sender and every From and Sender address must be
  of a local domain among them (RFC 6409 §8.1 leaves the MSA's rules to policy). The
  pipeline sees the envelope sender as the authenticated account (`Client.account`): the
  message is DKIM-signed as for SMTP AUTH, the `accepted` event's `account`, the
  queue's sender and the event log's per-domain retention all name it.
- Raw messages keep their octets: line ends become CRLF (RFC 5322 §2.3), Date and
  Message-ID are added only when missing (RFC 6409 §8.2, §8.3). Their envelope
  recipients are to/cc/bcc, which are then required: never read from the header, so a
  raw message must not carry Bcc (it would show every blind recipient to all).
- Recipients are checked one by one like RCPT: a refused one does not stop the others;
  with none accepted nothing is stored (NoRecipientAccepted, naming each refusal).
- A recipient the sending domain suppresses (delivery/suppression.py) is accepted and
  not sent; its result says so (`suppressed`: the reason), and no bounce follows.
- A campaign (issue 17) is a tag that also turns tracking on: the message is rewritten
  by the submission pipeline's tracking stage (delivery/stages/tracking.py), as SMTP
  mail with an X-Mailwright-Campaign field is.
- The tag goes onto the `accepted` event and stays with queued mail for `delivered`,
  `deferred` and `bounced`; never into the message. (A campaign is a tag: one key for
  event search.)
- Refusals: bad input Invalid, a sender the caller may not use Forbidden, over
  `[limits] max_message_size` TooLarge, a temporary failure of the pipeline (or no
  pipeline: the CLI's Admin) Unavailable.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email import errors as email_errors
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.headerregistry import AddressHeader
from email.parser import HeaderParser

from ..address import Address, AddressError, parse_mailbox
from ..delivery import submission
from ..delivery.assemble import Parts, submission_pipeline
from ..delivery.ids import message_id, session_id
from ..delivery.pipeline import Refusal
from ..delivery.received import Client, Envelope, ReceivedMessage, Recipient
from ..delivery.suppression import lookup_key
from ..events.types import Event
from ..smtp.framing import Problem, TextCheck
from . import validate
from .compose import Fields, Part, compose
from .context import Context
from .errors import Forbidden, Invalid, TooLarge, Unavailable

# Header fields a caller may not give in `headers`, and why.
_RESERVED = {
    "from": "use the from field", "to": "use the to field", "cc": "use the cc field",
    "bcc": "use the bcc field: blind recipients never appear in the header "
           "(RFC 5322 §3.6.3)",
    "resent-bcc": "blind recipients never appear in the header (RFC 5322 §3.6.6)",
    "subject": "use the subject field",
    "date": "it is the time of submission, set when the message is accepted",
    "mime-version": "the MIME structure is built from text, html and attachments",
    "received": "a trace field: each server adds its own (RFC 5321 §4.4)",
    "return-path": "added at final delivery from the envelope sender (RFC 5321 §4.4)",
    "dkim-signature": "the message is signed with the sending domain's key (RFC 6376)",
    "arc-seal": "ARC sets are added by forwarding servers (RFC 8617)",
    "arc-message-signature": "ARC sets are added by forwarding servers (RFC 8617)",
    "arc-authentication-results": "ARC sets are added by forwarding servers (RFC 8617)",
    "authentication-results": "only a receiving server states its results (RFC 8601 §5)",
}
# A raw message is the caller's own, except for what would leak or clash with us.
_RAW_RESERVED = {
    "bcc": ("Bcc", "its recipients would be shown to everyone; put them in bcc "
                   "(RFC 5322 §3.6.3)"),
    "resent-bcc": ("Resent-Bcc", "its recipients would be shown to everyone "
                                 "(RFC 5322 §3.6.6)"),
    "return-path": ("Return-Path", "it is added at final delivery from the envelope "
                                   "sender (RFC 5321 §4.4)"),
}
_FOLD = re.compile(r"\r\n(?=[ \t])")              # RFC 5322 §2.2.3 unfolding
_FIELD_NAME = re.compile(r"[!-9;-~]+")          # RFC 5322 §3.6.8 ftext
_MSG_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")    # RFC 5322 §3.6.4, loosely
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"           # RFC 2045 §5.1 token
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_HEADERS = policy.SMTPUTF8


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str            # type/subtype, e.g. application/pdf (no parameters)
    content_base64: str          # the octets, base64 (RFC 4648 §4); line breaks allowed


@dataclass(frozen=True)
class SendRequest:
    """One message. Either structured fields (from_ required) or `raw`; to/cc/bcc are
    the recipients in both cases ("address" or "Name <address>" each)."""
    from_: str | None = None                     # the From field: one mailbox
    to: Sequence[str] = ()
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()                      # envelope only, never in the header
    subject: str = ""
    text: str | None = None                      # text/plain
    html: str | None = None                      # text/html
    attachments: Sequence[Attachment] = ()
    headers: Mapping[str, str] = field(default_factory=dict)   # further fields
    tag: str | None = None                       # on the events, not in the message
    campaign: str | None = None                  # tracked campaign mail (issue 17): its
    #                                              name is the tag; opens, clicks, unsubscribe
    envelope_from: str | None = None             # MAIL FROM; default: From's address
    raw: bytes | None = None                     # a whole RFC 5322 message instead


@dataclass(frozen=True)
class RecipientResult:
    address: str                 # as the envelope carries it (canonical domain)
    accepted: bool
    status: str                  # RFC 3463: 2.1.5 accepted; 4.x.x / 5.x.x why not
    text: str
    # Accepted but not sent: the sending domain suppresses it (its entry's reason:
    # unsubscribe, bounce, complaint, manual); no bounce follows.
    suppressed: str | None = None


@dataclass(frozen=True)
class SendResult:
    id: str                      # the queue id ("queued as"), on every event of the message
    message_id: str              # its Message-ID field, "<...>"
    size: int                    # octets as submitted (before trace fields and signature)
    recipients: tuple[RecipientResult, ...]


class NoRecipientAccepted(Invalid):
    """Every recipient was refused: nothing was stored. `recipients` says why each."""

    def __init__(self, recipients: Sequence[RecipientResult]):
        self.recipients = tuple(recipients)
        super().__init__("no recipient accepted: " + "; ".join(
            f"{r.address}: {r.status} {r.text}" for r in self.recipients))


@dataclass
class _Built:
    content: bytes
    message_id: str
    authors: list[Address]       # From and Sender addresses
    long_lines: bool = False     # a line over 998 octets: relayed copies are re-encoded


class Sender:
    def __init__(self, ctx: Context, parts: Parts | None):
        self.ctx = ctx
        # The process's shared services (the app's signer, queue wake-up); the CLI has
        # none, and then sending is refused.
        self.pipeline = submission_pipeline(parts) if parts is not None else None

    async def send(self, request: SendRequest, *, client_ip: str,
                   allowed_domains: Collection[str] | None = None,
                   campaigns: bool = False) -> SendResult:
        """campaigns: the caller (an API key made with campaigns) sends campaign mail."""
        if self.pipeline is None:
            raise Unavailable("sending needs a running server's delivery pipeline: use the "
                              "HTTP API (POST /api/v1/messages) or SMTP submission")
        tag = _tag(request.tag)
        campaign = _tag(request.campaign, "campaign")
        if campaign is not None:
            if tag is not None and tag != campaign:
                raise Invalid(f"tag {tag!r} and campaign {campaign!r} differ: a campaign's "
                              f"name is its tag, give one of them")
            tag = campaign
        to = [_mailbox(f"to[{i}]", t) for i, t in enumerate(request.to)]
        cc = [_mailbox(f"cc[{i}]", t) for i, t in enumerate(request.cc)]
        bcc = [_mailbox(f"bcc[{i}]", t) for i, t in enumerate(request.bcc)]
        recipients = _unique(a for _, a in to + cc + bcc)
        if not recipients:
            raise Invalid("no recipients: give at least one address in to, cc or bcc")
        now = self.ctx.clock()
        queue_id = message_id(now)
        # Building and checking the text is CPU work in proportion to the size (about
        # 0.8 s for 24 MB of attachments): in a thread, so the loop serves others.
        built = await asyncio.to_thread(self._build, request, to, cc, now, queue_id)
        mail_from = _mailbox("envelope_from", request.envelope_from)[1] \
            if request.envelope_from else built.authors[0]
        await self._check_senders([mail_from, *built.authors], allowed_domains)

        head = built.content.split(b"\r\n\r\n", 1)[0]
        # RFC 6531 §3.4 / RFC 6532 §3: non-ASCII mailboxes or header fields travel only
        # in SMTPUTF8 transactions.
        smtputf8 = any(a.needs_smtputf8 for a in (mail_from, *recipients)) or not head.isascii()
        size = len(built.content)
        session = session_id()
        results, accepted = await self._resolve(recipients, smtputf8, size, session,
                                                client_ip, str(mail_from))

        # RFC 6152: 8-bit octets anywhere make an 8BITMIME body.
        envelope = Envelope(mail_from, None if built.content.isascii() else "8BITMIME",
                            smtputf8, recipients=accepted, size=size)
        client = Client(session, client_ip, "", True, None, str(mail_from), "submission")
        msg = ReceivedMessage(queue_id, now, envelope, client, built.content,
                              built.long_lines, tag=tag,
                              campaign=campaigns or campaign is not None)
        try:
            await self.pipeline.run(msg)
        except Refusal as refusal:
            kind = Invalid if refusal.permanent else Unavailable
            raise kind(f"not accepted: {refusal.status} {refusal.text}") from None
        return SendResult(queue_id, built.message_id, size,
                          tuple(_suppressed(r, msg.suppressed) for r in results))

    def _build(self, request: SendRequest, to: list[tuple[str, Address]],
               cc: list[tuple[str, Address]], now: float, queue_id: str) -> _Built:
        """The message's octets, within the limits SMTP's DATA applies."""
        limits, hostname = self.ctx.config.limits, self.ctx.config.hostname
        date = email.utils.formatdate(now, localtime=True)
        ours = f"<{queue_id}@{hostname}>"
        if request.raw is not None:
            built = _raw(request, date, ours, limits.max_message_size)
        else:
            built = _structured(request, to, cc, date, ours, limits.max_message_size)
        if len(built.content) > limits.max_message_size:
            raise _too_large(len(built.content), limits.max_message_size)
        built.long_lines = _check_text(built.content, limits.text_line)
        return built

    async def _check_senders(self, senders: list[Address],
                             allowed_domains: Collection[str] | None) -> None:
        allowed = None if allowed_domains is None else \
            frozenset(validate.domain(d) for d in allowed_domains)
        for sender in _unique(senders):
            if refused := await submission.domain_sender(self.ctx.store, sender, allowed):
                raise Forbidden(f"{sender}: {refused.text}")

    async def _resolve(self, recipients: list[Address], smtputf8: bool, size: int,
                       session: str, ip: str, mail_from: str
                       ) -> tuple[list[RecipientResult], list[Recipient]]:
        """Each recipient as RCPT would take it: the results, and the accepted ones with
        their targets; NoRecipientAccepted when there are none. A refused one is a
        "rejected" event, as over SMTP (with its RFC 3463 status: no SMTP code)."""
        results: list[RecipientResult] = []
        accepted: list[Recipient] = []
        for address in recipients:
            targets = await submission.recipient(
                self.ctx.store, address, smtputf8=smtputf8, authenticated=True, size=size,
                count=len(accepted), limit=self.ctx.config.limits.max_recipients,
                campaigns=self.ctx.config.campaigns)
            if isinstance(targets, submission.Refused):
                results.append(RecipientResult(str(address), False, targets.status,
                                               targets.text))
                self.ctx.events.emit(Event.REJECTED, session, status=targets.status,
                                     reason=targets.reason, ip=ip, rcpt=str(address),
                                     mail_from=mail_from)
            else:
                accepted.append(Recipient(address, targets))
                # RFC 3463 X.1.5: destination mailbox address valid.
                results.append(RecipientResult(str(address), True, "2.1.5", "Recipient OK"))
        if not accepted:
            raise NoRecipientAccepted(results)
        return results, accepted


def _suppressed(result: RecipientResult, suppressed: Mapping[str, str]) -> RecipientResult:
    """The result of an accepted recipient the pipeline did not send to (its key in
    ReceivedMessage.suppressed: delivery/stages/suppress.py)."""
    reason = suppressed.get(lookup_key(result.address)) if result.accepted else None
    if reason is None:
        return result
    return replace(result, text=f"Recipient OK; not sent: suppressed ({reason})",
                   suppressed=reason)


def _structured(request: SendRequest, to: list[tuple[str, Address]],
                cc: list[tuple[str, Address]], date: str, ours: str, limit: int) -> _Built:
    if request.from_ is None:
        raise Invalid("from is required (or give the whole message as raw)")
    name, author = _mailbox("from", request.from_)
    _one_line("subject", request.subject)
    extra, given_id, senders = _extra_headers(request.headers)
    attachments = [_attachment(i, a) for i, a in enumerate(request.attachments)]
    # Over the limit before encoding already: refused without building it.
    parts_size = sum(len(p.data) for p in attachments) + \
        len((request.text or "").encode()) + len((request.html or "").encode())
    if parts_size > limit:
        raise _too_large(parts_size, limit)
    authors = [author, *senders]
    message_id_field = given_id or ours
    fields = Fields(_header_address(name, author),
                    [_header_address(n, a) for n, a in to],
                    [_header_address(n, a) for n, a in cc],
                    request.subject, date, message_id_field, extra)
    utf8 = any(a.needs_smtputf8 for a in (*authors, *(a for _, a in to + cc)))
    content = compose(fields, request.text, request.html, attachments, utf8)
    return _Built(content, message_id_field, authors)


def _raw(request: SendRequest, date: str, ours: str, limit: int) -> _Built:
    given = [name for name, present in (
        ("from", request.from_ is not None), ("subject", bool(request.subject)),
        ("text", request.text is not None), ("html", request.html is not None),
        ("attachments", bool(request.attachments)), ("headers", bool(request.headers)))
        if present]
    if given:
        raise Invalid(f"a raw message carries its own header and body: leave out "
                      f"{', '.join(given)}")
    if len(request.raw) > limit:
        raise _too_large(len(request.raw), limit)
    content = _LINE_END.sub(b"\r\n", request.raw)
    if not content.endswith(b"\r\n"):
        content += b"\r\n"            # as every SMTP DATA ends (RFC 5321 §4.1.1.4)
    fields = _raw_fields(content)
    for name, (shown, why) in _RAW_RESERVED.items():
        if name in fields:
            raise Invalid(f"raw: the message must not carry {shown}: {why}")
    froms = fields.get("from", [])
    if len(froms) != 1:
        raise Invalid("raw: the message needs exactly one From field (RFC 5322 §3.6)")
    authors = _field_addresses("raw From", froms[0])
    for value in fields.get("sender", []):
        authors += _field_addresses("raw Sender", value)
    if not authors:
        raise Invalid("raw: the From field names no mailbox")
    added = b""
    if "date" not in fields:
        added += f"Date: {date}\r\n".encode()
    found_id = fields.get("message-id", [""])[0].strip()
    if not found_id:
        added += f"Message-ID: {ours}\r\n".encode()
    return _Built(added + content, found_id or ours, authors)


def _raw_fields(content: bytes) -> dict[str, list[str]]:
    """A raw message's header fields by lowercase name, values unfolded and unparsed
    (each address field is read by _mailboxes, where bad input is refused)."""
    end = content.find(b"\r\n\r\n")
    head = content[:end + 2] if end >= 0 else content
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Invalid(f"raw: the header is neither ASCII nor UTF-8 (RFC 5322 §2.2, RFC 6532 "
                      f"§3): octet {e.start}") from None
    fields: dict[str, list[str]] = {}
    for name, value in HeaderParser(policy=_HEADERS).parsestr(text).raw_items():
        fields.setdefault(name.lower(), []).append(_FOLD.sub("", value))
    return fields


def _mailbox(where: str, text: str) -> tuple[str, Address]:
    """One mailbox as a caller writes it, "address" or "Name <address>": its display
    name and its address in the envelope's form (canonical domain)."""
    if not text.isprintable():
        raise Invalid(f"{where}: {text!r} contains control characters")
    found = _mailboxes(where, text)
    if len(found) != 1:
        raise Invalid(f"{where}: {text!r} is not one mailbox (\"address\" or "
                      f"\"Name <address>\")")
    return found[0]


def _field_addresses(where: str, value: str) -> list[Address]:
    return [address for _, address in _mailboxes(where, value)]


def _mailboxes(where: str, value: str) -> list[tuple[str, Address]]:
    """The mailboxes of an address field (RFC 5322 §3.4): display name and address,
    each a valid envelope address."""
    with _parsing(where, value):
        header = _HEADERS.header_factory("to", value)
    # A non-ASCII local part is not a defect here: it makes an SMTPUTF8 message.
    defects = [d for d in header.defects
               if not isinstance(d, email_errors.NonASCIILocalPartDefect)]
    if defects:
        raise Invalid(f"{where}: {value!r} is not a valid address: {defects[0]}")
    out = []
    for found in header.addresses:
        try:
            out.append((found.display_name, parse_mailbox(found.addr_spec)))
        except AddressError as e:
            raise Invalid(f"{where}: invalid address {found.addr_spec!r}: {e}") from None
    return out


@contextlib.contextmanager
def _parsing(where: str, value: object) -> Iterator[None]:
    """The email package's parser and generator raise assorted errors (IndexError,
    ValueError, HeaderParseError...) on some malformed input: all of them are the
    caller's bad input, said as such."""
    try:
        yield
    except (ValueError, IndexError, TypeError, AttributeError, LookupError,
            email_errors.MessageError) as e:
        raise Invalid(f"{where}: {value!r} cannot be parsed as a header field "
                      f"({e or type(e).__name__})") from None


def _one_line(where: str, value: str) -> None:
    """A header field's text: the email package folds and encodes it, but a line break
    in it would end the field (header injection)."""
    if not value.replace("\t", " ").isprintable():
        raise Invalid(f"{where} contains line breaks or other control characters")


def _unique(addresses: Iterable[Address]) -> list[Address]:
    """Each address once (compared as lookups compare them), as first given."""
    seen: dict[str, Address] = {}
    for a in addresses:
        seen.setdefault(a.key, a)
    return list(seen.values())


def _header_address(name: str, address: Address) -> HeaderAddress:
    return HeaderAddress(display_name=name, username=address.local_part, domain=address.domain)


def _extra_headers(headers: Mapping[str, str]
                   ) -> tuple[list[tuple[str, str]], str | None, list[Address]]:
    """The caller's further fields, checked: (the fields, a Message-ID it gave, the
    addresses of a Sender field, which the sender rules check like From)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    given_id = None
    senders: list[Address] = []
    for name, value in headers.items():
        key = name.lower()
        if not _FIELD_NAME.fullmatch(name):
            raise Invalid(f"headers: {name!r} is not a field name (printable ASCII without "
                          f"spaces or ':', RFC 5322 §3.6.8)")
        if key in seen:
            raise Invalid(f"headers: {name} is given twice")
        seen.add(key)
        if key in _RESERVED or key.startswith("content-"):
            why = _RESERVED.get(key, "the MIME structure is built from text, html and "
                                     "attachments")
            raise Invalid(f"headers: {name} cannot be set: {why}")
        _one_line(f"headers: the value of {name}", value)
        with _parsing(f"headers: {name}", value):
            parsed = _HEADERS.header_factory(name, value)      # as compose will
        if key == "message-id":
            given_id = value.strip()
            if not _MSG_ID.fullmatch(given_id):
                raise Invalid(f"headers: Message-ID {value!r} is not <id@domain> "
                              f"(RFC 5322 §3.6.4)")
            continue
        if isinstance(parsed, AddressHeader):
            # Reply-To, Sender, Resent-*: address lists (RFC 5322 §3.6.2, §3.6.6) of
            # valid mailboxes, not text the email package would write out as it came.
            addresses = _field_addresses(f"headers: {name}", value)
            if key == "sender":
                senders += addresses
        out.append((name, value))
    return out, given_id, senders


def _attachment(i: int, attachment: Attachment) -> Part:
    where = f"attachments[{i}]"
    if not attachment.filename or not attachment.filename.isprintable():
        raise Invalid(f"{where}: the filename must be a name without control characters")
    media = _MEDIA_TYPE.fullmatch(attachment.content_type.strip())
    if media is None:
        raise Invalid(f"{where}: content_type {attachment.content_type!r} is not "
                      f"type/subtype (RFC 2045 §5.1)")
    maintype, subtype = media[1].lower(), media[2].lower()
    if maintype in ("multipart", "message"):
        # RFC 2046 §5.1.1, §5.2.1: their bodies are MIME structure, never base64-encoded.
        raise Invalid(f"{where}: a {maintype}/* attachment would have to be MIME "
                      f"structure, not base64: attach it as application/octet-stream, or "
                      f"send a whole message as raw")
    try:
        data = base64.b64decode("".join(attachment.content_base64.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise Invalid(f"{where}: content_base64 is not base64 (RFC 4648 §4): {e}") from None
    return Part(attachment.filename, maintype, subtype, data)


def _tag(tag: str | None, name: str = "tag") -> str | None:
    return None if tag is None else validate.tag(tag, name)


def _check_text(content: bytes, text_line: int) -> bool:
    """The checks SMTP's DATA makes (smtp/framing.py TextCheck): True when a line is
    over 998 octets, so relayed copies are re-encoded (RFC 5322 §2.1.1)."""
    check = TextCheck(text_line)
    check.feed(content)
    problems = check.finish()
    if Problem.NUL in problems:
        raise Invalid("the message contains NUL characters (RFC 5322 §2.3)")
    if Problem.LONG_LINE in problems:
        raise Invalid(f"the message has a line longer than the limit of {text_line} octets "
                      f"([limits] text_line)")
    return check.long_lines


def _too_large(size: int, limit: int) -> TooLarge:
    return TooLarge(f"the message is {size} octets, over the limit of {limit} "
                    f"([limits] max_message_size)")
