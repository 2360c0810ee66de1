from mailwright.smtp.framing import (
    Chunk,
    CommandLine,
    Framer,
    LineTooLong,
    MessageData,
    Mode,
    Problem,
)


def framer(**kw) -> Framer:
    return Framer(kw.get("hard", 100), kw.get("text_line", 1000), kw.get("size", 10_000))


def drain(f: Framer) -> list:
    out = []
    while (ev := f.next_event()) is not None:
        out.append(ev)
    return out


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


def test_data_terminator_split_across_feeds_and_rest_kept():
    f = framer()
    f.start_data()
    for piece in (b"a\r\n..b\r", b"\n.", b"\r", b"\nNOOP\r\n"):
        f.feed(piece)
    events = drain(f)
    assert events == [MessageData(b"a\r\n.b\r\n", frozenset()), CommandLine(b"NOOP")]
    assert f.mode is Mode.COMMAND


def test_first_line_dot_stuffing_and_empty_message():
    f = framer()
    f.start_data()
    f.feed(b"..x\r\n.\r\n")
    assert drain(f)[0].content == b".x\r\n"
    f.start_data()
    f.feed(b".\r\n")
    assert drain(f)[0].content == b""


def test_oversize_message_is_not_buffered():
    f = framer(size=1000)
    f.start_data()
    for _ in range(100):
        f.feed(b"x" * 98 + b"\r\n")
        assert drain(f) == []
        assert f.buffered < 1200
    f.feed(b".\r\n")
    [ev] = drain(f)
    assert ev.problems == {Problem.TOO_BIG}


def test_problems_detected():
    f = framer(text_line=20)
    f.start_data()
    f.feed(b"a\nb\r\nc\x00\r\n" + b"z" * 19 + b"\r\n.\r\n")
    [ev] = drain(f)
    assert ev.problems == {Problem.BARE_NEWLINE, Problem.NUL, Problem.LONG_LINE}


def test_bdat_chunk_exact_and_discarded():
    f = framer()
    f.start_bdat(5, keep=True)
    f.feed(b"ab\r\n.cNOOP\r\n")
    assert drain(f) == [Chunk(b"ab\r\n.", 5, True), CommandLine(b"cNOOP")]
    f.start_bdat(3, keep=False)
    f.feed(b"xyz")
    assert drain(f) == [Chunk(b"", 3, False)]


def test_discard_input_drops_pipelined_bytes():
    f = framer()
    f.feed(b"STARTTLS\r\nMAIL FROM:<x@y>\r\n")
    assert f.next_event() == CommandLine(b"STARTTLS")
    f.discard_input()
    assert drain(f) == []
