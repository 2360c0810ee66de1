"""IMAP command syntax (RFC 9051 §9, RFC 3501 §9): framing and parsing, sans-I/O.

Framing cuts the byte stream into whole commands. A command is one line, except
that a line ending in a literal `{n}` (synchronizing: the client waits for our
"+" continuation) or `{n+}` (RFC 7888 LITERAL+: it does not) is followed by n
octets and then more of the same command. Lines and literals are bounded, so
no client can make us buffer without limit.

Parsing reads the grammar's pieces (atoms, strings, literals, lists, sequence
sets, dates) from a whole command; the session calls the pieces each command
needs and a malformed one raises ParseError, answered with BAD.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

# RFC 9051 §9: ATOM-CHAR is any CHAR except atom-specials.
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x20)) | {0x7F}
_LIST_WILDCARDS = frozenset(b"%*")
_LITERAL_AT_END = re.compile(rb"~?\{(\d{1,10})([+-]?)\}\r?\n\Z")
_DATE_TIME = re.compile(
    rb'"([ \d]?\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')
_LITERAL = re.compile(rb"\{(\d{1,10})[+-]?\}\r?\n")
_DATE = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# RFC 9051 §9 status-att, RECENT from RFC 3501, HIGHESTMODSEQ (RFC 7162),
# APPENDLIMIT (RFC 7889).
STATUS_ATTS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
               "HIGHESTMODSEQ", "APPENDLIMIT")


class ParseError(Exception):
    """The command does not follow the grammar: answered with BAD."""


# --- framing -----------------------------------------------------------------------
@dataclass(frozen=True)
class Continue:
    """A synchronizing literal was announced: send "+ ..." and wait for its octets."""


@dataclass(frozen=True)
class TooBig:
    """A literal over the limit was announced. `command` is what came before it (for
    the tag); `close` is set for a non-synchronizing one, whose octets are already
    on their way: RFC 7888 §4 lets the server answer and close."""
    command: bytes
    close: bool


@dataclass(frozen=True)
class LineTooLong:
    command: bytes


CONTINUE = Continue()


class CommandFramer:
    def __init__(self, line_limit: int, literal_limit: int, command_limit: int):
        self.line_limit = line_limit          # one line, CRLF included
        self.literal_limit = literal_limit    # one literal
        self.command_limit = command_limit    # lines and literals together
        self.buf = bytearray()
        self.command = bytearray()
        self.need = 0                         # literal octets still to come
        self.skipping = False                 # dropping an overlong line to its end

    def feed(self, data: bytes) -> None:
        self.buf += data

    @property
    def buffered(self) -> int:
        """Input not yet looked at. The command being assembled is not counted: a
        literal in progress needs more input to complete, so reading must go on
        (the literal limit bounds it)."""
        return len(self.buf)

    def discard(self) -> None:
        """Forget pending input (after STARTTLS: RFC 9051 §6.2.1)."""
        self.buf.clear()
        self.command.clear()
        self.need = 0
        self.skipping = False

    def next(self) -> bytes | Continue | TooBig | LineTooLong | None:
        buf = self.buf
        while True:
            if self.need:
                take = min(self.need, len(buf))
                self.command += buf[:take]
                del buf[:take]
                self.need -= take
                if self.need:
                    return None
            end = buf.find(b"\n")
            if self.skipping:
                if end < 0:
                    buf.clear()
                    return None
                del buf[:end + 1]
                self.skipping = False
                continue
            if end < 0:
                if len(buf) > self.line_limit:
                    head = bytes(buf[:64])
                    buf.clear()
                    self.skipping = True
                    return self._overlong(head)
                return None
            if end + 1 > self.line_limit:
                head = bytes(buf[:64])
                del buf[:end + 1]
                return self._overlong(head)
            line_start = len(self.command)
            self.command += buf[:end + 1]
            del buf[:end + 1]
            # Only this line can announce a literal: the octets of one just read are
            # data, whatever they look like (found by fuzz/: data ending in "{4}").
            m = _LITERAL_AT_END.search(self.command,
                                       max(line_start, len(self.command) - 20))
            if m is None:
                command = bytes(self.command)
                self.command.clear()
                return command
            size, sync = int(m.group(1)), m.group(2) != b"+"
            if size > self.literal_limit or len(self.command) + size > self.command_limit:
                command = bytes(self.command)
                self.command.clear()
                return TooBig(command, close=not sync)
            self.need = size
            if sync and size:
                return CONTINUE

    def _overlong(self, head: bytes) -> LineTooLong:
        """The command so far (or the dropped line's start), for its tag."""
        command = bytes(self.command) or head
        self.command.clear()
        return LineTooLong(command)


# --- parsing -------------------------------------------------------------------------
@dataclass(frozen=True)
class SequenceSet:
    """RFC 9051 §9 sequence-set: ranges with None for "*"; or "$" (RFC 5182 SEARCHRES)."""
    ranges: tuple[tuple[int | None, int | None], ...]
    saved: bool = False

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Ordered (low, high) ranges with "*" as `largest`; RFC 9051 §9: "n:m" and
        "m:n" are the same set."""
        out = []
        for lo, hi in self.ranges:
            a = largest if lo is None else lo
            b = largest if hi is None else hi
            out.append((min(a, b), max(a, b)))
        return out

    def members(self, values: list[int]) -> list[int]:
        """Which of the sorted `values` (UIDs or sequence numbers) are in the set."""
        if not values:
            return []
        largest = values[-1]
        ranges = self.resolve(largest)
        return [v for v in values if any(lo <= v <= hi for lo, hi in ranges)]


class Reader:
    def __init__(self, data: bytes):
        # A whole command: its one line ending is not part of the syntax.
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        self.d = data
        self.i = 0

    # -- basics --
    def at_end(self) -> bool:
        return self.i >= len(self.d)

    def peek(self, n: int = 1) -> bytes:
        return self.d[self.i:self.i + n]

    def expect(self, token: bytes) -> None:
        if self.d[self.i:self.i + len(token)].upper() != token.upper():
            raise ParseError(f"expected {token.decode()!r}")
        self.i += len(token)

    def accept(self, token: bytes) -> bool:
        if self.d[self.i:self.i + len(token)].upper() == token.upper():
            self.i += len(token)
            return True
        return False

    def sp(self) -> None:
        if self.peek() != b" ":
            raise ParseError("expected a space")
        self.i += 1

    def end(self) -> None:
        if not self.at_end():
            raise ParseError(f"unexpected text: {self.d[self.i:self.i + 20]!r}")

    def rest(self) -> bytes:
        text, self.i = self.d[self.i:], len(self.d)
        return text

    # -- atoms and strings --
    def _chars(self, extra: frozenset[int] = frozenset()) -> bytes:
        start = self.i
        d = self.d
        while self.i < len(d) and (d[self.i] not in _ATOM_SPECIALS or d[self.i] in extra):
            if d[self.i] >= 0x80:
                break
            self.i += 1
        return d[start:self.i]

    def atom(self) -> str:
        word = self._chars()
        if not word:
            raise ParseError("expected an atom")
        return word.decode("ascii")

    def tag(self) -> str:
        # tag = 1*<any ASTRING-CHAR except "+">
        word = self._chars(frozenset(b"]"))
        if not word or b"+" in word:
            raise ParseError("invalid tag")
        return word.decode("ascii")

    def quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        d = self.d
        while True:
            if self.i >= len(d):
                raise ParseError("unterminated quoted string")
            c = d[self.i]
            self.i += 1
            if c == 0x22:
                return bytes(out)
            if c == 0x5C:
                if self.i >= len(d) or d[self.i] not in b'"\\':
                    raise ParseError("bad escape in quoted string")
                c = d[self.i]
                self.i += 1
            elif c in (0x0D, 0x0A, 0):
                raise ParseError("CR, LF or NUL in quoted string")
            out.append(c)

    def literal(self, binary: bool = False) -> bytes:
        """{n}CRLF octets, or {n+} / {n-}; with `binary`, RFC 3516 literal8 ~{n} too."""
        if binary:
            self.accept(b"~")
        m = _LITERAL.match(self.d, self.i)
        if m is None:
            raise ParseError("bad literal")
        n = int(m.group(1))
        start = m.end()
        if start + n > len(self.d):
            raise ParseError("literal shorter than announced")
        self.i = start + n
        return self.d[start:start + n]

    def string(self) -> bytes:
        c = self.peek()
        if c == b'"':
            return self.quoted()
        if c == b"{":
            return self.literal()
        raise ParseError("expected a string")

    def astring(self) -> bytes:
        c = self.peek()
        if c in (b'"', b"{"):
            return self.string()
        word = self._utf8_chars(frozenset(b"]"))
        if not word:
            raise ParseError("expected an atom or string")
        return word

    def _utf8_chars(self, extra: frozenset[int]) -> bytes:
        # RFC 9051 allows UTF-8 in atoms where a mailbox name is expected (utf8-atom
        # via astring's 8-bit relaxation, §9 "UTF8-2 / UTF8-3 / UTF8-4" in mailbox).
        start = self.i
        d = self.d
        while self.i < len(d) and (d[self.i] not in _ATOM_SPECIALS or d[self.i] in extra):
            self.i += 1
        return d[start:self.i]

    def nstring(self) -> bytes | None:
        if self.accept(b"NIL"):
            return None
        return self.string()

    def text(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("invalid UTF-8") from None

    def astr(self) -> str:
        return self.text(self.astring())

    def list_mailbox(self) -> str:
        c = self.peek()
        if c in (b'"', b"{"):
            return self.text(self.string())
        word = self._utf8_chars(frozenset(b"]%*"))
        if not word:
            raise ParseError("expected a mailbox pattern")
        return self.text(word)

    # -- numbers --
    def number(self) -> int:
        start = self.i
        while self.i < len(self.d) and 0x30 <= self.d[self.i] <= 0x39:
            self.i += 1
        if start == self.i or self.i - start > 20:
            raise ParseError("expected a number")
        return int(self.d[start:self.i])

    def nz_number(self) -> int:
        n = self.number()
        if n == 0:
            raise ParseError("expected a non-zero number")
        if n > 0xFFFFFFFF:
            raise ParseError("number out of range")
        return n

    def sequence_set(self) -> SequenceSet:
        if self.accept(b"$"):
            return SequenceSet((), saved=True)
        ranges = []
        while True:
            lo = self._seq_number()
            hi = lo
            if self.accept(b":"):
                hi = self._seq_number()
            ranges.append((lo, hi))
            if not self.accept(b","):
                break
        return SequenceSet(tuple(ranges))

    def _seq_number(self) -> int | None:
        if self.accept(b"*"):
            return None
        return self.nz_number()

    def is_sequence_set_next(self) -> bool:
        c = self.peek()
        return c == b"$" or c == b"*" or (c.isdigit() if c else False)

    # -- lists --
    def open(self) -> bool:
        return self.accept(b"(")

    def close(self) -> bool:
        return self.accept(b")")

    def list_of(self, item) -> list:
        """"(" [item *(SP item)] ")" with a parser function for one item."""
        self.expect(b"(")
        out = []
        if self.accept(b")"):
            return out
        while True:
            out.append(item())
            if self.accept(b")"):
                return out
            self.sp()

    def status_atts(self) -> list[str]:
        """"(" status-att *(SP status-att) ")", upper-cased; unknown ones are BAD."""
        items = [a.upper() for a in self.list_of(self.atom)]
        if not items:
            raise ParseError("expected STATUS items")
        for item in items:
            if item not in STATUS_ATTS:
                raise ParseError(f"unknown STATUS item {item}")
        return items

    def flag(self) -> str:
        if self.accept(b"\\"):
            if self.accept(b"*"):
                return "\\*"
            return "\\" + self.atom()
        return self.atom()

    def flag_list(self) -> list[str]:
        return self.list_of(self.flag)

    # -- dates --
    def date(self) -> datetime.date:
        """RFC 9051 §9 date: 1*2DIGIT "-" month "-" 4DIGIT, optionally quoted."""
        quoted = self.accept(b'"')
        m = _DATE.match(self.d, self.i)
        if m is None:
            raise ParseError("expected a date like 1-Feb-2026")
        self.i = m.end()
        if quoted:
            self.expect(b'"')
        return _make_date(m)

    def date_time(self) -> datetime.datetime:
        """date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone."""
        m = _DATE_TIME.match(self.d, self.i)
        if m is None:
            raise ParseError('expected a date-time like "01-Feb-2026 10:00:00 +0000"')
        self.i = m.end()
        day = _make_date(m)
        offset = datetime.timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
        if m.group(7) == b"-":
            offset = -offset
        try:
            return datetime.datetime(day.year, day.month, day.day, int(m.group(4)),
                                     int(m.group(5)), int(m.group(6)),
                                     tzinfo=datetime.timezone(offset))
        except ValueError:
            raise ParseError("invalid time") from None


def _make_date(m: re.Match) -> datetime.date:
    month = m.group(2).decode().capitalize()
    if month not in MONTHS:
        raise ParseError(f"unknown month {month!r}")
    try:
        return datetime.date(int(m.group(3)), MONTHS.index(month) + 1, int(m.group(1)))
    except ValueError:
        raise ParseError("invalid date") from None


def command_tag(command: bytes) -> str:
    """The tag of a (possibly malformed) command, for the reply; "*" when there is none."""
    try:
        return Reader(command).tag()
    except ParseError:
        return "*"
