"""Hypothesis runs of fuzz/'s framer and MIME checks in `make test` (make fuzz runs the
same checks coverage-guided under atheris): the line buffer loses no octet, DATA
un-stuffs what was stuffed, BDAT takes exactly its size, an IMAP literal is read
whole whatever its octets, and the MIME tree of any input nests within it."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.targets import check_bdat, check_data, check_lines, check_literal, check_mime

SETTINGS = settings(max_examples=300, deadline=None)
SIZE = st.integers(min_value=1, max_value=64)
# Octets a line framer cares about, mixed with anything.
TEXT = st.lists(st.one_of(st.sampled_from([b"\r\n", b"\n", b"\r", b".", b"..", b"{4}",
                                           b"{0}\r\n", b"{3+}", b"\r\n.\r\n"]),
                          st.binary(max_size=20)), max_size=30).map(b"".join)
MIME = st.lists(st.one_of(
    st.sampled_from([b"Content-Type: multipart/mixed; boundary=b\r\n",
                     b"Content-Type: message/rfc822\r\n", b"Content-Type: multipart/digest;"
                     b" boundary=\"b\"\r\n", b"--b\r\n", b"--b--\r\n", b"\r\n",
                     b"Subject: =?utf-8?q?x=C3=A9?=\r\n", b"Content-Transfer-Encoding: base64\r\n",
                     b"From: A <a@x.test>\r\n", b" folded\r\n"]),
    st.binary(max_size=20)), max_size=40).map(b"".join)


@SETTINGS
@given(TEXT, SIZE)
def test_line_buffer_loses_no_octet(text, size):
    check_lines(text, size)


@SETTINGS
@given(TEXT, SIZE)
def test_data_unstuffs_what_was_stuffed(text, size):
    check_data(text, size)


@SETTINGS
@given(TEXT, SIZE)
def test_bdat_takes_exactly_its_size(text, size):
    check_bdat(text, size)


@SETTINGS
@given(TEXT, SIZE)
def test_imap_literal_is_read_whole(text, size):
    check_literal(text, size)


@SETTINGS
@given(MIME)
def test_mime_tree_nests_within_the_input(data):
    check_mime(data)
