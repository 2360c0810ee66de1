"""Byte stream → SMTP command lines, DATA messages and BDAT chunks (sans-I/O).

The framer holds only input it has not parsed yet, and little of it: a command
line longer than the hard limit is dropped up to its end and reported once;
message text (DATA, un-stuffed, or BDAT chunk data) is handed on piece by piece,
as it arrives, to a sink the session gives (a spool: memory, then a file). So
`buffered`, what flow control measures, never includes the message collected so
far: a client is paused only when it sends faster than we parse, and the end of
a large message can always be read. A DATA message larger than the size limit
stops going to the sink but is still read up to its terminator, so the session
can answer 552 and go on; a BDAT chunk that will not be kept is counted, not
stored.

Smuggling (the 2023 "SMTP smuggling" family): only CRLF "." CRLF ends DATA
(RFC 5321 §4.1.1.4). A bare LF or bare CR anywhere in the message is reported
(TextCheck) and the session rejects the whole message, so `\\n.\\n` or
`\\r.\\r` can never end one message and start another here, nor be relayed on
to a server that would read them that way.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from ..net.lines import LineBuffer, LineTooLong

_TERMINATOR = b"\r\n.\r\n"
_END_LINE = b".\r\n"            # the terminator as seen at the start of a line
_DOT_LINE = b"\r\n."            # a line starting with a dot (after the first)
# RFC 5321 §4.5.3.1.6 / RFC 5322 §2.1.1: 1000 octets per text line with its CRLF.
RFC_TEXT_LINE = 1000

Sink = Callable[[bytes], None]   # takes message text, piece by piece


@dataclass(frozen=True)
class CommandLine:
    line: bytes          # without the line ending


@dataclass(frozen=True)
class MessageData:
    """The end of a DATA message; its text went to the sink given to start_data()."""
    size: int            # octets after un-stuffing (counted on past the limit)
    too_big: bool        # past max_message_size: the sink did not get all of it


@dataclass(frozen=True)
class Chunk:
    """The end of a BDAT chunk; its data went to the sink given to start_bdat()."""
    size: int            # octets the client sent in this chunk
    kept: bool           # False: there was no sink, the data was dropped


class Problem(enum.StrEnum):
    TOO_BIG = "too-big"
    BARE_NEWLINE = "bare-newline"
    LONG_LINE = "long-line"
    NUL = "nul"


class Mode(enum.Enum):
    COMMAND = 1
    DATA = 2
    BDAT = 3


class TextCheck:
    """What is wrong with message text, fed in pieces of any size: NUL, bare CR or
    LF (RFC 5321 §2.3.8), lines longer than `text_line` octets with their CRLF
    (0: no limit). DATA text is fed after un-stuffing, so the dot a client doubled
    for transparency is not counted (RFC 5321 §4.5.3.1.6).

    One split of each piece at its CRLFs answers both: the lines are the parts (a
    line split across pieces is measured whole, its CRLF counted as RFC 5321
    §4.5.3.1.6 counts it), and a CR or LF left in any part is bare: 182 µs per
    100 KB of text in 64 KiB pieces, where counting CRs, LFs and CRLFs and then
    splitting at LFs took 268 (the largest item of the loop thread's own work at
    100 KB, cProfile of bench/smtp_accept.py)."""

    def __init__(self, text_line: int = 0):
        self.text_line = text_line
        self.problems: set[Problem] = set()
        self.longest = 0         # octets of the longest line seen, its CRLF included
        self._line = 0           # octets of the unfinished line so far
        self._cr = False         # the last piece ended with a CR (its LF may follow)

    @property
    def long_lines(self) -> bool:
        """A line over RFC 5322's 998 octets (+ CRLF): relaying must re-encode it."""
        return self.longest > RFC_TEXT_LINE

    def feed(self, text: bytes) -> None:
        if not text:
            return
        if b"\x00" in text:
            self.problems.add(Problem.NUL)
        if self._cr:
            self._cr = False
            if text[0] == 0x0A:           # the LF of the CR the last piece ended with
                self.longest = max(self.longest, self._line + 1)
                self._line = 0
                text = text[1:]
            else:
                self.problems.add(Problem.BARE_NEWLINE)
        if not text:
            return
        lines = text.split(b"\r\n")
        last = lines[-1]
        if last.endswith(b"\r"):         # half a CRLF, perhaps: the next piece says
            self._cr = True
            last = last[:-1]
        if Problem.BARE_NEWLINE not in self.problems:
            ended = b"".join(lines[:-1])
            if b"\r" in ended or b"\n" in ended or b"\r" in last or b"\n" in last:
                self.problems.add(Problem.BARE_NEWLINE)
        if len(lines) > 1:             # the first ends a line begun before this piece
            widest = max(map(len, lines[1:-1]), default=0)
            self.longest = max(self.longest, self._line + len(lines[0]) + 2, widest + 2)
            self._line = 0
        # An unfinished line counts as it grows (its CR, if it ended the piece, too):
        # a line that never ends is measured all the same.
        self._line += len(lines[-1])
        self.longest = max(self.longest, self._line)

    def finish(self) -> set[Problem]:
        if self._cr:
            self.problems.add(Problem.BARE_NEWLINE)
        if self.text_line and self.longest > self.text_line:
            self.problems.add(Problem.LONG_LINE)
        return self.problems


class Framer:
    def __init__(self, hard_line_limit: int, max_message_size: int):
        self.max_message_size = max_message_size
        self.mode = Mode.COMMAND
        self._lines = LineBuffer(hard_line_limit)
        self._buf = self._lines.buf          # shared: DATA and BDAT read from it too
        self._sink: Sink | None = None
        self._size = 0
        self._line_start = True
        self._bdat_left = 0
        self._bdat_size = 0

    @property
    def buffered(self) -> int:
        """Octets received and not parsed yet (message text handed on is not counted)."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def discard_input(self) -> None:
        """Drop everything received but not yet consumed (used at STARTTLS:
        RFC 3207 §4.2 / CVE-2011-0411, pipelined plaintext must not survive)."""
        self._lines.discard()

    def start_data(self, sink: Sink) -> None:
        self.mode = Mode.DATA
        self._sink = sink
        self._size = 0
        # The line after "DATA" starts a line: "." there can end an empty message,
        # and a first line beginning with a dot is un-stuffed like any other.
        self._line_start = True

    def start_bdat(self, size: int, sink: Sink | None) -> None:
        """Read `size` octets of chunk data into `sink` (None: read and drop them)."""
        self.mode = Mode.BDAT
        self._bdat_left = self._bdat_size = size
        self._sink = sink

    def next_event(self) -> CommandLine | LineTooLong | MessageData | Chunk | None:
        if self.mode is Mode.COMMAND:
            return self._next_line()
        if self.mode is Mode.DATA:
            return self._next_message()
        return self._next_chunk()

    def _next_line(self) -> CommandLine | LineTooLong | None:
        # Commands are CRLF-terminated; a bare LF is tolerated here as most
        # MTAs do. (It is never tolerated inside DATA, see the module doc.)
        line = self._lines.next_line()
        if line is None or isinstance(line, LineTooLong):
            return line
        return CommandLine(line)

    def _next_message(self) -> MessageData | None:
        """Pass on all the text that can be decided now; the end of the message once
        its terminator has been read."""
        buf = self._buf
        while buf:
            if self._line_start and buf[0] == 0x2E:          # "." starting a line
                if len(buf) < len(_END_LINE) and _END_LINE.startswith(buf):
                    return None                             # the terminator, maybe
                if buf.startswith(_END_LINE):
                    del buf[:len(_END_LINE)]
                    return self._end_of_message()
                # RFC 5321 §4.5.2: the first character of a line is a period and
                # there are others on the line: the first one is deleted.
                del buf[:1]
                self._line_start = False
                continue
            # One search of buf for a line starting with "." (after its first) finds
            # both the terminator and the dots to remove: the terminator is the first
            # such line that is "." alone, and the text before it needs un-stuffing
            # only if that first line is another one (rare).
            dot = buf.find(_DOT_LINE)
            take = _text_span(buf, dot)
            if not take:
                return None
            text = bytes(buf[:take])
            del buf[:take]
            # Only a CRLF starts a line (RFC 5321 §2.3.8): after a bare LF, ".\r\n"
            # must not end the message however the stream was cut into pieces, or
            # "\n.\r\n" would end it on one server and not on another (smuggling).
            self._line_start = text.endswith(b"\r\n")
            # Lines inside the piece: the same rule (its first line was handled above).
            stuffed = 0 <= dot <= take - len(_DOT_LINE)
            self._pass_on(text.replace(_DOT_LINE, b"\r\n") if stuffed else text)
        return None

    def _pass_on(self, text: bytes) -> None:
        self._size += len(text)
        if self._size > self.max_message_size:
            self._sink = None            # too big: read on to the terminator, keep nothing
        if self._sink is not None:
            self._sink(text)

    def _end_of_message(self) -> MessageData:
        self.mode = Mode.COMMAND
        self._sink = None
        return MessageData(self._size, self._size > self.max_message_size)

    def _next_chunk(self) -> Chunk | None:
        if self._bdat_left and self._buf:
            take = min(self._bdat_left, len(self._buf))
            if self._sink is not None:
                self._sink(bytes(self._buf[:take]))
            del self._buf[:take]
            self._bdat_left -= take
        if self._bdat_left:
            return None
        self.mode = Mode.COMMAND
        kept, self._sink = self._sink is not None, None
        return Chunk(self._bdat_size, kept)


def _text_span(buf: bytearray, dot: int) -> int:
    """How much of buf (not starting a line with ".") is message text that can be
    passed on now, given where its first CRLF "." is (-1: nowhere): up to the CRLF
    that begins the terminator; else up to the last line end (a "." may start the
    next line); else, inside a long line, all but a final CR (its LF may come next)."""
    if dot >= 0:
        end = buf.find(_TERMINATOR, dot)
        if end >= 0:
            return end + 2
    lf = buf.rfind(b"\n")
    if lf >= 0:
        return lf + 1
    return len(buf) - buf.endswith(b"\r")
