"""The text of a message's body, for full-text search: the text/* leaves with their
transfer encoding and charset undone, HTML reduced to text, up to a budget."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

from .encoding import decode_transfer
from .structure import Part, part_headers

MAX_TEXT = 256 * 1024     # decoded characters per message kept for the full-text index
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)


def text_size(root: Part, budget: int = MAX_TEXT) -> int:
    """At least as many characters as body_text gives, without decoding anything: the
    encoded octets of the text/* leaves up to the budget, and the line breaks that
    join them (a transfer encoding or a multi-octet charset only makes a text
    shorter; HTML loses its tags)."""
    sizes = list(_text_leaves(root))
    return min(budget, sum(sizes)) + max(len(sizes) - 1, 0)


def _text_leaves(part: Part) -> Iterator[int]:
    """The encoded size of every text/* leaf, in order."""
    if part.children:
        for child in part.children:
            yield from _text_leaves(child)
    elif part.ctype.startswith("text/"):
        yield part.end - part.body


def body_text(data: bytes, root: Part, budget: int = MAX_TEXT) -> str:
    out: list[str] = []
    _text_of(data, root, out, [budget])
    return "\n".join(out)


def _charset_text(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


def _text_of(data: bytes, part: Part, out: list[str], budget: list[int]) -> None:
    if budget[0] <= 0:
        return
    if part.children:
        for child in part.children:
            _text_of(data, child, out, budget)
        return
    if not part.ctype.startswith("text/"):
        return
    headers = part_headers(data, part)
    # Only the encoded octets that can give budget*4 decoded ones (quoted-printable
    # takes at most 3 each, with soft breaks): not a copy of a whole large part.
    encoded = data[part.body:min(part.end, part.body + budget[0] * 16)]
    raw = decode_transfer(encoded, part.encoding)
    text = _charset_text(raw[:budget[0] * 4], headers.get_content_charset())
    if part.ctype == "text/html":
        text = html.unescape(_TAGS.sub(" ", text))
    text = text[:budget[0]]
    budget[0] -= len(text)
    out.append(text)
