"""Inputs fuzz/ (atheris) found to break a parser, kept as regression tests: each must
get the protocol's answer, never an exception."""

from mailwright.imap.parser import CONTINUE, CommandFramer
from mailwright.message.bodyparts import describe
from mailwright.message.meta import parse_message
from mailwright.message.structure import parse_structure

from .session_harness import Harness

# fuzz/ mime: an RFC 2047 encoded word whose charset name is not ASCII made
# email.header raise CharsetError out of parse_message, so a message with such a
# Subject could not be stored (the SMTP client got a temporary failure, every retry).
BAD_CHARSET = (b"Subject: =?ut\xe6-8?q?caf=C3=A9?=\r\n and more\r\n"
               b"X-Other: one\r\nx-other: two\r\n\r\n")


def test_encoded_word_with_a_non_ascii_charset_name_is_kept_as_sent():
    meta = parse_message(BAD_CHARSET)
    # (the header octets are read as UTF-8, the stray 0xE6 replaced)
    assert meta.subject == "=?ut\ufffd-8?q?caf=C3=A9?= and more"


def test_such_a_message_is_accepted_over_smtp(store):
    h = Harness(store)
    h.ehlo()
    assert h.cmd("MAIL FROM:<a@x.test>").startswith("250")
    assert h.cmd("RCPT TO:<alice@example.test>").startswith("250")
    assert h.cmd("DATA").startswith("354")
    assert h.send(BAD_CHARSET + b"body\r\n.\r\n")[0].startswith("250")


# fuzz/ framers: a literal whose last octets look like a literal announcement ("{4}")
# followed by the CRLF that ends the command was taken for a second literal: the
# framer asked for 4 more octets and the APPEND hung (RFC 9051 §4.3: a literal's
# octets are data, only the line after it can announce another).
def test_literal_data_ending_like_a_literal_announcement():
    f = CommandFramer(1000, 100, 2000)
    f.feed(b"a APPEND INBOX {3}\r\n")
    assert f.next() is CONTINUE
    f.feed(b"{4}\r\n")
    assert f.next() == b"a APPEND INBOX {3}\r\n{4}\r\n"
    f.feed(b"b NOOP\r\n")
    assert f.next() == b"b NOOP\r\n"


# fuzz/ mime: an empty message/rfc822 part; its inner message's body was taken to start
# after the line break of the following delimiter, one octet past the part's end, and
# BODYSTRUCTURE would have said its size was -1 (RFC 9051 §9: body-fld-octets is a
# number, never negative).
def test_empty_encapsulated_message_has_an_empty_body():
    data = (b"Content-Type: multipart/mixed; boundary=b\n\n"
            b"--b\nContent-Type: message/rfc822\n\n--b--\n")
    top, _ = parse_structure(data)
    rfc822 = top.children[0]
    inner = rfc822.children[0]
    assert rfc822.body == rfc822.end == inner.start == inner.body == inner.end
    assert describe(data, inner).size == 0
    assert describe(data, rfc822).size == 0
