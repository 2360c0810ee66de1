"""Byte stream → SMTP command lines, DATA messages and BDAT chunks (sans-I/O).

The framer never holds more than its limits: a command line longer than the
hard limit is dropped up to its end and reported once; a DATA message larger
than the size limit is dropped while the stream is still read up to the
terminator; a BDAT chunk that will not be kept is counted, not stored.

Smuggling (the 2023 "SMTP smuggling" family): only CRLF "." CRLF ends DATA
(RFC 5321 §4.1.1.4). A bare LF or bare CR anywhere in the message is reported
as a problem and the session rejects the whole message, so `\\n.\\n` or
`\\r.\\r` can never end one message and start another here, nor be relayed on
to a server that would read them that way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..net.lines import LineBuffer, LineTooLong

_TERMINATOR = b"\r\n.\r\n"


@dataclass(frozen=True)
class CommandLine:
    line: bytes          # without the line ending


@dataclass(frozen=True)
class MessageData:
    content: bytes                      # dot-unstuffed, every line CRLF-terminated
    problems: frozenset[str] = field(default_factory=frozenset)  # see Problem


@dataclass(frozen=True)
class Chunk:
    data: bytes          # empty when the chunk was discarded
    size: int            # octets the client sent in this chunk
    kept: bool


class Problem(enum.StrEnum):
    TOO_BIG = "too-big"
    BARE_NEWLINE = "bare-newline"
    LONG_LINE = "long-line"
    NUL = "nul"


class Mode(enum.Enum):
    COMMAND = 1
    DATA = 2
    BDAT = 3


class Framer:
    def __init__(self, hard_line_limit: int, text_line: int, max_message_size: int):
        self.max_message_size = max_message_size
        self.text_line = text_line
        self.mode = Mode.COMMAND
        self._lines = LineBuffer(hard_line_limit)
        self._buf = self._lines.buf          # shared: DATA and BDAT read from it too
        self._data = bytearray()
        self._scanned = 0
        self._too_big = False
        self._bdat_left = 0
        self._bdat_size = 0
        self._bdat_keep = False

    @property
    def buffered(self) -> int:
        return len(self._buf) + len(self._data)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def discard_input(self) -> None:
        """Drop everything received but not yet consumed (used at STARTTLS:
        RFC 3207 §4.2 / CVE-2011-0411, pipelined plaintext must not survive)."""
        self._lines.discard()

    def start_data(self) -> None:
        self.mode = Mode.DATA
        # A virtual CRLF before the first line lets "." on the first line end
        # an empty message and lets the first line be unstuffed like any other.
        self._data = bytearray(b"\r\n")
        self._scanned = 0
        self._too_big = False

    def start_bdat(self, size: int, keep: bool) -> None:
        self.mode = Mode.BDAT
        self._bdat_left = self._bdat_size = size
        self._bdat_keep = keep
        self._data = bytearray()

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
        if self._buf:
            self._data += self._buf
            self._buf.clear()
        end = self._data.find(_TERMINATOR, max(0, self._scanned - 4))
        if end < 0:
            self._scanned = len(self._data)
            # Bounded buffering: past the size limit keep only the tail that
            # could hold the start of the terminator.
            if len(self._data) > self.max_message_size + len(_TERMINATOR) + 2:
                self._too_big = True
                del self._data[:-4]
                self._scanned = 0
            return None
        rest = self._data[end + len(_TERMINATOR):]
        raw = bytes(self._data[:end + 2])          # keeps the virtual CRLF prefix
        self._data = bytearray()
        self._buf[:0] = rest
        self.mode = Mode.COMMAND
        if self._too_big:
            return MessageData(b"", frozenset({Problem.TOO_BIG}))
        problems = self.problems_in(raw)
        # RFC 5321 §4.5.2: drop the first "." of every line that starts with one.
        content = raw.replace(b"\r\n..", b"\r\n.")[2:]
        if len(content) > self.max_message_size:
            problems.add(Problem.TOO_BIG)
        return MessageData(content, frozenset(problems))

    def problems_in(self, raw: bytes) -> set[Problem]:
        """What is wrong with message text: NUL, bare CR/LF, overlong lines."""
        problems = set()
        if b"\x00" in raw:
            problems.add(Problem.NUL)
        crlf = raw.count(b"\r\n")
        if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
            problems.add(Problem.BARE_NEWLINE)
        # A line with its CRLF may hold text_line octets; split at LF keeps the CR.
        # (A regex scan for a run of non-newlines is quadratic in practice: far slower.)
        if len(raw) >= self.text_line and max(map(len, raw.split(b"\n"))) >= self.text_line:
            problems.add(Problem.LONG_LINE)
        return problems

    def _next_chunk(self) -> Chunk | None:
        if self._bdat_left and self._buf:
            take = min(self._bdat_left, len(self._buf))
            if self._bdat_keep:
                self._data += self._buf[:take]
            del self._buf[:take]
            self._bdat_left -= take
        if self._bdat_left:
            return None
        self.mode = Mode.COMMAND
        data = bytes(self._data)
        self._data = bytearray()
        return Chunk(data, self._bdat_size, self._bdat_keep)
