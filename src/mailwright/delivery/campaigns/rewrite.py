"""The HTML rewrite of a campaign message: a tracking pixel in each HTML part and its
http(s) links pointed at the tracking host. Pure: octets in, octets out.

What changes, and nothing else:
- only text/html leaves that are not attachments and not inside an encapsulated
  message (message/rfc822: a forwarded mail is not ours to track);
- in them only the values of `href` attributes of <a> and <area> start tags whose URL
  is http or https (mailto:, tel:, #anchors and relative links stay), found by the
  standard library's HTML tokenizer (html.parser: its parsing methods, with plain
  markup stepped over in one regex match, see _Finder) and replaced where its own
  attribute pattern says the value is, plus one <img> before </body> (else at the end);
- the part's octets are decoded from its transfer encoding, tokenized as Latin-1 (one
  character per octet, so character offsets are octet offsets and every octet not
  replaced is kept as it was), and encoded again in the same transfer encoding. Only
  the link's URL is read in the part's charset. Charsets in which '<', '"', '=' can be
  part of another character (UTF-16/32, ISO-2022, UTF-7, HZ) are not rewritten.

Anything unexpected (an unknown transfer encoding or charset, the tokenizer failing)
leaves the whole message as it was, with the reason (the stage logs an event).
"""

from __future__ import annotations

import codecs
import hashlib
import html
import html.parser
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ...message.encoding import (
    KNOWN_ENCODINGS,
    SOFT_BREAK,
    decode_transfer,
    encode_transfer,
    qp_literal_piece,
    qp_piece,
    soft_break_after,
)
from ...message.structure import Part, parse_structure, part_headers

# A link's new URL, or None to leave it (decides on the original URL).
LinkMap = Callable[[str], str | None]
# The attribute patterns html.parser parses a start tag with (its own, so the spans we
# replace are the very values it reported).
_TAG_NAME = html.parser.tagfind_tolerant
_ATTRIBUTE = html.parser.attrfind_tolerant
_START = html.parser.starttagopen
# WHATWG URL parsing strips leading and trailing C0 controls and spaces.
_URL_TRIM = "".join(map(chr, range(0x21)))
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_SYNTAX = b"<>\"'=&#;/ azAZ09"


@dataclass(frozen=True)
class _Html:
    """One HTML part, tokenized: what is replaced where (offsets in `octets`)."""
    octets: bytes                        # the body, transfer encoding undone
    final_newline: bool                  # the raw body ended with a line break
    hrefs: tuple[tuple[int, int, str], ...]   # (start, end, the link's URL) of each value
    quotes: tuple[str, ...]
    pixel_at: int
    # Of a quoted-printable part used again (a campaign's next copy): the stretches
    # between the hrefs (the last one cut where the pixel goes), each encoded once as a
    # piece ending in a soft break, so a copy only encodes its new URLs and pixel
    # (message/encoding.py qp_piece). Not on first use: that costs what encoding the
    # whole part does, and a message to one recipient would pay both.
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    def qp_stretches(self) -> tuple[bytes, ...] | None:
        """The stretches, or None on first use (encode the whole part then)."""
        found = self.memo.get("stretches")
        if found is None:
            if not self.memo.get("used"):
                self.memo["used"] = True
                return None
            # Two threads may both compute it: the same value either way.
            found = self.memo["stretches"] = _qp_stretches(
                self.octets, self.hrefs, self.pixel_at, self.final_newline)
        return found


@dataclass(frozen=True)
class Plan:
    """A message analysed once (the costly part: tokenizing); `apply` makes each
    recipient's copy. `reason` says why it cannot be rewritten (then parts is empty)."""
    content: bytes
    parts: tuple[tuple[Part, _Html], ...] = ()
    reason: str = ""

    @property
    def links(self) -> int:
        return sum(len(p.hrefs) for _, p in self.parts)

    @property
    def may_lengthen_lines(self) -> bool:
        """Can a copy have lines longer than the original's? Only where a part is
        rewritten in 7bit/8bit/binary (a link grows in its line); quoted-printable and
        base64 are written again in lines of at most 76 characters."""
        return any(part.encoding not in ("quoted-printable", "base64")
                   for part, _ in self.parts)

    def apply(self, link: LinkMap, pixel: str) -> bytes:
        """The message with each URL replaced by link(url) (None: kept) and the pixel
        (an HTML fragment) added to each part."""
        out = bytearray(self.content)
        # Last part first: what comes before a changed part keeps its offsets.
        for part, html_part in reversed(self.parts):
            if part.encoding == "quoted-printable" and \
                    (stretches := html_part.qp_stretches()) is not None:
                news = [link(url) for _, _, url in html_part.hrefs]
                if None not in news:
                    out[part.body:part.end] = _qp_copy(html_part, stretches, news, pixel)
                    continue
            octets = html_part.octets
            pieces: list[bytes] = []
            pos = 0
            for (start, end, url), quote in zip(html_part.hrefs, html_part.quotes,
                                                strict=True):
                new = link(url)
                if new is not None:
                    pieces += [octets[pos:start], f"{quote}{new}{quote}".encode("ascii")]
                    pos = end
            at = html_part.pixel_at if html_part.pixel_at >= pos else len(octets)
            pieces += [octets[pos:at], pixel.encode("ascii"), octets[at:]]
            out[part.body:part.end] = encode_transfer(b"".join(pieces), part.encoding,
                                                      html_part.final_newline)
        return bytes(out)


def _qp_copy(html_part: _Html, stretches: tuple[bytes, ...], news: list[str | None],
             pixel: str) -> bytes:
    """A quoted-printable part with every link replaced: its stretches as encoded
    before, the new values and the pixel encoded between them."""
    pieces = [stretches[0]]
    for new, quote, stretch in zip(news, html_part.quotes, stretches[1:-1], strict=True):
        pieces += [qp_literal_piece(f"{quote}{new}{quote}".encode("ascii")), stretch]
    tail = stretches[-1]
    image = qp_literal_piece(pixel.encode("ascii"))
    # Nothing after the pixel: the part ends with it, as encode_transfer would end it.
    pieces += [image if tail else image.removesuffix(SOFT_BREAK), tail]
    return b"".join(pieces)


def _qp_stretches(octets: bytes, hrefs: tuple[tuple[int, int, str], ...], pixel_at: int,
                  final_newline: bool) -> tuple[bytes, ...]:
    """The stretches of a quoted-printable part around its hrefs and the pixel (where
    apply puts it when every link is replaced), as pieces; the last one as the part
    ends."""
    at = pixel_at if not hrefs or pixel_at >= hrefs[-1][1] else len(octets)
    bounds = [0] + [k for start, end, _ in hrefs for k in (start, end)] + [at]
    stretches = [soft_break_after(qp_piece(octets[a:b]))
                 for a, b in zip(bounds[::2], bounds[1::2], strict=True)]
    return (*stretches, qp_piece(octets[at:], final_newline))


class Unsafe(Exception):
    """This message cannot be rewritten safely; args[0] is the reason."""


# Campaigns send one body to many: a part seen lately (its header and body, by digest)
# is not tokenized again.
CACHE_SIZE = 64
_cache: OrderedDict[bytes, _Html | str] = OrderedDict()
_cache_lock = threading.Lock()


def analyse(content: bytes) -> Plan:
    root, _ = parse_structure(content)
    leaves = _html_leaves(content, root)
    if not leaves:
        return Plan(content, reason="no-html")
    parts = []
    for part in leaves:
        found = _cached(content, part)
        if isinstance(found, str):
            return Plan(content, reason=found)
        parts.append((part, found))
    return Plan(content, tuple(parts))


def _cached(data: bytes, part: Part) -> _Html | str:
    """The part tokenized, or why it cannot be rewritten."""
    key = hashlib.sha256(memoryview(data)[part.start:part.end]).digest()
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    try:
        found = _analyse_part(data, part)
    except Unsafe as e:
        found = e.args[0]
    with _cache_lock:
        _cache[key] = found
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return found


def _html_leaves(data: bytes, part: Part) -> list[Part]:
    if part.is_message:
        return []
    if part.children:
        return [p for child in part.children for p in _html_leaves(data, child)]
    if part.ctype != "text/html":
        return []
    disposition = part_headers(data, part).get_content_disposition() or ""
    return [] if disposition == "attachment" else [part]


def _analyse_part(data: bytes, part: Part) -> _Html:
    raw = data[part.body:part.end]
    if part.encoding not in KNOWN_ENCODINGS:
        raise Unsafe("encoding")
    charset = _charset(part_headers(data, part).get_content_charset() or "us-ascii")
    octets = decode_transfer(raw, part.encoding)
    try:
        finder = _Finder(octets.decode("latin-1"))
    except Exception:                 # the tokenizer gave up: leave the mail alone
        raise Unsafe("malformed-html") from None
    hrefs, quotes = [], []
    for start, end in finder.hrefs:
        value = octets[start:end]
        quote = value[:1] if value[:1] in (b'"', b"'") else b""
        if quote:
            start, end = start + 1, end - 1
        url = _url(octets[start:end], charset)
        if url is not None:
            # the quotes stay where they are: only the value between them changes
            hrefs.append((start - len(quote), end + len(quote), url))
            quotes.append(quote.decode())
    return _Html(octets, raw.endswith(b"\n"), tuple(hrefs), tuple(quotes), finder.pixel_at)


def _charset(name: str) -> str:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise Unsafe("charset") from None
    if codec.startswith(("utf-16", "utf-32", "iso2022", "utf-7", "hz")):
        raise Unsafe("charset")
    try:
        if _SYNTAX.decode(codec) != _SYNTAX.decode("ascii"):
            raise Unsafe("charset")
    except UnicodeDecodeError:
        raise Unsafe("charset") from None
    return codec


def _url(value: bytes, charset: str) -> str | None:
    """The http(s) URL a browser would follow for this attribute value, else None."""
    try:
        url = value.decode(charset)
    except UnicodeDecodeError:
        return None
    if "&" in url:
        # Most links escape only their query's "&" (HTML 4.01 B.2.2): no regex needed.
        amps = url.count("&")
        url = url.replace("&amp;", "&") if url.count("&amp;") == amps else html.unescape(url)
    url = url.strip(_URL_TRIM)
    scheme = url[:8].lower()
    if not (scheme.startswith("http://") or scheme.startswith("https://")):
        return None
    if _CONTROL.search(url):
        return None
    return url


# Markup html.parser would take exactly as this does, with nothing in it to rewrite: text,
# and start and end tags of a plain shape (ASCII names, attributes separated by spaces,
# values quoted or plain words) other than a/area/script/style and </body>, </html>.
# Skipped in one regex match; everything else goes through html.parser's own methods.
_S = "[ \t\n\r\f]"
_PLAIN_START = (rf"<(?!(?i:a|area|script|style)[ \t\n\r\f/>])[a-zA-Z][a-zA-Z0-9:_-]*"
                rf"(?:{_S}+[a-zA-Z_:@][a-zA-Z0-9_:.@-]*"
                rf"(?:{_S}*={_S}*(?:\"[^\"]*\"|'[^']*'|[a-zA-Z0-9_.:#%+,;-]+))?)*{_S}*/?>")
_PLAIN_END = rf"</(?!(?i:body|html)[ \t\n\r\f>])[a-zA-Z][a-zA-Z0-9:_-]*{_S}*>"
_PLAIN = re.compile(rf"(?:[^<]+|{_PLAIN_START}|{_PLAIN_END})*")
# An <a> or <area> start tag of that same plain shape: its attributes are what
# html.parser would report, so the href is read here (_ATTR: name, then value with its
# quotes) without a call into html.parser; any other shape goes through it.
# (An unquoted value must not run into "/>": html.parser takes the "/" as part of it.)
_NAME = r"[a-zA-Z_:@][a-zA-Z0-9_:.@-]*"
_VALUE = r"\"[^\"]*\"|'[^']*'|[a-zA-Z0-9_.:#%+,;-]+(?![a-zA-Z0-9_.:#%+,;/-])"
# Groups 1 and 2: the first attribute's name and value (an href first: no more to read).
_PLAIN_LINK = re.compile(rf"<(?i:a|area)(?=[ \t\n\r\f/>])"
                         rf"(?:{_S}+({_NAME})(?:{_S}*={_S}*({_VALUE}))?)?"
                         rf"(?:{_S}+{_NAME}(?:{_S}*={_S}*(?:{_VALUE}))?)*{_S}*/?>")
_ATTR = re.compile(rf"{_S}+({_NAME})(?:{_S}*={_S}*({_VALUE}))?")


class _Finder(html.parser.HTMLParser):
    """The octet spans of the href values to replace and where the pixel goes.

    html.parser's tokenizer (its goahead loop, convert_charrefs on, at end of input),
    except that runs of plain markup (_PLAIN) are stepped over in one regex match
    instead of one Python call per tag: a 50 KB newsletter is tokenized in a
    fraction of the time, and tests/unit/campaigns/test_rewrite.py holds the result
    equal to html.parser's own on tricky and random markup."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.hrefs: list[tuple[int, int]] = []
        self.body_end: int | None = None
        self.html_end: int | None = None
        self.end = len(text)
        self._at = 0
        self.rawdata = text
        self._scan(text)

    @property
    def pixel_at(self) -> int:
        for at in (self.body_end, self.html_end):
            if at is not None:
                return at
        return self.end

    def _scan(self, text: str) -> None:
        n = len(text)
        i = 0
        plain, link = _PLAIN.match, _PLAIN_LINK.match
        while i < n:
            if self.cdata_elem is None:
                i = plain(text, i).end()
                if i >= n:
                    break
                if (m := link(text, i)) is not None:
                    if m[1] is not None and m[1].lower() == "href" and m[2] and \
                            m[2] not in ('""', "''"):
                        self.hrefs.append(m.span(2))
                    else:
                        self._plain_link(text, i, m.end())
                    i = m.end()
                    continue
            else:                         # inside <script> or <style>: to its end tag
                m = self.interesting.search(text, i)
                if m is None:
                    break
                i = m.start()
            self._at = i
            if _START.match(text, i):
                k = self.parse_starttag(i)
            elif text.startswith("</", i):
                k = self.parse_endtag(i)
            elif text.startswith("<!--", i):
                k = self.parse_comment(i)
            elif text.startswith("<?", i):
                k = self.parse_pi(i)
            elif text.startswith("<!", i):
                k = self.parse_html_declaration(i)
            elif i + 1 < n:
                k = i + 1                 # a "<" that starts nothing: text
            else:
                break
            if k < 0:                     # cut off by the end: text up to the next > or <
                k = text.find(">", i + 1)
                if k < 0:
                    k = text.find("<", i + 1)
                    k = i + 1 if k < 0 else k
                else:
                    k += 1
            i = k

    def _plain_link(self, text: str, start: int, end: int) -> None:
        """handle_starttag's choice for a plain <a>/<area> tag text[start:end]: the
        first href's value, when it has one and some href's value is not empty."""
        first, filled = None, False
        # From after "<a" ("ea" of "<area" holds no whitespace, so no attribute starts
        # there); the plain shape makes the attributes follow one another.
        for m in _ATTR.finditer(text, start + 2, end):
            if m[1].lower() != "href":
                continue
            if first is None:
                first = m
            filled = filled or bool(m[2] and m[2] not in ('""', "''"))
        if first is not None and first[2] and filled:
            self.hrefs.append((first.start(2), first.end(2)))

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in ("a", "area") or not any(n == "href" and v for n, v in attrs):
            return
        start = self._at
        raw = self.get_starttag_text() or ""
        k = _TAG_NAME.match(raw, 1).end()
        while k < len(raw):
            m = _ATTRIBUTE.match(raw, k)
            if not m:
                break
            if m[1].lower() == "href":
                if m[2]:                      # the first href counts (as for browsers)
                    self.hrefs.append((start + m.start(3), start + m.end(3)))
                return
            k = m.end()

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self._at
        elif tag == "html":
            self.html_end = self._at
