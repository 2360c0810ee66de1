"""The SMTP client engine against scripted servers: replies parsed right, bad ones
turned into ProtocolError (a deferral upstream), never a crash."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mailwright.mx.smtpclient import ProtocolError, SMTPConnection
from mailwright.smtpreply import Reply


def scripted(script: bytes):
    """Serve `script` to whoever connects, close our side, read until the client goes."""
    server = socket.create_server(("127.0.0.1", 0))

    async def run(coro_fn):
        loop = asyncio.get_running_loop()

        def serve():
            conn, _ = server.accept()
            conn.sendall(script)
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(2)
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass
            conn.close()
        serving = loop.run_in_executor(None, serve)
        sock = socket.create_connection(server.getsockname())
        sock.setblocking(False)
        conn = await SMTPConnection.open(sock, timeout=2)
        try:
            return await coro_fn(conn)
        finally:
            conn.close()
            await serving
            server.close()
    return run


def test_multiline_reply_and_extensions():
    script = b"220 hi\r\n250-mx.test greets\r\n250-SIZE 1000\r\n250-PIPELINING\r\n250 DSN\r\n"

    async def go(conn):
        assert await conn.read_reply() == Reply(220, "", "hi")
        reply = await conn.ehlo("me")
        return reply, conn.extensions
    reply, ext = asyncio.run(scripted(script)(go))
    assert reply.code == 250 and reply.text.startswith("mx.test greets")
    assert ext == {"SIZE": "1000", "PIPELINING": "", "DSN": ""}


def test_ehlo_refused_falls_back_to_helo():
    async def go(conn):
        await conn.read_reply()
        return await conn.ehlo("me"), conn.extensions
    reply, ext = asyncio.run(scripted(b"220 old\r\n500 what\r\n250 ok\r\n")(go))
    assert reply == Reply(250, "", "ok") and ext == {}


@pytest.mark.parametrize("script", [b"hello\r\n", b"22x nope\r\n", b"", b"220-" * 2000,
                                    b"220-a\r\n" * 150, b"220 " + b"x" * 20000 + b"\r\n"])
def test_bad_replies_raise_protocol_error(script):
    async def go(conn):
        return await conn.read_reply()
    with pytest.raises(ProtocolError):
        asyncio.run(scripted(script)(go))


def test_pipeline_reads_replies_in_order():
    async def go(conn):
        await conn.read_reply()
        return await conn.pipeline(["MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA"])
    replies = asyncio.run(scripted(b"220 x\r\n250 a\r\n550 b\r\n354 c\r\n")(go))
    assert [r.code for r in replies] == [250, 550, 354]
