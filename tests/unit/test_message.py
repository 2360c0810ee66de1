"""A message as data (message/): the part tree, sections, transfer encodings, header
fields, the envelope and body-part descriptions, search text and sort keys, written
from RFC 5322, RFC 2045-2047, RFC 2231 and RFC 5256, with no protocol around them."""

from mailwright.message import encoding, keys, sections
from mailwright.message.addresses import Address
from mailwright.message.bodyparts import DEFAULT_PARAMS, describe
from mailwright.message.envelope import envelope
from mailwright.message.headers import field_matches, parse_headers, select_fields
from mailwright.message.meta import parse_message

MESSAGE = b"\r\n".join([
    b'From: "Joe Q. Public" <john.q.public@example.com>',
    b"To: Mary Smith <mary@x.test>, jdoe@example.org",
    b"Cc: Undisclosed recipients: ;",
    b"Date: Tue, 1 Jul 2003 10:52:37 +0200",
    b"Subject: =?utf-8?q?R=C3=A9sum=C3=A9?= [list] Re: hello",
    b"Message-ID: <1@example.com>",
    b"MIME-Version: 1.0",
    b'Content-Type: multipart/mixed; boundary="XX"',
    b"",
    b"preamble",
    b"--XX",
    b"Content-Type: text/plain; charset=utf-8",
    b"Content-Transfer-Encoding: quoted-printable",
    b"",
    b"Caf=C3=A9 au lait",
    b"--XX",
    b"Content-Type: text/html; charset=iso-8859-1",
    b"Content-Transfer-Encoding: base64",
    b"Content-Disposition: attachment; filename*0=\"cr\"; filename*1=\"eme.html\"",
    b"",
    b"PHA+Q3LobWUgYnL7bOllPC9wPg==",
    b"--XX",
    b"Content-Type: message/rfc822",
    b"",
    b"Subject: inner",
    b"From: a@b.c",
    b"",
    b"inner body",
    b"--XX--",
    b"",
])


def test_sections():
    root = parse_message(MESSAGE).structure
    assert sections.section(MESSAGE, root, [1], "") == b"Caf=C3=A9 au lait"
    assert sections.section(MESSAGE, root, [1], "MIME").startswith(b"Content-Type: text/plain")
    assert sections.section(MESSAGE, root, [3], "HEADER") == \
        b"Subject: inner\r\nFrom: a@b.c\r\n\r\n"
    assert sections.section(MESSAGE, root, [3], "TEXT") == b"inner body"
    assert sections.section(MESSAGE, root, [3, 1], "") == b"inner body"
    assert sections.section(MESSAGE, root, [], "HEADER.FIELDS", ["to"]) == \
        b"To: Mary Smith <mary@x.test>, jdoe@example.org\r\n\r\n"
    part = sections.find_part(root, [2])
    assert encoding.decode_transfer(MESSAGE[part.body:part.end], part.encoding) == \
        "<p>Crème brûlée</p>".encode("iso-8859-1")
    assert sections.decoded(MESSAGE, root, [1]) == "Café au lait".encode()


def test_decoded_text_and_sort_keys():
    m = parse_message(MESSAGE)
    assert "Café au lait" in m.text
    assert "Crème brûlée" in m.text and "<p>" not in m.text
    assert "inner body" in m.text
    assert m.subject == "Résumé [list] Re: hello"
    assert m.base_subject == keys.collate("Résumé [list] Re: hello")
    assert keys.base_subject("Re: [list] Fwd: Hello (fwd)") == ("Hello", True)
    assert keys.base_subject("[Fwd: Lunch]") == ("Lunch", True)
    assert m.sort_from == "JOHN.Q.PUBLIC"            # collated (RFC 5256 §3)
    assert m.sent == 1057049557.0
    assert m.sent_day == 20030701                    # the date as written (+0200)
    assert "Subject: Résumé [list] Re: hello" in m.header_text


def test_text_size_is_known_without_decoding_and_never_short():
    # The store decides by text_size whether to keep a text for after the delivery
    # (store/sqlite/textindex.py): it must never be less than the decoded text.
    qp = "Crème brûlée, s'il vous plaît. ".encode().hex("=", 1).upper()
    messages = [
        MESSAGE,
        b"Subject: plain\r\n\r\n" + b"seven bit text\r\n" * 500,
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
        b"quoted-printable\r\n\r\n=" + qp.encode() + b"\r\n",
        b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\n" + encoding.base64.encodebytes(("<b>gros</b> " * 2000).encode()),
        b"Content-Type: image/png\r\n\r\n" + b"x" * 5000,
        # empty text parts: body_text still joins them with line breaks
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + b"--b\r\nContent-Type: text/plain\r\n\r\n\r\n" * 3 + b"--b--\r\n",
    ]
    for data in messages:
        m = parse_message(data, lazy_text=True)
        assert m._text is None                        # not decoded by the parse
        assert m.text_size >= len(m.text), data[:60]
        assert m.data is None                         # let go once decoded
        eager = parse_message(data)
        assert eager.data is None and eager.text == m.text
    assert parse_message(messages[-2]).text_size == 0
    assert parse_message(messages[1]).text_size == len(messages[1]) - len(b"Subject: plain\r\n\r\n")


def test_envelope_fields_are_as_sent_and_absent_ones_are_none():
    # RFC 5322 §3.6: values as written (encoded words kept); an address field that
    # is absent or empty is None, a group is its start and end markers (§3.4)
    env = envelope(parse_message(MESSAGE).headers)
    assert env.subject == "=?utf-8?q?R=C3=A9sum=C3=A9?= [list] Re: hello"
    assert env.from_ == (Address("Joe Q. Public", None, "john.q.public", "example.com"),)
    assert env.to == (Address("Mary Smith", None, "mary", "x.test"),
                      Address(None, None, "jdoe", "example.org"))
    assert env.cc == (Address("Undisclosed recipients", None, None, None, True),
                      Address(None, None, None, None, True))
    assert env.sender is None and env.reply_to is None and env.bcc is None
    assert env.message_id == "<1@example.com>" and env.in_reply_to is None
    empty = envelope(parse_headers(b"Sender: \r\nReply-To: ()\r\n\r\n", 0, 27))
    assert empty.sender is None                    # present but empty
    assert empty.reply_to == ()                    # a value holding no address


def test_body_parts_describe_each_part():
    m = parse_message(MESSAGE)
    body = describe(MESSAGE, m.structure)
    assert (body.type, body.subtype, body.params) == ("multipart", "mixed", [("boundary", "XX")])
    text, html, inner = body.parts
    # RFC 2045 §6: the encoding; size in encoded octets; lines of a text part
    assert (text.encoding, text.size, text.lines) == ("quoted-printable", 17, 1)
    assert text.params == [("charset", "utf-8")]
    # RFC 2183 §2 with RFC 2231 §3 continuations joined
    assert html.disposition is not None and html.disposition.kind == "attachment"
    assert html.disposition.params == [("filename", "creme.html")]
    assert html.lines == 1
    # a message/rfc822 part: the encapsulated message's envelope and body, and lines
    assert inner.envelope is not None and inner.envelope.subject == "inner"
    assert inner.message is not None and inner.message.size == len(b"inner body")
    assert (inner.size, inner.lines) == (41, 4)
    # RFC 2045 §5.2: no Content-Type is text/plain; charset=us-ascii
    plain = parse_message(b"Subject: x\r\n\r\nhi\r\n")
    assert describe(b"Subject: x\r\n\r\nhi\r\n", plain.structure).params == DEFAULT_PARAMS


def test_header_fields_unfold_and_decode():
    header = (b"Subject: =?utf-8?q?caf=C3=A9?=\r\n and more\r\n"
              b"X-Other: one\r\nx-other: two\r\n\r\n")
    fields = parse_headers(header, 0, len(header))
    # RFC 5322 §2.2.3: unfolding removes the CRLF; the first field of a name
    assert fields.value("subject") == "=?utf-8?q?caf=C3=A9?= and more"
    assert fields.value("X-OTHER") == "one" and fields.value("missing") is None
    # RFC 2047 encoded words are decoded before matching, case-insensitively
    assert field_matches(header, "Subject", "CAFÉ")
    assert field_matches(header, "x-other", "two") and not field_matches(header, "x-other", "3")
    assert field_matches(header, "x-other", "") and not field_matches(header, "to", "")
    assert select_fields(header, ["x-other"], exclude=False) == \
        b"X-Other: one\r\nx-other: two\r\n\r\n"


def test_binary_content_is_re_encoded_without_loss():
    # RFC 2045 §2.9/§6.8: binary data in a textual form, decoded back to the octets
    data = (b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x01\r\n")
    stored = encoding.encode_binary_parts(data)
    assert b"\x00" not in stored and encoding.is_8bit(stored)
    root = parse_message(stored).structure
    assert root.encoding == "base64"
    assert sections.decoded(stored, root, [1]) == b"\x00\x01\r\n"
