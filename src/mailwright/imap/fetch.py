"""FETCH data items (RFC 9051 §6.4.5, §7.5.2; RFC 3516 BINARY; RFC 7162 MODSEQ):
parsing the request and rendering one message's response."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from ..store.mailboxes import MessageData
from . import mime, render
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
    def needs_meta(self) -> bool:
        return self.name in ("ENVELOPE", "BODY", "BODYSTRUCTURE", "RFC822.HEADER") \
            or self.name.endswith("[]")

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
    if r.accept(b"<"):
        offset = r.number()
        r.expect(b".")
        partial = (offset, r.nz_number())
        r.expect(b">")
    base = name.split(".")[0] if name != "BINARY.SIZE" else name
    return Item(f"{base}[]", tuple(path), text, tuple(f.upper() for f in fields), partial,
                peek=name.endswith(".PEEK"))


def render_message(seq: int, data: MessageData, items: list[Item], blob: bytes | None,
                   flags: bytes, modseq: int | None, utf8: bool) -> bytes:
    out = []
    structure = None
    for item in items:
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
            value = render.literal(blob or b"")
        elif name == "RFC822.HEADER":
            value = render.literal(data.header or b"")
        elif name == "RFC822.TEXT":
            header = len(data.header or b"")
            value = render.literal((blob or b"")[header:])
        else:
            if structure is None:
                structure = mime.Part.from_list(json.loads(data.structure)) \
                    if data.structure else mime.Part(0, 0, data.size)
            value = _section(item, data, blob, structure)
        out.append(item.label + b" " + value)
    return b"* %d FETCH (" % seq + b" ".join(out) + b")\r\n"


def _section(item: Item, data: MessageData, blob: bytes | None, structure: mime.Part) -> bytes:
    try:
        if item.name == "BODY[]":
            if not item.path and item.text.startswith("HEADER"):
                octets = data.header or b""
                if item.text != "HEADER":
                    octets = mime.header_fields(octets, list(item.fields),
                                                item.text == "HEADER.FIELDS.NOT")
            else:
                octets = mime.section(blob or b"", structure, list(item.path), item.text,
                                      list(item.fields))
        else:
            part = mime.find_part(structure, list(item.path)) if item.path else structure
            if part.is_multipart or part.is_message and item.path:
                raise mime.SectionError
            raw = (blob or b"")[part.body:part.end]
            octets = mime.decode_transfer(raw, part.encoding)
            if item.name == "BINARY.SIZE[]":
                return str(len(octets)).encode()
    except mime.SectionError:
        if item.name == "BINARY.SIZE[]":
            return b"0"
        return b'""' if item.name == "BODY[]" else b"NIL"
    if item.partial is not None:
        start, length = item.partial
        octets = octets[start:start + length]
    if item.name == "BINARY[]" and b"\x00" in octets:
        return render.literal(octets, binary=True)
    return render.literal(octets)
