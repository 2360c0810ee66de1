"""Building a message from structured fields (admin/compose.py): parsed back with the
email package, every shape (text, html, both, attachments), UTF-8 in every field that
can carry it, attachments byte-exact, and nothing but 7-bit bodies."""

from __future__ import annotations

import email
import os
from email import policy
from email.headerregistry import Address

from mailwright.admin.compose import Fields, Part, compose

DATE = "Thu, 05 Nov 2026 12:00:00 +0000"


def fields(**kw) -> Fields:
    base = dict(sender=Address("Alice", "alice", "example.test"),
                to=[Address("Bob", "bob", "remote.test")], cc=[], subject="Hello",
                date=DATE, message_id="<Q1@mx.example.test>")
    return Fields(**(base | kw))


def parse(data: bytes):
    return email.message_from_bytes(data, policy=policy.default)


def text(part) -> str:
    """A text part's content with the line ends it was given (CRLF on the wire)."""
    return part.get_content().replace("\r\n", "\n")


def lines_ok(data: bytes) -> None:
    """CRLF only, no line over 78 + CRLF where we fold and encode, 7-bit unless UTF-8
    headers were asked for."""
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_text_only_is_a_single_text_plain_part():
    data = compose(fields(), "Hi Bob,\nsee you.\n", None)
    lines_ok(data)
    assert data.isascii()
    msg = parse(data)
    assert msg.get_content_type() == "text/plain" and not msg.is_multipart()
    assert text(msg) == "Hi Bob,\nsee you.\n"
    assert msg["From"] == "Alice <alice@example.test>" and msg["To"] == "Bob <bob@remote.test>"
    assert msg["Subject"] == "Hello" and msg["Date"] == DATE
    assert msg["Message-ID"] == "<Q1@mx.example.test>" and msg["MIME-Version"] == "1.0"
    assert "Cc" not in msg and "Bcc" not in msg


def test_html_only_is_a_single_text_html_part():
    msg = parse(compose(fields(), None, "<p>Hi</p>"))
    assert msg.get_content_type() == "text/html" and text(msg) == "<p>Hi</p>\n"


def test_text_and_html_are_alternatives_plain_first():
    msg = parse(compose(fields(), "Hi", "<p>Hi</p>"))
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.iter_parts()
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert text(plain) == "Hi\n" and text(html) == "<p>Hi</p>\n"


def test_no_body_at_all_is_an_empty_text_part():
    msg = parse(compose(fields(), None, None))
    assert msg.get_content_type() == "text/plain" and text(msg) == "\n"


def test_attachments_make_a_mixed_message_and_come_back_byte_exact():
    blob = os.urandom(70_000) + b"\x00\r\n\r\n.\r\n"        # binary, with SMTP's specials
    text_file = "naïve\r\nlines\n".encode()
    data = compose(fields(), "see attached", "<p>see attached</p>",
                   [Part("data.bin", "application", "octet-stream", blob),
                    Part("notes.txt", "text", "plain", text_file)])
    lines_ok(data)
    assert data.isascii()
    msg = parse(data)
    assert msg.get_content_type() == "multipart/mixed"
    body, first, second = msg.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    assert first.get_filename() == "data.bin" and first.get_content_type() == \
        "application/octet-stream"
    assert first.get_content_disposition() == "attachment"
    assert first.get_payload(decode=True) == blob
    assert second.get_content_type() == "text/plain" and second.get_filename() == "notes.txt"
    assert second.get_payload(decode=True) == text_file       # not re-encoded as text
    # MIME-Version in the message header only (RFC 2045 §4).
    assert data.count(b"MIME-Version") == 1


def test_utf8_subject_names_bodies_and_filenames_are_encoded():
    f = fields(sender=Address("Jürgen Äpfel", "juergen", "example.test"),
               to=[Address("Zoë", "zoe", "remote.test")],
               cc=[Address("", "cc", "remote.test")],
               subject="Grüße ☃ " + "lang " * 30,
               extra=[("X-Note", "Ünïcode value")])
    data = compose(f, "Grüße, ☃\n", "<p>Grüße</p>",
                   [Part("résumé ☃.pdf", "application", "pdf", b"%PDF-1.7")])
    lines_ok(data)
    assert data.isascii()                       # RFC 2047 / RFC 2231 / quoted-printable
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    msg = parse(data)
    assert msg["From"].addresses[0].display_name == "Jürgen Äpfel"
    assert msg["To"].addresses[0].display_name == "Zoë"
    assert msg["Cc"] == "cc@remote.test"
    assert msg["Subject"] == "Grüße ☃ " + "lang " * 30
    assert msg["X-Note"] == "Ünïcode value"
    body, attachment = msg.iter_parts()
    plain, html = body.iter_parts()
    assert text(plain) == "Grüße, ☃\n" and text(html) == "<p>Grüße</p>\n"
    assert plain["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert attachment.get_filename() == "résumé ☃.pdf"
    assert attachment.get_payload(decode=True) == b"%PDF-1.7"


def test_utf8_local_parts_make_utf8_header_fields():
    f = fields(sender=Address("Dörte", "dörte", "xn--bcher-kva.test"),
               to=[Address("", "zoë", "remote.test")])
    data = compose(f, "hi", None, utf8=True)
    head, _, body = data.partition(b"\r\n\r\n")
    assert "From: Dörte <dörte@xn--bcher-kva.test>".encode() in head     # RFC 6532
    assert "To: zoë@remote.test".encode() in head
    assert body.isascii()                                      # bodies stay 7-bit
    utf8 = email.message_from_string(data.decode(), policy=policy.SMTPUTF8)
    assert utf8["To"].addresses[0].username == "zoë"


def test_long_text_lines_are_encoded_for_the_line_limit():
    data = compose(fields(), "x" * 5000 + "\n", None)
    lines_ok(data)
    msg = parse(data)
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert text(msg) == "x" * 5000 + "\n"
