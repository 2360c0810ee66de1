"""IMAP's views of a parsed message, rendered once at delivery: ENVELOPE, BODY and
BODYSTRUCTURE (RFC 9051 §7.5.2); SORT and THREAD over the stored keys (RFC 5256)."""

from mailwright.imap import threads
from mailwright.imap.fetch import views
from mailwright.imap.parser import Reader
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


def test_envelope_keeps_raw_values_and_groups():
    m = views(MESSAGE, parse_message(MESSAGE))
    env = m.envelope.decode()
    assert env.startswith('("Tue, 1 Jul 2003 10:52:37 +0200" "=?utf-8?q?R=C3=A9sum=C3=A9?=')
    assert '(("Mary Smith" NIL "mary" "x.test") (NIL NIL "jdoe" "example.org"))' in env
    assert '((NIL NIL "Undisclosed recipients" NIL) (NIL NIL NIL NIL))' in env
    assert env.endswith('NIL "<1@example.com>")')


def test_bodystructure_parts_sizes_and_lines():
    m = views(MESSAGE, parse_message(MESSAGE))
    bs = m.bodystructure.decode()
    assert bs.startswith('(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 17 1 ')
    assert '"MIXED" ("BOUNDARY" "XX") NIL NIL NIL)' in bs
    assert '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 41 (NIL "inner"' in bs
    # every rendered structure parses back as one balanced list
    for rendered in (m.body, m.bodystructure, m.envelope):
        r = Reader(rendered)
        depth = 0
        while not r.at_end():
            c = r.peek()
            if c == b"(":
                depth += 1
                r.i += 1
            elif c == b")":
                depth -= 1
                r.i += 1
            elif c == b'"' or c == b"{":
                r.string()
            else:
                r.i += 1
        assert depth == 0


def test_message_without_mime_headers():
    data = b"Subject: plain\r\n\r\nline one\r\nline two\r\n"
    m = views(data, parse_message(data))
    assert m.bodystructure.startswith(b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" '
                                      b'20 2')


def row(uid, date, subject, msgid, refs="", irt=""):
    return (uid, date, 100, date, subject, "", "", "", msgid, irt, refs, subject, "", "")


def test_thread_references_and_orderedsubject():
    rows = [row(1, 10, "a", "<a@x>"), row(2, 20, "a", "<b@x>", "<a@x>"),
            row(3, 30, "b", "<c@x>"), row(4, 40, "a", "<d@x>", "<a@x> <b@x>"),
            row(5, 50, "a", "<e@x>", irt="<a@x>")]
    tree = threads.thread(rows, "REFERENCES")
    assert threads.render_threads(tree, lambda u: u) == b"(1 (2 4)(5))(3)"
    tree = threads.thread(rows, "ORDEREDSUBJECT")
    assert threads.render_threads(tree, lambda u: u) == b"(1 (2)(4)(5))(3)"


def test_sort_with_reverse_and_ties():
    rows = [row(1, 30, "b", ""), row(2, 10, "a", ""), row(3, 10, "c", "")]
    assert threads.sort(rows, [(threads.SENT, False)]) == [2, 3, 1]
    assert threads.sort(rows, [(threads.SUBJECT, True)]) == [3, 1, 2]
