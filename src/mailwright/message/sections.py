"""Sections of a message by part number (RFC 9051 §6.4.5 section-spec, RFC 3516
§4.2): a part's header, body or MIME header, an encapsulated message's header and
text, a part's body with its transfer encoding undone. Octets cut from the stored
message by the part tree's offsets."""

from __future__ import annotations

from .encoding import KNOWN_ENCODINGS, decode_transfer
from .headers import select_fields
from .structure import Part


class SectionError(Exception):
    """The section does not exist in this message."""


class UnknownEncoding(Exception):
    """The part's Content-Transfer-Encoding is not one we can undo."""


def find_part(root: Part, path: list[int]) -> Part:
    """The part a section-part names (RFC 9051 §6.4.5). A message's parts are
    the parts of its multipart body, or else its body alone as part 1 ("every
    message has at least one part number"); a message/rfc822 part's own number
    is followed by the numbers of the parts of the message it encapsulates. So
    in a message/rfc822 message, 1 is the encapsulated message and 1.1 its first
    part; in a multipart one, 2.1 is the first part of part 2."""
    part, is_message = root, True
    for n in path:
        parts = numbered_parts(part, is_message)
        if not 1 <= n <= len(parts):
            raise SectionError
        part, is_message = parts[n - 1], False
    return part


def numbered_parts(part: Part, is_message: bool) -> list[Part]:
    """The parts numbered below `part`: a message (the top level, or the one a
    message/rfc822 part holds) has at least part 1; a multipart part has its
    body parts; any other part has none."""
    if not is_message and part.is_message:
        part, is_message = part.children[0], True
    if part.is_multipart and part.children:
        return part.children
    return [part] if is_message else []


def section(data: bytes, root: Part, path: list[int], text: str,
            fields: list[str] | None = None) -> bytes:
    """The octets of section path.text (RFC 9051 §6.4.5; text: "", HEADER,
    HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME)."""
    part = find_part(root, path) if path else root
    if text == "":
        # [] is the whole message; [n] a part's body without its MIME header
        return data[part.body:part.end] if path else data
    if text == "MIME":
        # [n.MIME]: the part's own MIME header block, blank line included
        if not path:
            raise SectionError
        return data[part.start:part.body]
    if path:
        # HEADER and TEXT after a part number need a message/rfc822 part: they
        # address the header and body of the message it encapsulates.
        if not part.is_message:
            raise SectionError
        part = part.children[0]
    if text == "TEXT":
        return data[part.body:part.end]
    header = data[part.start:part.body]
    if text == "HEADER":
        return header
    return select_fields(header, fields or [], text == "HEADER.FIELDS.NOT")


def decoded(data: bytes, root: Part, path: list[int]) -> bytes:
    """The part's body with its Content-Transfer-Encoding undone (RFC 3516 §4.2);
    the empty path is the whole message as stored (its header is never encoded).
    Composite parts can only carry an identity encoding (RFC 2045 §6.4), so theirs
    come back as they are."""
    if not path:
        return data
    part = find_part(root, path)
    if part.encoding not in KNOWN_ENCODINGS:
        raise UnknownEncoding(part.encoding)
    return decode_transfer(data[part.body:part.end], part.encoding)
