"""IMAP framing, parsing and rendering: every rendered response parses back."""

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.imap import mutf7, render
from mailwright.imap.parser import (
    CONTINUE,
    CommandFramer,
    LineTooLong,
    ParseError,
    Reader,
    SequenceSet,
    TooBig,
    command_tag,
)


def frames(data: bytes, line=1000, literal=100, command=2000):
    f = CommandFramer(line, literal, command)
    f.feed(data)
    out = []
    while (item := f.next()) is not None:
        out.append(item)
    return out


def test_plain_commands_and_pipelining():
    assert frames(b"a NOOP\r\nb CAPABILITY\r\nc LOG") == [b"a NOOP\r\n", b"b CAPABILITY\r\n"]


def test_synchronizing_literal_asks_to_continue():
    f = CommandFramer(1000, 100, 2000)
    f.feed(b"a LOGIN {5}\r\n")
    assert f.next() is CONTINUE
    assert f.next() is None
    f.feed(b"alice {3}\r\n")              # the literal, then the line goes on
    assert f.next() is CONTINUE
    f.feed(b"pwd\r\n")
    command = f.next()
    assert command == b"a LOGIN {5}\r\nalice {3}\r\npwd\r\n"
    r = Reader(command)
    for step in (r.tag, r.sp, r.atom, r.sp):
        step()
    assert r.astring() == b"alice"
    r.sp()
    assert r.astring() == b"pwd"
    r.end()


def test_literal_plus_needs_no_continuation():
    out = frames(b"a APPEND INBOX {11+}\r\nSubject: x\n\r\n")
    assert out == [b"a APPEND INBOX {11+}\r\nSubject: x\n\r\n"]
    r = Reader(out[0])
    assert r.tag() == "a"
    for step in (r.sp, r.atom, r.sp, r.astring, r.sp):
        step()
    assert r.literal() == b"Subject: x\n"


def test_literal_too_big_sync_and_nonsync():
    out = frames(b"a APPEND INBOX {101}\r\nb NOOP\r\n")
    assert out[0] == TooBig(b"a APPEND INBOX {101}\r\n", close=False)
    assert out[1] == b"b NOOP\r\n"
    out = frames(b"a APPEND INBOX {101+}\r\n")
    assert out == [TooBig(b"a APPEND INBOX {101+}\r\n", close=True)]


def test_overlong_line_is_dropped_and_reported_once():
    out = frames(b"a " + b"x" * 2000 + b"\r\nb NOOP\r\n")
    assert isinstance(out[0], LineTooLong)
    assert out[1] == b"b NOOP\r\n"
    assert command_tag(b"a " + b"x" * 10) == "a"


def test_quoted_strings_and_escapes():
    r = Reader(b'"a \\"b\\" \\\\c"')
    assert r.quoted() == b'a "b" \\c'
    with pytest.raises(ParseError):
        Reader(b'"bad \\x"').quoted()
    with pytest.raises(ParseError):
        Reader(b'"open').quoted()


@pytest.mark.parametrize("text,largest,members", [
    (b"1:3,5", 10, [1, 2, 3, 5]),
    (b"*", 7, [7]),
    (b"5:*", 7, [5, 6, 7]),
    (b"*:5", 7, [5, 6, 7]),
    (b"4:2", 9, [2, 3, 4]),
])
def test_sequence_sets(text, largest, members):
    s = Reader(text).sequence_set()
    assert s.members(list(range(1, largest + 1))) == members


@pytest.mark.parametrize("bad", [b"0", b"1:", b",1", b"a", b"1:0", b"99999999999"])
def test_malformed_sequence_sets(bad):
    r = Reader(bad)
    with pytest.raises(ParseError):
        r.sequence_set()
        r.end()


def test_searchres_marker():
    assert Reader(b"$").sequence_set() == SequenceSet((), saved=True)


def test_dates():
    assert Reader(b"1-Feb-2026").date() == datetime.date(2026, 2, 1)
    assert Reader(b'"01-Feb-2026"').date() == datetime.date(2026, 2, 1)
    dt = Reader(b'"17-Jul-1996 02:44:25 -0700"').date_time()
    assert dt.utcoffset() == datetime.timedelta(hours=-7)
    for bad in (b"1-Foo-2026", b"31-Feb-2026", b"yesterday"):
        with pytest.raises(ParseError):
            Reader(bad).date()


def test_flag_lists():
    assert Reader(b"(\\Seen \\Deleted $Label1)").flag_list() == ["\\Seen", "\\Deleted",
                                                                  "$Label1"]
    assert Reader(b"()").flag_list() == []
    with pytest.raises(ParseError):
        Reader(b"(\\Seen").flag_list()


@given(st.binary(max_size=300))
def test_rendered_strings_parse_back(data):
    wire = render.string(data, utf8=False)
    assert Reader(wire + b"\r\n").string() == data


@given(st.text(max_size=60))
def test_rendered_astrings_parse_back(text):
    wire = render.astring(text)
    assert Reader(wire + b"\r\n").astring().decode("utf-8") == text


@given(st.lists(st.integers(min_value=1, max_value=500), max_size=50))
def test_sequence_set_rendering_round_trip(values):
    values = sorted(set(values))
    if not values:
        return
    text = render.sequence_set(values).encode()
    assert Reader(text).sequence_set().members(list(range(1, 501))) == values


@given(st.text(max_size=40).filter(lambda t: all(ord(c) >= 0x20 for c in t)))
def test_modified_utf7_round_trip(name):
    encoded = mutf7.encode(name)
    assert encoded.isascii()
    assert mutf7.decode(encoded) == name


def test_modified_utf7_known_values():
    # RFC 3501 §5.1.3 example
    assert mutf7.encode("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert mutf7.encode("A&B") == "A&-B"
    with pytest.raises(mutf7.NameError_):
        mutf7.decode("&Jjo!")


# RFC 9051 §9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
# quoted-specials / resp-specials; ASTRING-CHAR adds resp-specials ("]") back, and
# list-mailbox allows list-wildcards.
ATOM_SPECIALS_TEST = b"!#$&'+,-.0123456789:;<=>?@^_`|[}"


def test_atom_stops_at_resp_specials_but_astring_does_not():
    r = Reader(b"abc]def")
    assert r.atom() == "abc"
    assert Reader(b"abc]def").astring() == b"abc]def"
    assert Reader(ATOM_SPECIALS_TEST).atom() == ATOM_SPECIALS_TEST.decode()
    for special in b'(){ %*"\\':
        assert Reader(b"ab" + bytes([special]) + b"c").astring() == b"ab"


def test_list_mailbox_takes_wildcards_and_resp_specials():
    r = Reader(ATOM_SPECIALS_TEST + b"]%*")
    assert r.list_mailbox() == (ATOM_SPECIALS_TEST + b"]%*").decode()
    r.end()


def test_tilde_is_an_atom_char_not_literal8():
    # RFC 3516 literal8 is "~{n}": a bare "~" starts an ordinary astring.
    r = Reader(b"~foo")
    assert r.astring() == b"~foo"
    r.end()


def test_status_attributes():
    assert Reader(b"(messages UIDNEXT HighestModSeq)").status_atts() == \
        ["MESSAGES", "UIDNEXT", "HIGHESTMODSEQ"]
    for bad in (b"()", b"(MESSAGES BOGUS)", b"MESSAGES"):
        with pytest.raises(ParseError):
            Reader(bad).status_atts()


@pytest.mark.parametrize("bad", ["&'+,-", "&AMk", "&A-", "&2D0-", "x&Jjo!-",
                                 "&AEE-", "&ACY-", "&AMl-"])
def test_modified_utf7_malformed(bad):
    # Not base64, unterminated, an odd octet, a lone surrogate: RFC 3501 §5.1.3
    # names are UTF-16 in modified BASE64, ending in US-ASCII. "A" and "&" MUST NOT
    # be encoded ("&-" is "&"); "&AMl-" is "&AMk-" (É) with stray leftover bits.
    with pytest.raises(mutf7.NameError_):
        mutf7.decode(bad)
