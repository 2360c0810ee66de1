"""The SMTP client side of the protocol engine, over asyncio streams.

Hand-written rather than aiosmtplib (which this project used first) because
outbound delivery needs RFC 2920 PIPELINING — MAIL, every RCPT and DATA in one
write, the replies read back in order — and aiosmtplib keeps a single response
waiter, so it cannot have two commands in flight. Like the server, it speaks
the protocol and nothing else: reaching the host (TLS policy, DANE, AUTH) is
mx/connection.py's, what to send and what a reply means for a queued recipient
queue/transaction.py's.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl

from ..smtpreply import Reply

MAX_REPLY_LINES = 100
MAX_LINE = 4096
DATA_SLICE = 1 << 20           # message text is written (and drained) this much at a time
_REPLY_LINE = re.compile(rb"^(\d{3})([ -]?)(.*?)\r?\n?$", re.S)


class ProtocolError(Exception):
    """The server broke the protocol or the connection: nothing more can be sent."""


class SMTPConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float):
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.extensions: dict[str, str] = {}

    @classmethod
    async def open(cls, sock, timeout: float, tls: ssl.SSLContext | None = None,
                   server_hostname: str | None = None) -> SMTPConnection:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            sock=sock, ssl=tls, server_hostname=server_hostname if tls else None,
            limit=MAX_LINE * 4), timeout)
        return cls(reader, writer, timeout)

    @property
    def ssl_object(self):
        return self.writer.get_extra_info("ssl_object")

    def supports(self, extension: str) -> bool:
        return extension.upper() in self.extensions

    async def read_reply(self, timeout: float | None = None) -> Reply:
        """One reply, multi-line ones joined (RFC 5321 §4.2.1)."""
        lines = []
        for _ in range(MAX_REPLY_LINES):
            try:
                raw = await asyncio.wait_for(self.reader.readline(), timeout or self.timeout)
            except (asyncio.LimitOverrunError, ValueError):
                raise ProtocolError("reply line too long") from None
            if not raw:
                raise ProtocolError("connection closed by the server")
            m = _REPLY_LINE.match(raw)
            if not m:
                raise ProtocolError(f"malformed reply line {raw[:60]!r}")
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) != b"-":
                return Reply.received(int(m.group(1)), lines)
        raise ProtocolError("reply has too many lines")

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), self.timeout)

    async def command(self, line: str, encoding: str = "ascii") -> Reply:
        await self._write(line.encode(encoding) + b"\r\n")
        return await self.read_reply()

    async def pipeline(self, lines: list[str], encoding: str = "ascii") -> list[Reply]:
        """RFC 2920: send the commands in one write, read their replies in order."""
        await self._write(b"".join(line.encode(encoding) + b"\r\n" for line in lines))
        return [await self.read_reply() for _ in lines]

    async def ehlo(self, name: str) -> Reply:
        reply = await self.command(f"EHLO {name}")
        self.extensions = {}
        if reply.code == 250:
            for line in reply.text.split("\n")[1:]:
                keyword, _, params = line.partition(" ")
                self.extensions[keyword.upper()] = params
            return reply
        # RFC 5321 §3.2: a server that does not know EHLO gets HELO.
        return await self.command(f"HELO {name}")

    async def starttls(self, context: ssl.SSLContext, server_hostname: str) -> Reply:
        reply = await self.command("STARTTLS")
        if reply.code == 220:
            await asyncio.wait_for(self.writer.start_tls(
                context, server_hostname=server_hostname), self.timeout)
            self.extensions = {}         # RFC 3207 §4.2: forget, EHLO again
        return reply

    async def auth(self, username: str, password: str) -> Reply:
        """AUTH PLAIN (RFC 4616) where offered, else LOGIN."""
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in mechanisms or "LOGIN" not in mechanisms:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
            return await self.command(f"AUTH PLAIN {token}")
        reply = await self.command("AUTH LOGIN")
        for value in (username, password):
            if reply.code != 334:
                return reply
            reply = await self.command(base64.b64encode(value.encode()).decode())
        return reply

    async def data(self, content: bytes, final_timeout: float) -> Reply:
        """The message after a 354: dot-stuffed (RFC 5321 §4.5.2), then ".".
        Written in slices, each given the command timeout to drain (RFC 5321
        §4.5.3.2.5 times each data block, not the whole of a large message)."""
        body = content.replace(b"\r\n.", b"\r\n..")
        if body.startswith(b"."):
            body = b"." + body
        view = memoryview(body)
        for start in range(0, len(view), DATA_SLICE):
            await self._write(view[start:start + DATA_SLICE])
        await self._write(b".\r\n" if not body or body.endswith(b"\r\n") else b"\r\n.\r\n")
        return await self.read_reply(final_timeout)

    async def quit(self) -> None:
        try:
            await self.command("QUIT")
        except (ProtocolError, OSError, TimeoutError):
            pass
        self.close()

    def close(self) -> None:
        self.writer.close()
