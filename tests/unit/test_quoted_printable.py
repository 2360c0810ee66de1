"""Quoted-printable (RFC 2045 §6.7): binascii.a2b_qp's fast path decodes to the octets
the line-by-line rules give, on random input over the alphabet that matters (escapes,
soft breaks, padding, lone CR/LF, "=" in odd places); encoding without the line-break
rewrite gives what it gave with it."""

from __future__ import annotations

import binascii

from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright.message.encoding import _decode_qp_lines, decode_quoted_printable, encode_transfer

PIECES = [b"a", b"=", b"3", b"D", b"z", b" ", b"\t", b"\r", b"\n", b"\r\n", b"f", b"=\r\n",
          b"=3D", b"=0d", b"=0A", b"\x00", b"\xff", b"=\r\n ", b"= \r\n", b"==41", b"=4"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30))
def test_the_fast_path_decodes_as_the_rules_do(pieces):
    raw = b"".join(pieces)
    assert decode_quoted_printable(raw) == _decode_qp_lines(raw)


def test_cases_the_fast_path_leaves_to_the_rules():
    assert decode_quoted_printable(b"a  \r\nb=\r\nc") == b"a\r\nbc"       # padding
    assert decode_quoted_printable(b"a= \r\nb") == b"ab"                  # "=" padding
    assert decode_quoted_printable(b"a\nb") == b"a\r\nb"                  # LF alone
    assert decode_quoted_printable(b"a==41") == b"a=A"
    assert decode_quoted_printable(b"x=3D=41\r\n") == b"x=A\r\n"           # the fast path


def _encode_as_before(data: bytes) -> bytes:
    """encode_transfer's quoted-printable before it skipped the line-break rewrite."""
    return binascii.b2a_qp(data, istext=True).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"a" * 40, b"\r\n", b"\n", b"\r", b" ", b"=", b"\xe9", b"b"]),
                max_size=30))
def test_encoding_writes_crlf_line_breaks_as_before(pieces):
    data = b"".join(pieces)
    assert encode_transfer(data, "quoted-printable") == _encode_as_before(data)
