"""The campaign HTML rewrite: only href values and one pixel change, in each HTML
part's own charset and transfer encoding; everything else stays octet for octet."""

from __future__ import annotations

import base64
import html
import html.parser
import quopri
from email import message_from_bytes, policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright.delivery.campaigns.rewrite import _Finder, _url, analyse
from mailwright.message.encoding import decode_transfer
from mailwright.message.structure import parse_structure

PIXEL = '<img src="https://t.test/t/o/P">'
HEAD = b"From: a@example.test\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"


def links(url: str) -> str:
    return "https://t.test/t/c/" + str(len(url))


def rewritten(content: bytes, link=links) -> bytes:
    plan = analyse(content)
    assert not plan.reason, plan.reason
    return plan.apply(link, PIXEL)


def html_part(body: bytes, cte: str = "8bit", charset: str = "utf-8") -> bytes:
    return (HEAD + f"Content-Type: text/html; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode() + body)


def decoded_html(content: bytes) -> bytes:
    root, _ = parse_structure(content)
    leaves = [root]
    while leaves[0].children:
        leaves = [c for p in leaves for c in (p.children or [p])]
    part = next(p for p in leaves if p.ctype == "text/html")
    return decode_transfer(content[part.body:part.end], part.encoding)


PAGE = ('<html><head><style>a{color:red}</style></head><body>\r\n'
        '<p>Grüße, <a class="x" href="https://shop.example/p?a=1&amp;b=2">buy</a>\r\n'
        "<a href='http://Example.COM/ü path'>two</a> <a href=https://u.example/x>three</a>\r\n"
        '<a href="mailto:x@example.test">mail</a> <a href="tel:+15551234">call</a>\r\n'
        '<a href="#top">top</a> <a href="/relative">rel</a> <a name="n">none</a>\r\n'
        '<!-- <a href="https://comment.example/">hidden</a> -->\r\n'
        '<script>var s = \'<a href="https://script.example/">\';</script>\r\n'
        '<img src="https://cdn.example/i.png"></p>\r\n</body></html>\r\n')


def test_8bit_utf8_only_the_values_change_and_the_urls_are_read_exactly():
    seen: list[str] = []
    out = rewritten(html_part(PAGE.encode()), lambda u: seen.append(u) or f"https://t/{len(seen)}")
    assert seen == ["https://shop.example/p?a=1&b=2", "http://Example.COM/ü path",
                    "https://u.example/x"]
    expected = (PAGE.replace('"https://shop.example/p?a=1&amp;b=2"', '"https://t/1"')
                .replace("'http://Example.COM/ü path'", "'https://t/2'")
                .replace("href=https://u.example/x>", "href=https://t/3>")
                .replace("</body>", PIXEL + "</body>"))
    assert out == html_part(expected.encode())


@pytest.mark.parametrize("cte", ["quoted-printable", "base64"])
def test_encoded_parts_are_encoded_again_the_same_way(cte):
    text = PAGE.encode("iso-8859-1")
    body = quopri.encodestring(text) if cte == "quoted-printable" else \
        base64.encodebytes(text)
    body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    out = rewritten(html_part(body, cte, "iso-8859-1"))
    header = out.split(b"\r\n\r\n", 1)[0]
    assert header == html_part(b"", cte, "iso-8859-1").split(b"\r\n\r\n", 1)[0]
    html = decoded_html(out)
    assert b"Gr\xfc\xdfe" in html                       # still Latin-1, not UTF-8
    assert b'href="https://t.test/t/c/30"' in html      # len("https://shop.example/p?a=1&b=2")
    assert html.count(b"https://t.test/t/c/") == 3
    assert b"comment.example" in html and b"script.example" in html
    assert max(len(line) for line in out.split(b"\r\n")) <= 76
    # the same message parses, in its own charset, for a mail reader too
    msg = message_from_bytes(out, policy=policy.default)
    assert "Grüße" in msg.get_content()


def test_multipart_alternative_text_part_and_structure_untouched():
    text_part = b"Content-Type: text/plain; charset=utf-8\r\n\r\nsee https://shop.example/\r\n"
    msg = (HEAD + b'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
           b"preamble\r\n--b1\r\n" + text_part + b"--b1\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n"
           b'<p><a href="https://shop.example/">x</a></p>\r\n--b1--\r\nepilogue\r\n')
    out = rewritten(msg)
    assert out == msg.replace(b'"https://shop.example/"', b'"https://t.test/t/c/21"') \
        .replace(b"</p>\r\n--b1--", b"</p>" + PIXEL.encode() + b"\r\n--b1--")


def test_nested_multipart_and_attachments_and_forwarded_messages():
    inner = (b"Content-Type: text/html\r\n\r\n<a href=\"https://fwd.example/\">f</a>\r\n")
    msg = (HEAD + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
           b'--m\r\nContent-Type: multipart/related; boundary="r"\r\n\r\n'
           b'--r\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n'
           b"--a\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
           b'--a\r\nContent-Type: text/html; charset="us-ascii"\r\n\r\n'
           b'<a href="https://deep.example/">d</a>\r\n--a--\r\n--r--\r\n'
           b'--m\r\nContent-Type: text/html\r\nContent-Disposition: attachment; '
           b'filename="a.html"\r\n\r\n<a href="https://attached.example/">a</a>\r\n'
           b"--m\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--m--\r\n")
    out = rewritten(msg)
    assert out.count(b"https://t.test/t/c/") == 1 and out.count(PIXEL.encode()) == 1
    assert b"https://attached.example/" in out and b"https://fwd.example/" in out
    assert out.replace(b"https://t.test/t/c/21", b"https://deep.example/") \
        .replace(PIXEL.encode(), b"") == msg


def test_no_body_tag_puts_the_pixel_at_the_end():
    out = rewritten(html_part(b"<p>hi</p>"))
    assert out.endswith(b"<p>hi</p>" + PIXEL.encode())


def test_malformed_html_is_still_only_changed_at_the_values():
    body = b'<p <a href="https://x.example/">x</a> <div attr="unclosed <a href=\'https://y\'>'
    out = rewritten(html_part(body))
    assert out.replace(b"https://t.test/t/c/18", b"https://x.example/") \
        .replace(PIXEL.encode(), b"") == html_part(body)


@pytest.mark.parametrize("charset,reason", [("utf-16", "charset"), ("x-unknown", "charset"),
                                            ("iso-2022-jp", "charset")])
def test_charsets_that_cannot_be_tokenized_as_octets_are_left_alone(charset, reason):
    plan = analyse(html_part(b"<a href='https://x/'>x</a>", "8bit", charset))
    assert plan.reason == reason


def test_unknown_encoding_and_no_html_are_left_alone():
    assert analyse(html_part(b"<a>", "x-uuencode")).reason == "encoding"
    assert analyse(HEAD + b"Content-Type: text/plain\r\n\r\nhttps://x/\r\n").reason == "no-html"


def test_a_link_the_map_declines_stays():
    out = rewritten(html_part(b'<a href="https://keep.example/">k</a>'), lambda u: None)
    assert out == html_part(b'<a href="https://keep.example/">k</a>' + PIXEL.encode())


# --- the tokenizer is html.parser's -------------------------------------------------

class Reference(html.parser.HTMLParser):
    """Plain html.parser (feed, close) finding what _Finder finds: the spans of a/area
    href values and where </body> and </html> start."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.hrefs: list[tuple[int, int]] = []
        self.ends: dict[str, int] = {}
        self._lines = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
        self.feed(text)
        self.close()

    def _where(self) -> int:
        line, column = self.getpos()
        return self._lines[line - 1] + column

    def handle_starttag(self, tag, attrs):
        if tag in ("a", "area") and any(n == "href" and v for n, v in attrs):
            raw, start = self.get_starttag_text(), self._where()
            k = html.parser.tagfind_tolerant.match(raw, 1).end()
            while m := html.parser.attrfind_tolerant.match(raw, k):
                if k >= len(raw):
                    break
                if m[1].lower() == "href":
                    if m[2]:
                        self.hrefs.append((start + m.start(3), start + m.end(3)))
                    break
                k = m.end()

    def handle_endtag(self, tag):
        if tag in ("body", "html"):
            self.ends[tag] = self._where()


def same_as_html_parser(text: str) -> None:
    try:
        ref = Reference(text)
    except AssertionError:                 # html.parser gives up (a bad marked section)
        with pytest.raises(AssertionError):
            _Finder(text)
        return
    ours = _Finder(text)
    assert ours.hrefs == ref.hrefs, text
    assert (ours.body_end, ours.html_end) == (ref.ends.get("body"), ref.ends.get("html")), text


TRICKY = [
    PAGE,
    '<div title="<a href=\'https://in.attr/\'>"><a href="https://real/">r</a></div>',
    "<script>document.write('<a href=\"https://s/\">')</script><a href=x>y</a>",
    "<SCRIPT type=x>a</b></ScRiPt ><A HREF='https://up/'>u</A>",
    "<style>a{}</style><!-- <a href='https://c/'> --><a href=https://d/>d",
    "<!doctype html><?php echo '<a href=\"x\">' ?><a href=\"https://p/\">",
    "<![CDATA[<a href='https://cd/'>]]><a href='https://after/'>",
    "<a href = \"https://sp/\" href='https://second/'><area href=https://ar/ alt=x>",
    "<a name=x href>no value</a><a hrefx='https://no/'>x</a><a data-href='https://no/'>",
    "<td class=\"x\"style=\"y\"><a class=z href='https://q/'>q</a></td></body></html>",
    "<a href='https://unterminated>oops</a><b>",
    "text < more <3 <a href=https://lt/>ok</a> &#x; &amp <a href='https://amp/'>",
    "<a\nhref\n=\n'https://nl/'\n>x</a>",
    "<a href='https://self/'/><br/><img src=x /><a/ href='https://slash/'>",
    "</body></html><a href='https://late/'>late</a></body>",
    "<!-- unclosed comment <a href='https://uc/'>",
    "<div><a href='https://end/'",
    "<a href=\"https://x/\" <b>",
    "</a href='https://endtag/'><a href='https://ok/'>",
    "<![if !mso]><a href='https://mso/'><![endif]>",
    "<p\xa0class=x><a\xa0href='https://nbsp/'>",
    # plain <a>/<area> tags, read without html.parser: the same spans
    "<a href=x/><a href=ab/ ><a href=y />",
    "<a title=\"x href='https://in/'\" href=\"https://z/\">",
    "<area alt=a href=''><a href='' href='https://2/'><a href href='https://3/'>",
    "<a HREF = 'https://up/' Href=\"https://no/\"><AREA\nhref=\"https://nl/\"\n/>",
]


@pytest.mark.parametrize("text", TRICKY)
def test_finder_agrees_with_html_parser_on_tricky_markup(text):
    same_as_html_parser(text)


PIECES = ["<a href='https://x/'>", "<a href=https://y>", "<A HREF=\"https://z/\">",
          "<area href=h>", "</a>", "<div class=\"q>\">", "<td style='a:b'>", "<br/>",
          "<script>", "</script>", "<style>", "</style>", "<!--", "-->", "<!doctype x>",
          "<?pi?>", "<![CDATA[", "]]>", "</body>", "</html>", "<body>", "<", ">", "\"",
          "'", "=", " ", "\n", "text", "&amp;", "&#", "/", "<b", "</", "<!", "<p x=y>",
          "<img src=x alt=\"<a href='https://no/'>\">", "\xa0", "<td width=5/>",
          "<a href=x/>", "<a href=''>", "<a title=b href='https://t/' />", "<area",
          " href='https://w/'", " href=v", "<a href"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_finder_agrees_with_html_parser_on_random_markup(pieces):
    same_as_html_parser("".join(pieces))


# --- quoted-printable copies are written in pieces ------------------------------------

def _long_link(i: int) -> str:
    return "https://t.test/t/c/" + "T" * (150 + i % 60) + str(i)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES + ["x" * 90, "é" * 30, "  \r\n", "\r\n", "=", "\t"]),
                max_size=30), st.booleans())
def test_a_quoted_printable_copy_decodes_as_the_8bit_one(pieces, in_multipart):
    """The stretches encoded once and the new values between them decode to what the
    same rewrite of the part unencoded gives, in lines of at most 76 characters, as
    does the first copy (the whole part encoded)."""
    # line breaks as CRLF: quoted-printable has no other (RFC 2045 §6.7)
    text = "".join(pieces).encode().replace(b"\r", b"").replace(b"\n", b"\r\n")
    if b"<a" not in text.lower() and b"<area" not in text.lower():
        text += b"<a href='https://x/'>x</a>"
    n = iter(range(10_000))

    def link(url):
        return _long_link(next(n))

    def part(body: bytes, cte: str) -> bytes:
        if not in_multipart:
            return html_part(body, cte)
        return (HEAD + b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
                + f"Content-Type: text/html; charset=utf-8\r\n"
                  f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode() + body
                + b"\r\n--b--\r\n")

    plain = analyse(part(text, "8bit"))
    if plain.reason:
        return
    expected = decoded_html(plain.apply(link, PIXEL))
    n = iter(range(10_000))
    qp = quopri.encodestring(text).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    plan = analyse(part(qp, "quoted-printable"))
    # the first copy encodes the whole part, the next ones are written in pieces
    for _ in range(2):
        n = iter(range(10_000))
        out = plan.apply(link, PIXEL)
        assert decoded_html(out) == expected
        assert max(len(line) for line in out.split(b"\r\n")) <= 76
    assert plan.parts[0][1].memo.get("stretches") is not None


@pytest.mark.parametrize("value", [
    "https://x/?a=1&amp;b=2", "https://x/?a=1&amp;amp;b", "https://x/?a&amp;b&lt;c",
    "https://x/?a&ampb", "https://x/?q=&#233;&amp;", "https://x/?a&b"])
def test_urls_are_read_as_html_unescape_reads_them(value):
    assert _url(value.encode(), "utf-8") == html.unescape(value)
