"""Splitting a byte stream into protocol lines, with a hard length limit (sans-I/O).

A line longer than the limit is dropped up to its end and reported once, so a
client can never make us buffer without bound, and the next line is read normally.
"""

from __future__ import annotations


class LineTooLong:
    """Marker: a line exceeded the limit and was discarded."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LineTooLong)

    def __hash__(self) -> int:
        return 0


LINE_TOO_LONG = LineTooLong()


class LineBuffer:
    def __init__(self, limit: int):
        self.limit = limit              # octets, line ending included
        self.buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> None:
        self.buf += data

    def discard(self) -> None:
        self.buf.clear()
        self._skipping = False

    def next_line(self) -> bytes | LineTooLong | None:
        """The next line without its ending; CRLF or a bare LF ends a line."""
        buf = self.buf
        while True:
            end = buf.find(b"\n")
            if self._skipping:
                if end < 0:
                    buf.clear()
                    return None
                del buf[:end + 1]
                self._skipping = False
                continue
            if end < 0:
                if len(buf) > self.limit:
                    buf.clear()
                    self._skipping = True
                    return LINE_TOO_LONG
                return None
            if end + 1 > self.limit:
                del buf[:end + 1]
                return LINE_TOO_LONG
            line = bytes(buf[:end])
            del buf[:end + 1]
            return line[:-1] if line.endswith(b"\r") else line


class LineMeter:
    """The longest line in text that arrives in pieces of any size (sans-I/O).

    A line is measured with its line ending (the CR and LF of CRLF), as RFC 5321
    §4.5.3.1.6 counts it; a line split across pieces is measured whole. Memory is
    one piece at a time, so a line of any length costs nothing to measure. Once a
    line longer than `enough` has been seen nothing more can be learnt, and later
    pieces are not scanned."""

    def __init__(self, enough: int):
        self.enough = enough
        self.longest = 0
        self._line = 0          # octets of the unfinished line so far

    def feed(self, text: bytes) -> None:
        if self.longest > self.enough or not text:
            return
        lines = text.split(b"\n")
        first = self._line + len(lines[0])
        if len(lines) == 1:
            self._line = first
            self.longest = max(self.longest, first)
            return
        # Every element but the last was ended by a LF that split() removed: +1.
        inner = max(map(len, lines[1:-1]), default=0) + 1 if len(lines) > 2 else 0
        self.longest = max(self.longest, first + 1, inner, len(lines[-1]))
        self._line = len(lines[-1])


def longest_line(data: bytes, enough: int | None = None, window: int = 1 << 20) -> int:
    """The longest line of a whole text, measured in windows (never a split of all of
    it at once); the scan stops at the first line longer than `enough`."""
    meter = LineMeter(len(data) if enough is None else enough)
    for start in range(0, len(data), window):
        meter.feed(data[start:start + window])
        if meter.longest > meter.enough:
            break
    return meter.longest
