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
