"""FETCH section addressing and BINARY, written from the RFC text: part numbers of
nested multiparts and message/rfc822 parts (RFC 9051 §6.4.5), HEADER/TEXT/MIME,
partial fetches, BINARY / BINARY.SIZE with the Content-Transfer-Encoding undone
(RFC 3516, RFC 2045 §6.7 and §6.8), APPEND of binary content (RFC 3516 §4.4),
and the ENVELOPE address structures (RFC 9051 §7.5.2)."""

from __future__ import annotations

import asyncio
import re

import pytest

from mailwright.address import parse_mailbox
from mailwright.auth.logins import Logins
from mailwright.events.log import EventLog
from mailwright.imap.fetch import views
from mailwright.imap.notify import MailboxWatch
from mailwright.imap.session import ImapSession
from mailwright.message import encoding, sections
from mailwright.message.meta import parse_message
from mailwright.store.mailboxes import FetchViews

from .conftest import PASSWORD
from .session_harness import TLS, drive, make_config


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


# The message of the part-numbering example in RFC 9051 §6.4.5 (the part types and
# numbers are the RFC's; the contents are ours).
EXAMPLE = crlf("""\
From: a@example.test
Subject: example
MIME-Version: 1.0
Content-Type: MULTIPART/MIXED; boundary="outer"

--outer
Content-Type: TEXT/PLAIN

part 1
--outer
Content-Type: APPLICATION/OCTET-STREAM
Content-Transfer-Encoding: base64

cGFydCAy
--outer
Content-Type: MESSAGE/RFC822

Subject: part 3
Content-Type: MULTIPART/MIXED; boundary="three"

--three
Content-Type: TEXT/PLAIN

part 3.1
--three
Content-Type: APPLICATION/OCTET-STREAM

part 3.2
--three--
--outer
Content-Type: MULTIPART/MIXED; boundary="four"

--four
Content-Type: IMAGE/GIF

part 4.1
--four
Content-Type: MESSAGE/RFC822

Subject: part 4.2
Content-Type: MULTIPART/MIXED; boundary="fourtwo"

--fourtwo
Content-Type: TEXT/PLAIN

part 4.2.1
--fourtwo
Content-Type: MULTIPART/ALTERNATIVE; boundary="alt"

--alt
Content-Type: TEXT/PLAIN

part 4.2.2.1
--alt
Content-Type: TEXT/RICHTEXT

part 4.2.2.2
--alt--
--fourtwo--
--four--
--outer--
""")


def fetch_views(data: bytes) -> FetchViews:
    """ENVELOPE, BODY and BODYSTRUCTURE as stored at delivery."""
    return views(data, parse_message(data))


def sec(data: bytes, path: str, text: str = "", fields: list[str] | None = None) -> bytes:
    root = parse_message(data).structure
    numbers = [int(n) for n in path.split(".")] if path else []
    return sections.section(data, root, numbers, text, fields)


def ctype_of(data: bytes, path: str) -> str:
    root = parse_message(data).structure
    return sections.find_part(root, [int(n) for n in path.split(".")]).ctype


@pytest.mark.parametrize("path,ctype", [
    ("1", "text/plain"), ("2", "application/octet-stream"), ("3", "message/rfc822"),
    ("3.1", "text/plain"), ("3.2", "application/octet-stream"), ("4", "multipart/mixed"),
    ("4.1", "image/gif"), ("4.2", "message/rfc822"), ("4.2.1", "text/plain"),
    ("4.2.2", "multipart/alternative"), ("4.2.2.1", "text/plain"),
    ("4.2.2.2", "text/richtext"),
])
def test_part_numbers_of_the_rfc_example(path, ctype):
    assert ctype_of(EXAMPLE, path) == ctype


def test_sections_of_the_rfc_example():
    assert sec(EXAMPLE, "1") == b"part 1"
    assert sec(EXAMPLE, "2") == b"cGFydCAy"               # BODY keeps the encoding
    assert sec(EXAMPLE, "3", "HEADER").startswith(b"Subject: part 3\r\n")
    assert sec(EXAMPLE, "3", "HEADER").endswith(b"\r\n\r\n")
    assert sec(EXAMPLE, "3", "TEXT").startswith(b"--three\r\n")
    assert sec(EXAMPLE, "3.2") == b"part 3.2"
    assert sec(EXAMPLE, "4.1", "MIME") == b"Content-Type: IMAGE/GIF\r\n\r\n"
    assert sec(EXAMPLE, "4.2", "HEADER.FIELDS", ["subject"]) == \
        b"Subject: part 4.2\r\n\r\n"
    assert sec(EXAMPLE, "4.2", "TEXT").startswith(b"--fourtwo\r\n")
    assert sec(EXAMPLE, "4.2.2.2") == b"part 4.2.2.2"
    # a message/rfc822 part: [n] is the whole encapsulated message, [n.MIME] the
    # part's own header, [n.HEADER] the encapsulated message's header
    assert sec(EXAMPLE, "3").startswith(b"Subject: part 3\r\n")
    assert sec(EXAMPLE, "3", "MIME") == b"Content-Type: MESSAGE/RFC822\r\n\r\n"


@pytest.mark.parametrize("path,text", [
    ("5", ""), ("1.1", ""), ("2.1", ""), ("3.3", ""), ("4.3", ""), ("4.2.2.3", ""),
    ("1", "HEADER"), ("4", "TEXT"), ("4.1", "HEADER"),
])
def test_sections_that_do_not_exist(path, text):
    with pytest.raises(sections.SectionError):
        sec(EXAMPLE, path, text)


SIMPLE = crlf("From: a@example.test\nSubject: simple\n\nline one\nline two\n")


def test_a_message_that_is_not_multipart_has_part_1_only():
    # RFC 9051 §6.4.5: "Every message has at least one part number."
    assert sec(SIMPLE, "1") == b"line one\r\nline two\r\n"
    assert sec(SIMPLE, "1", "MIME") == b"From: a@example.test\r\nSubject: simple\r\n\r\n"
    for path, text in (("2", ""), ("1.1", ""), ("1", "HEADER"), ("1", "TEXT")):
        with pytest.raises(sections.SectionError):
            sec(SIMPLE, path, text)


NESTED = crlf("""\
From: outer@example.test
Content-Type: message/rfc822

From: middle@example.test
Content-Type: message/rfc822

From: inner@example.test
Subject: innermost

Hello world
""")


def test_message_rfc822_numbers_continue_into_the_encapsulated_message():
    middle = crlf("From: middle@example.test\nContent-Type: message/rfc822\n\n")
    inner = crlf("From: inner@example.test\nSubject: innermost\n\n")
    assert sec(NESTED, "", "TEXT") == sec(NESTED, "1")
    assert sec(NESTED, "1") == middle + inner + b"Hello world\r\n"
    assert sec(NESTED, "1", "HEADER") == middle
    assert sec(NESTED, "1", "TEXT") == inner + b"Hello world\r\n"
    assert sec(NESTED, "1.1") == inner + b"Hello world\r\n"
    assert sec(NESTED, "1.1", "HEADER") == inner
    assert sec(NESTED, "1.1", "TEXT") == b"Hello world\r\n"
    assert sec(NESTED, "1.1.1") == b"Hello world\r\n"
    with pytest.raises(sections.SectionError):
        sec(NESTED, "1.2")


DIGEST = crlf("""\
From: a@example.test
Content-Type: multipart/digest; boundary="d"

--d{PAD}

From: m1@example.test

m1 body
--d\t
X-Part: two

From: m2@example.test

m2 body
--d--
""".replace("{PAD}", " "))


def test_digest_parts_default_to_message_rfc822():
    # RFC 2046 §5.1.5; the "--d " and "--d<TAB>" lines carry transport padding
    # (RFC 2046 §5.1.1) and are delimiters all the same.
    assert sec(DIGEST, "1", "MIME") == b"\r\n"                  # an empty MIME header
    assert sec(DIGEST, "1", "HEADER") == b"From: m1@example.test\r\n\r\n"
    assert sec(DIGEST, "1.1") == b"m1 body"
    assert sec(DIGEST, "2", "MIME") == b"X-Part: two\r\n\r\n"
    assert sec(DIGEST, "2", "TEXT") == b"m2 body"


def test_folded_boundary_parameter_is_unfolded():
    # RFC 5322 §2.2.3: unfolding removes the CRLF only, so the boundary is "foo bar"
    data = crlf('Content-Type: multipart/mixed; boundary="foo\n bar"\n\n'
                "--foo bar\nContent-Type: text/x-myown; charset=us-ascii\n\nhello\n\n"
                "--foo bar--\n")
    meta = fetch_views(data)
    assert meta.body == b'(("TEXT" "X-MYOWN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 7 1) ' \
                        b'"MIXED")'
    assert b'("BOUNDARY" "foo bar")' in meta.bodystructure
    assert sec(data, "1") == b"hello\r\n"


def test_a_longer_boundary_line_is_not_a_delimiter():
    data = crlf('Content-Type: multipart/mixed; boundary="b"\n\n'
                "--b\n\none\n--bb\nstill one\n--b--\n")
    assert sec(data, "1") == b"one\r\n--bb\r\nstill one"
    with pytest.raises(sections.SectionError):
        sec(data, "2")


# --- BINARY (RFC 3516, RFC 9051 §6.4.5) ------------------------------------------------------
def binary(data: bytes, path: str) -> bytes:
    root = parse_message(data).structure
    return sections.decoded(data, root, [int(n) for n in path.split(".")] if path else [])


def part_with(cte: str, content: str, ctype: str = "text/plain") -> bytes:
    return crlf(f"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: {ctype}\n"
                f"Content-Transfer-Encoding: {cte}\n\n{content}\n--x--\n")


def test_binary_undoes_base64_ignoring_characters_outside_the_alphabet():
    # RFC 2045 §6.8: "Any characters outside of the base64 alphabet are to be ignored"
    assert binary(part_with("base64", "  aGVs    \n bG8g  \n   d29y  \t \n    bGQ= \n"),
                  "1") == b"hello world"
    # "=" marks the end of the data; what follows is not decoded
    assert binary(part_with("BASE64", "aGk=\naGk="), "1") == b"hi"
    assert binary(part_with("base64", "YWJjZGVmZw1oaWprbA0KbW5vCnBxcnN0dXZxeHl6"), "1") == \
        b"abcdefg\rhijkl\r\nmno\npqrstuvqxyz"


def test_binary_undoes_quoted_printable_by_the_rules_of_rfc_2045():
    qp = "hello  \nbar=\n\nfoo\t=\nbar\nfoo\t \t= \n=62\nfoo = \t\nbar\nfoo=3D=3d=4\nend"
    assert binary(part_with("quoted-printable", qp), "1") == (
        b"hello\r\n"             # rule 3: trailing whitespace is deleted
        b"bar\r\n"               # rule 5: "=" at the end of a line is a soft break
        b"foo\tbar\r\n"
        b"foo\t \tb\r\n"         # a soft break may be followed by padding
        b"foo bar\r\n"
        b"foo===4\r\n"          # "=3D" and "=3d" are octets, "=4" is kept as it is
        b"end")


def test_binary_of_identity_encodings_is_the_content_as_is():
    raw = "caf\u00e9 \x01 line"
    for cte in ("7bit", "8bit", "binary"):
        assert binary(part_with(cte, raw), "1") == raw.encode()
    # BINARY[] is the whole message; a message/rfc822 part is the message it holds
    assert binary(EXAMPLE, "") == EXAMPLE
    assert binary(EXAMPLE, "3") == sec(EXAMPLE, "3")
    assert binary(EXAMPLE, "2") == b"part 2"


def test_binary_of_an_unknown_encoding_is_refused():
    with pytest.raises(sections.UnknownEncoding):
        binary(part_with("x-uuencode", "begin 644 f\n`\nend"), "1")


def test_the_8bit_domain():
    # RFC 2045 §2.8: CRLF lines of at most 998 octets, no NUL
    assert encoding.is_8bit(b"caf\xc3\xa9\r\nline\r\n")
    assert encoding.is_8bit(b"x" * 998 + b"\r\n")
    for octets in (b"a\x00b", b"a\rb", b"a\nb", b"\n", b"a\r", b"x" * 999):
        assert not encoding.is_8bit(octets), octets


# --- APPEND of binary content (RFC 3516 §4.4) ------------------------------------------------
BINARY_MESSAGE = (b"From: user@example.test\r\nMime-Version: 1.0\r\n"
                  b"Content-Type: application/octet-stream\r\n"
                  b"Content-Transfer-Encoding: binary\r\n\r\n\x00-\xe4\n\r\n\n")


def test_binary_parts_are_stored_base64_encoded_without_loss():
    stored = encoding.encode_binary_parts(BINARY_MESSAGE)
    assert b"\x00" not in stored and b"Content-Transfer-Encoding: binary" not in stored
    meta = fetch_views(stored)
    assert b'"BASE64"' in meta.bodystructure
    assert sec(stored, "1") == b"AC3kCg0KCg=="
    assert binary(stored, "1") == b"\x00-\xe4\n\r\n\n"


def test_only_binary_parts_are_re_encoded():
    data = crlf("Content-Type: multipart/mixed; boundary=x\n\n--x\n"
                "Content-Type: text/plain\n\nplain text\n--x\n"
                "Content-Type: application/octet-stream\n"
                "Content-Transfer-Encoding: BINARY\n"
                "  (folded comment)\n\n") + b"\x00\x01\x02" + crlf("\n--x--\n")
    stored = encoding.encode_binary_parts(data)
    assert sec(stored, "1") == b"plain text"
    assert sec(stored, "2", "MIME") == (b"Content-Type: application/octet-stream\r\n"
                                        b"Content-Transfer-Encoding: base64\r\n\r\n")
    assert binary(stored, "2") == b"\x00\x01\x02"
    assert encoding.encode_binary_parts(EXAMPLE) is EXAMPLE               # nothing binary


# --- ENVELOPE address structures (RFC 9051 §7.5.2) -------------------------------------------
def envelope(header: str) -> str:
    return fetch_views(crlf(header + "\n\nbody\n")).envelope.decode()


def test_a_comment_after_a_bare_address_is_its_name():
    env = envelope("From: user@domain (Real Name)\nSender: \nReply-To: ")
    # Sender and Reply-To present but empty default to From
    assert env.count('("Real Name" NIL "user" "domain")') == 3


def test_source_route_is_the_at_domain_list():
    env = envelope("From: <@route1,@route2:user@domain>")
    assert '((NIL "@route1,@route2" "user" "domain"))' in env


def test_groups_and_comments_inside_them():
    env = envelope("From: a@b\nTo: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\n"
                   "Cc: group:;, group2: (foo) ;")
    assert ('((NIL NIL "group" NIL) (NIL NIL "g1" "d1.org") (NIL NIL "g2" "d2.org") '
            '(NIL NIL NIL NIL) (NIL NIL "group2" NIL) (NIL NIL "g3" "d3.org") '
            '(NIL NIL NIL NIL))') in env
    assert ('((NIL NIL "group" NIL) (NIL NIL NIL NIL) (NIL NIL "group2" NIL) '
            '(NIL NIL NIL NIL))') in env


# --- through the session: FETCH and APPEND --------------------------------------------------
USER = "sections@example.test"


@pytest.fixture(scope="module")
def session_store(store):
    if asyncio.run(store.credentials(USER)) is None:
        asyncio.run(store.add_account(parse_mailbox(USER), PASSWORD))
    return store


class Imap:
    def __init__(self, store):
        config = make_config()
        self.s = ImapSession("192.0.2.9", TLS, config, store, Logins.from_settings(config.auth),
                             EventLog(None), MailboxWatch(store))
        self.s.greeting()
        assert self.cmd(f'a LOGIN {USER} "{PASSWORD}"').startswith(b"a OK")

    def send(self, data: bytes) -> bytes:
        return drive(self.s, data)[0]

    def cmd(self, line: str) -> bytes:
        return self.send(line.encode() + b"\r\n")

    def append(self, mailbox: str, message: bytes, literal8: bool = False) -> bytes:
        prefix = b"~" if literal8 else b""
        return self.send(f"p APPEND {mailbox} ".encode() + prefix +
                         b"{%d+}\r\n" % len(message) + message + b"\r\n")


def test_fetch_sections_and_binary_through_the_session(session_store):
    c = Imap(session_store)
    c.cmd("c CREATE Sections")
    assert b"p OK [APPENDUID" in c.append("Sections", EXAMPLE)
    assert b"p OK [APPENDUID" in c.append("Sections", SIMPLE)
    assert b"p OK [APPENDUID" in c.append("Sections", part_with("x-unknown", "zzz"))
    c.cmd("s SELECT Sections")
    out = c.cmd("f FETCH 1 (BODY.PEEK[4.2.2.2] BODY.PEEK[9] BINARY.PEEK[2] BINARY.SIZE[2] "
                "BINARY.PEEK[2]<2.3> BODY.PEEK[3.1.MIME])")
    assert b"BODY[4.2.2.2] {12}\r\npart 4.2.2.2" in out
    assert b"BODY[9] NIL" in out                        # no such part: NIL
    assert b"BINARY[2] {6}\r\npart 2" in out
    assert b"BINARY.SIZE[2] 6" in out
    assert b"BINARY[2]<2> {3}\r\nrt " in out            # the offset counts decoded octets
    assert b"BODY[3.1.MIME] {28}\r\nContent-Type: TEXT/PLAIN\r\n\r\n" in out
    assert out.endswith(b"f OK FETCH completed\r\n")
    # RFC822.TEXT is BODY[TEXT]: the body without the header
    out = c.cmd("t FETCH 2 (RFC822.TEXT)")
    assert b"RFC822.TEXT {20}\r\nline one\r\nline two\r\n" in out
    assert b"FLAGS (\\Seen" in out                    # RFC822.TEXT is not a PEEK
    # RFC 3516 §4.2: a CTE the server cannot decode fails the command
    out = c.cmd("u FETCH 3 (BINARY.PEEK[1])")
    assert re.search(rb"^u NO \[UNKNOWN-CTE\]", out, re.M), out
    assert c.cmd("v FETCH 3 (BINARY.SIZE[1])").startswith(b"v NO [UNKNOWN-CTE]")
    # BINARY.SIZE takes no partial (RFC 3516 §4.2 grammar)
    assert c.cmd("w FETCH 1 (BINARY.SIZE[2]<0.3>)").startswith(b"w BAD")


def test_append_literal8_with_nul_then_fetch_body_and_binary(session_store):
    c = Imap(session_store)
    c.cmd("c CREATE Binary")
    assert b"p OK [APPENDUID" in c.append("Binary", BINARY_MESSAGE, literal8=True)
    c.cmd("s SELECT Binary")
    out = c.cmd("f FETCH 1 (BODY.PEEK[1])")
    # RFC 9051 §7.5.2: binary data goes out transfer-encoded in BODY[]
    assert b"BODY[1] {12}\r\nAC3kCg0KCg==)" in out and b"\x00" not in out
    out = c.cmd("g FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])")
    # RFC 3516 §4.3: binary-domain data goes out as literal8
    assert b"BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n\x00-\xe4\n\r\n\n)" in out


def test_binary_of_8bit_data_is_an_ordinary_literal(session_store):
    c = Imap(session_store)
    c.cmd("c CREATE EightBit")
    c.append("EightBit", part_with("8bit", "caf\u00e9"))
    c.cmd("s SELECT EightBit")
    assert b"BINARY[1] {5}\r\ncaf\xc3\xa9)" in c.cmd("f FETCH 1 (BINARY.PEEK[1])")

