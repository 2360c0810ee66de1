"""What each part of a message is (RFC 2045 §5-§8, RFC 2183, RFC 3282, RFC 2557,
RFC 1864): its type and parameters, identification, transfer encoding, size, lines
and disposition, an encapsulated message's envelope. The data behind IMAP's BODY
and BODYSTRUCTURE (RFC 9051 §7.5.2), and behind any list of attachments."""

from __future__ import annotations

from dataclasses import dataclass, field

from .envelope import Envelope, envelope
from .headers import Headers
from .structure import Part, body_lines, part_headers

Params = list[tuple[str, str]]
# RFC 2045 §5.2: a part without Content-Type is text/plain; charset=us-ascii
DEFAULT_PARAMS: Params = [("charset", "US-ASCII")]


@dataclass(slots=True)
class Disposition:
    kind: str                          # inline, attachment, ... (RFC 2183 §2)
    params: Params


@dataclass(slots=True)
class BodyPart:
    type: str                          # lowercase, e.g. "text"
    subtype: str                       # lowercase, e.g. "plain"
    params: Params                     # Content-Type parameters, names lowercased
    id: str | None = None              # Content-ID (RFC 2045 §7)
    description: str | None = None     # Content-Description (RFC 2045 §8)
    encoding: str = "7bit"             # Content-Transfer-Encoding (RFC 2045 §6)
    size: int = 0                      # octets of the body, as encoded
    lines: int | None = None           # text/* and message/rfc822 parts
    md5: str | None = None             # Content-MD5 (RFC 1864)
    disposition: Disposition | None = None
    language: str | None = None        # Content-Language (RFC 3282)
    location: str | None = None        # Content-Location (RFC 2557)
    envelope: Envelope | None = None   # message/rfc822: the encapsulated message's
    message: BodyPart | None = None    # ... envelope and body
    parts: list[BodyPart] = field(default_factory=list)   # multipart: its body parts

    @property
    def is_multipart(self) -> bool:
        return bool(self.parts)


def _disposition(headers: Headers) -> Disposition | None:
    value = headers.get("Content-Disposition")
    if not value:
        return None
    return Disposition(str(value).split(";")[0].strip(), headers.params("content-disposition"))


def describe(data: bytes, part: Part) -> BodyPart:
    headers = part_headers(data, part)
    main, _, sub = part.ctype.partition("/")
    extension = {"disposition": _disposition(headers),
                 "language": headers.value("Content-Language"),
                 "location": headers.value("Content-Location")}
    if part.is_multipart and part.children:
        return BodyPart(main, sub, headers.params("content-type"),
                        parts=[describe(data, c) for c in part.children], **extension)
    if part.is_multipart:                      # no boundary or no parts: RFC 2046 §5.1.7
        main, sub = "text", "plain"
    out = BodyPart(main, sub,
                   headers.params("content-type") if headers.get("Content-Type")
                   else list(DEFAULT_PARAMS),
                   id=headers.value("Content-ID"),
                   description=headers.value("Content-Description"),
                   encoding=part.encoding, size=part.end - part.body,
                   md5=headers.value("Content-MD5"), **extension)
    if part.is_message:
        inner = part.children[0]
        out.envelope = envelope(part_headers(data, inner))
        out.message = describe(data, inner)
        out.lines = body_lines(data, part)
    elif main == "text":
        out.lines = body_lines(data, part)
    return out
