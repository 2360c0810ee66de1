import asyncio
import os
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailwright.net.lines import LineMeter, longest_line
from mailwright.smtp.framing import (
    Chunk,
    CommandLine,
    Framer,
    LineTooLong,
    MessageData,
    Mode,
    Problem,
    TextCheck,
)
from mailwright.store.blobs import Spool, Spooled

from .session_harness import Harness, make_config


def framer(**kw) -> Framer:
    return Framer(kw.get("hard", 100), kw.get("size", 10_000))


def drain(f: Framer) -> list:
    out = []
    while (ev := f.next_event()) is not None:
        out.append(ev)
    return out


def data(f: Framer, *pieces: bytes) -> tuple[bytes, list]:
    """Run DATA over the pieces fed one by one: (the text the sink got, the events)."""
    got = bytearray()
    f.start_data(got.extend)
    events = []
    for piece in pieces:
        f.feed(piece)
        events += drain(f)
    return bytes(got), events


def checked(text_line: int, *pieces: bytes) -> TextCheck:
    check = TextCheck(text_line)
    for piece in pieces:
        check.feed(piece)
    check.finish()
    return check


# --- command lines ---------------------------------------------------------------------
def test_lines_split_across_feeds():
    f = framer()
    f.feed(b"EHL")
    assert drain(f) == []
    f.feed(b"O x\r\nNOOP\nQU")
    assert drain(f) == [CommandLine(b"EHLO x"), CommandLine(b"NOOP")]
    f.feed(b"IT\r\n")
    assert drain(f) == [CommandLine(b"QUIT")]


def test_overlong_line_dropped_once_and_resynchronised():
    f = framer(hard=10)
    f.feed(b"x" * 25)
    assert drain(f) == [LineTooLong()]
    assert f.buffered == 0
    f.feed(b"y" * 25 + b"\r\nNOOP\r\n")
    assert drain(f) == [CommandLine(b"NOOP")]


def test_discard_input_drops_pipelined_bytes():
    f = framer()
    f.feed(b"STARTTLS\r\nMAIL FROM:<x@y>\r\n")
    assert f.next_event() == CommandLine(b"STARTTLS")
    f.discard_input()
    assert drain(f) == []


# --- DATA: terminator and transparency (RFC 5321 §4.1.1.4, §4.5.2) -------------------------
def test_data_terminator_split_across_feeds_and_rest_kept():
    f = framer()
    text, events = data(f, b"a\r\n..b\r", b"\n.", b"\r", b"\nNOOP\r\n")
    assert text == b"a\r\n.b\r\n"
    assert events == [MessageData(7, False), CommandLine(b"NOOP")]
    assert f.mode is Mode.COMMAND


WIRE = b"..x\r\nab\r\n...\r\n.\r\n"


@pytest.mark.parametrize("split", range(1, len(WIRE)))
def test_every_split_point_gives_the_same_text(split):
    text, events = data(framer(), WIRE[:split], WIRE[split:])
    assert text == b".x\r\nab\r\n..\r\n"
    assert events == [MessageData(len(text), False)]


def test_first_line_dot_stuffing_and_empty_message():
    f = framer()
    assert data(f, b"..x\r\n.\r\n")[0] == b".x\r\n"
    text, events = data(f, b".\r\n")
    assert text == b"" and events == [MessageData(0, False)]


def test_a_lone_leading_dot_is_deleted_as_rfc_5321_says():
    # §4.5.2: "If the first character is a period and there are other characters on
    # the line, the first character is deleted" -- also when the client did not double it.
    assert data(framer(), b".x\r\n.\r\n")[0] == b"x\r\n"


def test_only_crlf_dot_crlf_ends_data():
    text, events = data(framer(), b"a\n.\nb\r.\rc\r\n.\r\n")
    assert events == [MessageData(len(text), False)]
    assert text == b"a\n.\nb\r.\rc\r\n"         # one message; the session rejects it


@pytest.mark.parametrize("cut", range(1, 8))
def test_lf_dot_crlf_never_ends_data_wherever_the_stream_is_cut(cut):
    # "\n.\r\n" (the 2023 smuggling variant): once ended the message when the bare LF
    # came at the end of a piece, and the smuggled MAIL FROM became a command.
    stream = b"a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n"
    text, events = data(framer(), stream[:cut], stream[cut:])
    assert events == [MessageData(len(text), False)]
    assert text == b"a\n.\r\nMAIL FROM:<x@y>\r\n"


# --- DATA: bounded memory ---------------------------------------------------------------
def test_buffered_counts_unparsed_input_not_the_message():
    # The flow control in net/connection.py pauses reading above 1 MiB of `buffered`:
    # if the message so far were counted, a message over 1 MiB could never end.
    f = framer(size=50 << 20)
    got = bytearray()
    f.start_data(got.extend)
    line = b"x" * 76 + b"\r\n"
    for _ in range(2000):
        f.feed(line * 100)                  # 7.8 KB a time, 15.6 MB in all
        assert drain(f) == []
        assert f.buffered == 0
    f.feed(b"partial line, no end yet")
    drain(f)
    assert f.buffered == 0                  # passed on too: a long line is no problem
    f.feed(b"\r\n.\r\n")
    assert drain(f) == [MessageData(len(got), False)]
    assert len(got) == 2000 * 7800 + 26


def test_only_an_undecidable_tail_is_held():
    f = framer()
    f.start_data(bytearray().extend)
    for tail, held in ((b"abc\r", 1), (b"\n", 0), (b".", 1), (b"\r", 2)):
        f.feed(tail)
        assert drain(f) == []
        assert f.buffered == held           # a CR whose LF may follow, "." / ".\r"


def test_oversize_message_read_to_the_end_and_kept_nowhere():
    f = framer(size=1000)
    text, events = data(f, *[b"x" * 98 + b"\r\n"] * 100, b".\r\nNOOP\r\n")
    assert len(text) <= 1000
    assert events == [MessageData(10_000, True), CommandLine(b"NOOP")]
    assert f.buffered == 0


def test_max_size_exactly_is_accepted():
    text, events = data(framer(size=10), b"12345678\r\n.\r\n")
    assert events == [MessageData(10, False)] and text == b"12345678\r\n"


# --- BDAT (RFC 3030) --------------------------------------------------------------------
def test_bdat_chunk_exact_and_discarded():
    f = framer()
    got = bytearray()
    f.start_bdat(5, got.extend)
    f.feed(b"ab\r\n.cNOOP\r\n")
    assert drain(f) == [Chunk(5, True), CommandLine(b"cNOOP")]
    assert got == b"ab\r\n."                # no transparency in BDAT
    f.start_bdat(3, None)
    f.feed(b"xy")
    assert drain(f) == [] and f.buffered == 0
    f.feed(b"z")
    assert drain(f) == [Chunk(3, False)]


def test_bdat_chunk_streams_as_it_arrives():
    f = framer()
    got = bytearray()
    f.start_bdat(3 << 20, got.extend)
    for _ in range(3):
        f.feed(b"y" * (1 << 20))
        events = drain(f)
        assert f.buffered == 0
    assert events == [Chunk(3 << 20, True)] and len(got) == 3 << 20


# --- the text checks ---------------------------------------------------------------------
def test_problems_detected():
    check = checked(20, b"a\nb\r\nc\x00\r\n" + b"z" * 19 + b"\r\n")
    assert check.problems == {Problem.BARE_NEWLINE, Problem.NUL, Problem.LONG_LINE}


def test_crlf_split_between_pieces_is_not_bare():
    assert checked(0, b"a\r", b"\nb\r", b"\n").problems == set()
    assert checked(0, b"a\r", b"b\r\n").problems == {Problem.BARE_NEWLINE}
    assert checked(0, b"a\r\n", b"\r").problems == {Problem.BARE_NEWLINE}
    assert checked(0, b"a\r", b"\r\n").problems == {Problem.BARE_NEWLINE}


def test_line_length_counts_the_crlf_across_pieces():
    # RFC 5321 §4.5.3.1.6: 1000 octets including the CRLF
    assert checked(1000, b"x" * 500, b"x" * 498 + b"\r", b"\n").problems == set()
    assert checked(1000, b"x" * 500, b"x" * 499 + b"\r\n").problems == {Problem.LONG_LINE}
    assert checked(1000, b"x" * 1001).problems == {Problem.LONG_LINE}  # unfinished line


def test_no_limit_by_default_but_long_lines_are_noted():
    check = checked(0, b"x" * 5000 + b"\r\n")
    assert check.problems == set()
    assert check.long_lines                  # relaying must re-encode (mx/downgrade.py)
    assert not checked(0, b"x" * 998 + b"\r\n").long_lines


def test_the_transparency_dot_is_not_counted():
    # A 998-octet line starting with "." is sent as 999 octets plus CRLF (smtplib and
    # every client double the dot); after un-stuffing it is within the limit.
    check = TextCheck(1000)
    f = framer(size=1 << 20)
    f.start_data(check.feed)
    f.feed(b"Subject: x\r\n\r\n.." + b"d" * 997 + b"\r\n.\r\n")
    assert drain(f) == [MessageData(14 + 1000, False)]
    assert check.finish() == set()
    check = TextCheck(1000)
    f.start_data(check.feed)
    f.feed(b"..." + b"d" * 997 + b"\r\n.\r\n")      # 999 octets after un-stuffing
    drain(f)
    assert check.finish() == {Problem.LONG_LINE}


def test_line_meter():
    meter = LineMeter(10_000)
    for piece in (b"ab", b"c\r\nde\r\n", b"", b"f" * 50, b"\r\nxy"):
        meter.feed(piece)
    assert meter.longest == 52              # "f" * 50 + CRLF
    assert longest_line(b"a\r\n" + b"b" * 3000 + b"\r\nc", window=7) == 3002
    assert longest_line(b"a" * 5000, enough=100) > 100


# --- through the session ------------------------------------------------------------------
def send(h: Harness, wire: bytes, rcpt: str = "alice@example.test") -> list[str]:
    h.send(f"MAIL FROM:<a@x.test>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n")
    return h.send(wire)


def stored(store, address: str = "alice@example.test") -> bytes:
    from mailwright.address import parse_mailbox
    row = store.mailbox_messages(parse_mailbox(address))[-1]
    return asyncio.run(store.read_blob(row["blob"]))


def test_session_accepts_a_998_octet_dotted_line_under_the_strict_limit(store):
    h = Harness(store, config=make_config(text_line=1000))
    h.ehlo()
    line = b"." + b"d" * 997
    assert send(h, b"Subject: dot\r\n\r\n" + b"." + line + b"\r\n.\r\n")[0].startswith("250")
    assert stored(store).endswith(b"\r\n\r\n" + line + b"\r\n")
    assert send(h, b"Subject: dot\r\n\r\n" + b"x" + line + b"\r\n.\r\n")[0] \
        .startswith("554 5.6.0")


def test_session_delivers_long_lines_byte_exact_by_default(store):
    h = Harness(store)
    h.ehlo()
    body = b"<html>" + b"<td>cell</td>" * 5000 + b"</html>\r\n"      # 65 KB, one line
    assert send(h, b"Subject: long\r\n\r\n" + body + b".\r\n")[0].startswith("250")
    assert stored(store).endswith(b"Subject: long\r\n\r\n" + body)


def test_session_bdat_checks_text_across_chunks(store):
    h = Harness(store, config=make_config(text_line=1000))
    h.ehlo()
    h.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<alice@example.test>\r\n")
    first = b"Subject: chunks\r\n\r\n" + b"y" * 600
    assert h.send(f"BDAT {len(first)}\r\n".encode() + first)[0].startswith("250")
    rest = b"y" * 400 + b"\r\n"          # one line of 1002 octets over two chunks
    assert h.send(f"BDAT {len(rest)} LAST\r\n".encode() + rest)[0].startswith("554 5.6.0")
    h.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<alice@example.test>\r\n")
    assert h.send(b"BDAT 3\r\nab\r")[0].startswith("250")
    assert h.send(b"BDAT 3 LAST\r\n\nc\n")[0].startswith("554 5.6.0")   # the last LF is bare


def test_session_over_size_data_answers_552_and_goes_on(store):
    h = Harness(store, config=make_config(max_message_size=1000))
    h.ehlo()
    assert send(h, (b"y" * 98 + b"\r\n") * 20 + b".\r\n")[0].startswith("552 5.3.4")
    assert h.session.framer.buffered == 0
    assert h.cmd("NOOP").startswith("250")


def test_spool_keeps_small_messages_in_memory_and_spills_large_ones(tmp_path):
    small = Spool(tmp_path, memory=100)
    small.write(b"Subject: s\r\n\r\nbody\r\n")
    assert small.content() == b"Subject: s\r\n\r\nbody\r\n" and not small.spilled
    big = Spool(tmp_path, memory=100)
    head = b"Subject: b\r\n\r\n"
    body = b"z" * 78 + b"\r\n"
    for _ in range(1000):
        big.write(body if big.size else head + body)
    assert big.spilled and os.listdir(tmp_path) == []     # an unnamed file
    content = big.content()
    assert isinstance(content, Spooled) and content.head == head
    assert len(content) == len(head) + 80_000
    traced = b"Received: x\r\n" + content                  # prepended, not copied
    assert isinstance(traced, Spooled)
    assert traced.read() == b"Received: x\r\n" + head + body * 1000


def test_spool_reads_a_header_that_does_not_end_in_memory(tmp_path):
    spool = Spool(tmp_path, memory=100)
    for _ in range(10):
        spool.write(b"X-Long: " + b"h" * 70 + b"\r\n")
    spool.write(b"\r\nbody\r\n")
    assert spool.content() == (b"X-Long: " + b"h" * 70 + b"\r\n") * 10 + b"\r\nbody\r\n"


# --- relaying long lines (RFC 5322 §2.1.1): mx/downgrade.py ------------------------------
def lines_of(message: bytes) -> list[bytes]:
    return message.split(b"\r\n")


def test_relay_copy_re_encodes_only_the_parts_with_long_lines():
    import email
    import email.policy

    from mailwright.mx.downgrade import has_long_lines, shorten_lines
    html = "<p>Grüße</p>".encode() * 300                    # one 4.2 KB line
    message = (b"From: a@x.test\r\nSubject: " + b"w " * 600 + b"\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n"
               b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n..short stays\r\n"
               b"--b\r\nContent-Type: text/html; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n\r\n" + html + b"\r\n"
               b"--b\r\nContent-Type: application/pdf\r\n\r\n" + b"%PDF" * 400 + b"\r\n"
               b"--b--\r\n")
    assert has_long_lines(message)
    out = shorten_lines(message)
    assert max(map(len, lines_of(out))) <= 998
    assert b"\r\n..short stays\r\n--b\r\n" in out            # untouched, byte for byte
    parsed = email.message_from_bytes(out, policy=email.policy.compat32)
    plain, rich, pdf = parsed.get_payload()
    assert rich["Content-Transfer-Encoding"] == "quoted-printable"
    assert rich.get_payload(decode=True) == html
    assert pdf["Content-Transfer-Encoding"] == "base64"
    assert pdf.get_payload(decode=True) == b"%PDF" * 400
    assert " ".join(parsed["Subject"].split()) == " ".join(["w"] * 600)   # folded only
    assert shorten_lines(out) is out                         # nothing left to do


def test_relay_copy_of_a_plain_message_becomes_mime():
    from mailwright.mx.downgrade import shorten_lines
    body = b"x" * 2000 + b"\r\nend\r\n"
    out = shorten_lines(b"Subject: plain\r\n\r\n" + body)
    head, _, encoded = out.partition(b"\r\n\r\n")
    assert b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable" in head
    import quopri
    assert quopri.decodestring(encoded) == body


def test_unfoldable_header_line_is_left_for_the_peer():
    from mailwright.mx.downgrade import shorten_lines
    message = b"X-Token: " + b"t" * 1500 + b"\r\n\r\nbody\r\n"
    assert shorten_lines(message) == message


def test_queue_client_sends_no_line_over_998_octets():
    """The send-time net for queued messages with long lines (DSNs quoting one)."""
    import asyncio

    from mailwright.queue.transaction import _transaction
    from mailwright.smtpreply import Reply
    sent = []

    class Peer:
        def supports(self, ext):
            return ext in ("8BITMIME", "PIPELINING")

        async def pipeline(self, lines, encoding):
            return [Reply(250, "", "ok")] * (len(lines) - 1) + [Reply(354, "", "go")]

        async def data(self, content, timeout):
            sent.append(content)
            return Reply(250, "", "queued")

    class Message:
        smtputf8, body, ret, envid, mail_from = False, None, None, None, "a@x.test"

    class Rcpt:
        id, address, notify, orcpt = 1, "b@y.test", None, None

    content = b"Subject: dsn\r\n\r\n" + b"y" * 1200 + b"\r\n"
    outcomes = asyncio.run(_transaction(Peer(), Message(), [Rcpt()], content, "peer", 5))
    assert outcomes[1].state == "delivered"
    assert max(map(len, lines_of(sent[0]))) <= 998


# Message text as a client may send it: words, dots, every kind of line ending, lines
# starting with dots, and terminators that may come early.
_TOKENS = [b"a", b"word ", b".", b"..", b"\r", b"\n", b"\r\n", b"\r\n.", b"\r\n.\r\n",
           b".\r\n", b"\n.\n", b"\x00"]


def _reference(stream: bytes) -> tuple[bytes, bytes] | None:
    """(the un-stuffed message, what follows its terminator), by RFC 5321 §4.1.1.4 and
    §4.5.2 read literally on the whole stream at once; None without a terminator."""
    if stream.startswith(b".\r\n"):
        return b"", stream[3:]
    end = stream.find(b"\r\n.\r\n")
    if end < 0:
        return None
    text = stream[:end + 2]
    unstuffed = re.sub(rb"(^|\r\n)\.", rb"\1", text)
    return unstuffed, stream[end + 5:]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=60),
       st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=30))
def test_data_gives_the_text_and_the_end_the_rfc_gives_however_it_is_split(tokens, cuts):
    stream = b"".join(tokens) + b"\r\n.\r\nNOOP\r\n"
    expected, after = _reference(stream)
    pieces, at, i = [], 0, 0
    while at < len(stream):
        step = cuts[i % len(cuts)]
        pieces.append(stream[at:at + step])
        at, i = at + step, i + 1
    f = Framer(1000, 1 << 20)
    got, events = data(f, *pieces)
    ends = [e for e in events if isinstance(e, MessageData)]
    assert ends and ends[0].size == len(expected)
    assert bytes(got) == expected
    # Then command lines, where a bare LF ends a line too (_next_line).
    assert events[events.index(ends[0]) + 1:] == \
        [CommandLine(line.removesuffix(b"\r")) for line in after.split(b"\n")[:-1]]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"xy\r\n", b"\n\r"]),
                min_size=1, max_size=40),
       st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=20))
@example([b"\r", b"a", b"\n"], [1, 2])      # a CR ending a piece, "a\n" the next
@example([b"a", b"\r", b"a", b"\n"], [9])   # a bare CR and a bare LF, in that order
def test_bare_cr_or_lf_is_found_however_the_text_is_cut(tokens, cuts):
    text = b"".join(tokens)
    # RFC 5321 §2.3.8 on the whole text: every CR is followed by a LF, every LF
    # preceded by a CR.
    bare = re.search(rb"\r(?!\n)|(?<!\r)\n", text) is not None
    pieces, at, i = [], 0, 0
    while at < len(text):
        pieces.append(text[at:at + cuts[i % len(cuts)]])
        at, i = at + cuts[i % len(cuts)], i + 1
    assert (Problem.BARE_NEWLINE in checked(0, *pieces).problems) is bare


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"bcd", b"x" * 40, b"\r\n", b"\r\n\r\n"]),
                max_size=40),
       st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20))
@example([b"a", b"\r\n"], [2])         # a CR ending a piece, its LF the next
def test_longest_line_is_the_whole_texts_however_it_is_cut(tokens, cuts):
    text = b"".join(tokens)
    # RFC 5321 §4.5.3.1.6 on the whole text: a line with its CRLF; an unfinished
    # last line as it is.
    lines = text.split(b"\r\n")
    expected = max([len(line) + 2 for line in lines[:-1]] + [len(lines[-1])])
    pieces, at, i = [], 0, 0
    while at < len(text):
        pieces.append(text[at:at + cuts[i % len(cuts)]])
        at, i = at + cuts[i % len(cuts)], i + 1
    check = checked(0, *pieces)
    assert check.longest == expected
    assert check.problems == set()

