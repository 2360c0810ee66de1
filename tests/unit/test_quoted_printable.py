"""Quoted-printable (RFC 2045 §6.7): binascii.a2b_qp's fast path decodes to the octets
the line-by-line rules give, on random input over the alphabet that matters (escapes,
soft breaks, padding, lone CR/LF, "=" in odd places); encoding without the line-break
rewrite gives what it gave with it; a body written in pieces joined by soft line breaks
decodes to the pieces' octets in lines of at most 76 characters."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright.message.encoding import (
    SOFT_BREAK,
    _decode_qp_lines,
    decode_quoted_printable,
    encode_transfer,
    qp_literal_piece,
    qp_piece,
    soft_break_after,
)

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


@pytest.mark.parametrize("data", [b"a" * 76, b"a" * 73 + b"=", b"a" * 74 + b"\xe9", b"a" * 75,
                                  b"a" * 200, b"x\r\n" + b"b" * 76, b""])
def test_a_piece_leaves_room_for_its_soft_break(data):
    piece = soft_break_after(qp_piece(data))
    assert all(len(line) <= 76 for line in piece.split(b"\r\n"))
    assert decode_quoted_printable(piece) == data


def test_a_literal_piece_is_cut_into_lines_and_others_are_encoded():
    url = b'"https://t.example/t/c/' + b"T" * 200 + b'"'
    piece = qp_literal_piece(url)
    assert piece.endswith(SOFT_BREAK) and max(map(len, piece.split(b"\r\n"))) == 76
    assert decode_quoted_printable(piece) == url
    odd = b'<img src="x" alt=" ">' * 5
    assert decode_quoted_printable(qp_literal_piece(odd)) == odd


@pytest.mark.parametrize("tail", [b" ", b"\t", b"  ", b" \t"])
@pytest.mark.parametrize("before", range(70, 80))
def test_no_line_passes_76_characters_when_it_ends_in_whitespace(before, tail):
    # CPython's b2a_qp encodes a line's final whitespace after measuring the line: 77
    # characters for "...' =20" (found by test_rewrite's property test).
    for filler in (b"x", "é".encode()):
        data = (filler * before)[:before] + tail + b"\r\nnext line" + tail
        body = encode_transfer(data, "quoted-printable")
        assert max(len(line) for line in body.split(b"\r\n")) <= 76, body
        assert binascii.a2b_qp(body) == data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
