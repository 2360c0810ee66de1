"""FETCH data items (RFC 9051 §6.4.5, §7.5.2; RFC 3516 BINARY; RFC 7162 MODSEQ):
parsing the request and rendering one message's response; ENVELOPE, BODY and
BODYSTRUCTURE rendered from message/'s data once, at delivery (`views`)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import NamedTuple

from ..message.addresses import Address
from ..message.bodyparts import BodyPart, Disposition, Params, describe
from ..message.encoding import is_8bit
from ..message.envelope import AddressField, Envelope, envelope
from ..message.headers import select_fields
from ..message.meta import MessageMeta
from ..message.sections import SectionError, UnknownEncoding, decoded, section
from ..message.structure import Part, parse_structure
from ..store.mailboxes import FetchViews, MessageData
from . import render
from .base import No
from .parser import ParseError, Reader

MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
SIMPLE = {"ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "RFC822", "RFC822.HEADER",
          "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ"}
# Items that mark the message \Seen (RFC 9051 §6.4.5) unless PEEK.
SETS_SEEN = {"RFC822", "RFC822.TEXT"}
# A literal longer than this goes out as the buffer that holds it (a blob, a slice of
# one), not copied into the response around it.
COPY_MAX = 2048


class Literal(NamedTuple):
    """A literal's octets (RFC 9051 §4.3), not yet framed; binary: a literal8
    (RFC 3516 §4.3)."""
    data: bytes | memoryview
    binary: bool = False


@dataclass(frozen=True)
class Item:
    name: str                        # ENVELOPE, BODY[], BINARY[], BINARY.SIZE[] ...
    path: tuple[int, ...] = ()
    text: str = ""                   # HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()
    partial: tuple[int, int] | None = None
    peek: bool = False

    @property
    def sets_seen(self) -> bool:
        return self.name in SETS_SEEN or (self.name in ("BODY[]", "BINARY[]") and not self.peek)

    @property
    def needs_blob(self) -> bool:
        if self.name in ("RFC822", "RFC822.TEXT", "BINARY[]", "BINARY.SIZE[]"):
            return True
        if self.name == "BODY[]":
            # the top-level header is kept with the metadata
            return bool(self.path) or self.text not in ("HEADER", "HEADER.FIELDS",
                                                         "HEADER.FIELDS.NOT")
        return False

    @property
    def whole(self) -> bool:
        """BODY[], BINARY[] or BINARY.SIZE[] of the whole message: the stored octets as
        they are (RFC 3516 §4.2: the top level has no transfer encoding to undo), so
        neither the part tree nor other metadata is read."""
        return self.name in ("BODY[]", "BINARY[]", "BINARY.SIZE[]") and not self.path \
            and not self.text

    @property
    def needs_meta(self) -> bool:
        # RFC822.TEXT (BODY[TEXT]) starts where the stored header ends
        return self.name in ("ENVELOPE", "BODY", "BODYSTRUCTURE", "RFC822.HEADER",
                             "RFC822.TEXT") or (self.name.endswith("[]") and not self.whole)

    @functools.cached_property
    def label(self) -> bytes:
        """The item's name in the response (RFC 9051 §7.5.2: BODY[section]<origin>)."""
        if not self.name.endswith("[]"):
            return self.name.encode()
        section = ".".join(map(str, self.path))
        if self.text:
            section = f"{section}.{self.text}" if section else self.text
        if self.fields:
            section += " (" + " ".join(self.fields) + ")"
        base = self.name[:-2] if self.name != "BINARY.SIZE[]" else "BINARY.SIZE"
        out = f"{base}[{section}]"
        if self.partial is not None and self.name != "BINARY.SIZE[]":
            out += f"<{self.partial[0]}>"
        return out.encode()


def parse_items(r: Reader) -> list[Item]:
    if r.peek() == b"(":
        return r.list_of(lambda: _item(r))
    for macro, names in MACROS.items():
        if r.peek(len(macro) + 1).upper() in (macro.encode(), macro.encode() + b" "):
            r.i += len(macro)
            return [Item(n) for n in names]
    return [_item(r)]


def _item(r: Reader) -> Item:
    start = r.i
    while not r.at_end() and r.peek() not in b" ()[":
        r.i += 1
    name = r.d[start:r.i].decode("ascii", "replace").upper()
    if not name:
        raise ParseError("expected a FETCH item")
    if r.peek() != b"[":
        if name not in SIMPLE:
            raise ParseError(f"unknown FETCH item {name}")
        return Item(name)
    if name not in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        raise ParseError(f"{name} takes no section")
    r.expect(b"[")
    path: list[int] = []
    text = ""
    fields: list[str] = []
    while not r.accept(b"]"):
        if r.peek().isdigit():
            path.append(r.nz_number())
            if r.accept(b"."):
                continue
            r.expect(b"]")
            break
        text = r.atom().upper()
        if text not in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"):
            raise ParseError(f"unknown section {text}")
        if text.startswith("HEADER.FIELDS"):
            r.sp()
            fields = r.list_of(r.astr)
            if not fields:
                raise ParseError("HEADER.FIELDS needs field names")
        r.expect(b"]")
        break
    if name.startswith("BINARY") and text:
        raise ParseError("BINARY takes a part number only")
    if text == "MIME" and not path:
        raise ParseError("MIME needs a part number")
    partial = None
    if name != "BINARY.SIZE" and r.accept(b"<"):     # RFC 3516 §4.2: no partial SIZE
        offset = r.number()
        r.expect(b".")
        partial = (offset, r.nz_number())
        r.expect(b">")
    base = name.split(".")[0] if name != "BINARY.SIZE" else name
    return Item(f"{base}[]", tuple(path), text, tuple(f.upper() for f in fields), partial,
                peek=name.endswith(".PEEK"))


def render_message(seq: int, data: MessageData, items: list[Item], blob: bytes | None,
                   flags: bytes, modseq: int | None, utf8: bool) -> list[bytes | memoryview]:
    """One message's FETCH response as buffers to write in order (writelines): a long
    literal goes out as the buffer holding it (the blob itself for a whole message),
    never copied into the response around it."""
    parts: list[bytes | memoryview] = []
    head = bytearray(b"* %d FETCH (" % seq)
    structure = None
    for n, item in enumerate(items):
        name = item.name
        if name == "UID":
            value = str(data.uid).encode()
        elif name == "FLAGS":
            value = flags
        elif name == "INTERNALDATE":
            value = render.date_time(data.internaldate)
        elif name == "RFC822.SIZE":
            value = str(data.size).encode()
        elif name == "MODSEQ":
            value = b"(%d)" % (modseq if modseq is not None else data.modseq)
        elif name == "ENVELOPE":
            value = data.envelope or b"NIL"
        elif name == "BODY":
            value = data.body or b"NIL"
        elif name == "BODYSTRUCTURE":
            value = data.bodystructure or b"NIL"
        elif name == "RFC822":
            value = Literal(blob or b"")
        elif name == "RFC822.HEADER":
            value = Literal(data.header or b"")
        else:
            if structure is None and not item.whole:
                structure = _structure(data, blob)
            if name == "RFC822.TEXT":                # RFC 9051 §6.4.5: BODY[TEXT]
                value = Literal(memoryview(blob or b"")[structure.body:structure.end])
            else:
                value = _section(item, data, blob, structure)
        if n:
            head += b" "
        head += item.label
        head += b" "
        if isinstance(value, Literal):
            head += render.literal_head(len(value.data), value.binary)
            if len(value.data) > COPY_MAX:
                parts += (bytes(head), value.data)
                head = bytearray()
                continue
            value = value.data
        head += value
    head += b")\r\n"
    parts.append(bytes(head))
    return parts


def _structure(data: MessageData, blob: bytes | None) -> Part:
    """The stored part tree; for a message whose metadata the start-up backfill
    has not computed yet, parsed from the blob here."""
    if data.structure:
        return Part.from_list(json.loads(data.structure))
    if blob is not None:
        return parse_structure(blob)[0]
    return Part(0, 0, data.size)


def _section(item: Item, data: MessageData, blob: bytes | None,
             structure: Part | None) -> bytes | Literal:
    """BODY[...], BINARY[...] and BINARY.SIZE[...] of one message."""
    try:
        if item.whole:
            octets = blob or b""
        elif item.name == "BODY[]":
            octets = _body_section(item, data, blob or b"", structure)
        else:
            octets = decoded(blob or b"", structure, list(item.path))
    except SectionError:
        # RFC 9051 §7.5.2: the section is an nstring; a part that is not there is
        # NIL. BINARY.SIZE takes a number, and there is nothing: 0.
        return b"0" if item.name == "BINARY.SIZE[]" else b"NIL"
    except UnknownEncoding:
        # RFC 9051 §7.5.2 (RFC 3516 §4.2): a CTE we cannot decode fails the command
        raise No("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE") from None
    if item.name == "BINARY.SIZE[]":
        return str(len(octets)).encode()
    if item.partial is not None:
        # RFC 9051 §6.4.5: <origin.length>, counted in the decoded data for BINARY;
        # from beyond the end, the empty string
        start, length = item.partial
        octets = memoryview(octets)[start:start + length]
    # RFC 3516 §4.3: binary-domain data goes out as literal8; 8bit data without
    # NULs as an ordinary string
    return Literal(octets, binary=item.name == "BINARY[]" and not is_8bit(octets))


def _body_section(item: Item, data: MessageData, blob: bytes, structure: Part) -> bytes:
    if not item.path and item.text.startswith("HEADER") and data.header is not None:
        # the top-level header is kept with the metadata: no blob read
        if item.text == "HEADER":
            return data.header
        return select_fields(data.header, list(item.fields), item.text == "HEADER.FIELDS.NOT")
    return section(blob, structure, list(item.path), item.text, list(item.fields))


# --- ENVELOPE, BODY, BODYSTRUCTURE (RFC 9051 §7.5.2) ------------------------------------
def views(data: bytes, meta: MessageMeta) -> FetchViews:
    """The three renderings the store keeps with a message's metadata, so that
    FETCH of them never reads or parses the message (the store is given this
    function by the composition root: it knows no protocol)."""
    body = describe(data, meta.structure)
    return FetchViews(render_envelope(envelope(meta.headers)),
                      render_body(body, extensible=False),
                      render_body(body, extensible=True))


def render_envelope(env: Envelope) -> bytes:
    """Header values as sent (not decoded); Sender and Reply-To, when absent or
    empty, are From."""
    return render.paren([
        render.string(env.date, False),
        render.string(env.subject, False),
        _address_list(env.from_),
        _address_list(env.sender if env.sender is not None else env.from_),
        _address_list(env.reply_to if env.reply_to is not None else env.from_),
        _address_list(env.to),
        _address_list(env.cc),
        _address_list(env.bcc),
        render.string(env.in_reply_to, False),
        render.string(env.message_id, False),
    ])


def _address(a: Address) -> bytes:
    if a.group:
        # group start (NIL NIL name NIL), group end all NIL
        return b"(NIL NIL " + render.string(a.name, False) + b" NIL)"
    return render.paren((render.string(a.name, False), render.string(a.route, False),
                         render.string(a.mailbox, False), render.string(a.host or "", False)))


def _address_list(addresses: AddressField) -> bytes:
    if not addresses:
        return b"NIL"
    return render.paren([_address(a) for a in addresses])


def _params(params: Params) -> bytes:
    items = []
    for key, value in params:
        items += [render.string(key.upper() if key.islower() else key, False),
                  render.string(value, False)]
    return render.paren(items) if items else b"NIL"


def _disposition(disposition: Disposition | None) -> bytes:
    if disposition is None:
        return b"NIL"
    return b"(" + render.string(disposition.kind, False) + b" " + \
        _params(disposition.params) + b")"


def _extension(part: BodyPart) -> list[bytes]:
    """body-ext-1part / body-ext-mpart after the type-specific fields."""
    return [_disposition(part.disposition), render.string(part.language, False),
            render.string(part.location, False)]


def render_body(part: BodyPart, extensible: bool) -> bytes:
    """BODY (extensible=False) or BODYSTRUCTURE of a part."""
    if part.is_multipart:
        kids = b"".join(render_body(c, extensible) for c in part.parts)
        out = [kids, render.string(part.subtype.upper(), False)]
        if extensible:
            out += [_params(part.params), *_extension(part)]
        return b"(" + b" ".join(out) + b")"
    out = [render.string(part.type.upper(), False), render.string(part.subtype.upper(), False),
           _params(part.params), render.string(part.id, False),
           render.string(part.description, False), render.string(part.encoding.upper(), False),
           str(part.size).encode()]
    if part.envelope is not None and part.message is not None:
        out += [render_envelope(part.envelope), render_body(part.message, extensible)]
    if part.lines is not None:
        out.append(str(part.lines).encode())
    if extensible:
        out += [render.string(part.md5, False), *_extension(part)]
    return b"(" + b" ".join(out) + b")"
