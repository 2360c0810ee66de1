"""net/connection.py: a bug in a session handler is answered in the protocol's words and
the connection closed, whether the handler ran synchronously or as a task."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from mailwright.net.connection import Action, SessionProtocol
from mailwright.net.limits import ConnectionLimiter
from mailwright.net.timeouts import IdleTimeouts


class Transport(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data):
        self.written += data

    def close(self):
        self.closed = True

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default


class BuggySession:
    """A session whose command handler raises: synchronously, or inside the coroutine."""
    id = "s1"
    buffered = 0
    backlog = False
    timeout = 60.0

    def __init__(self, in_task: bool):
        self.in_task = in_task

    def greeting(self):
        return b"* OK hello\r\n"

    def receive(self, data):
        pass

    def process(self):
        if not self.in_task:
            raise KeyError("a bug")

        async def handler():
            raise KeyError("a bug")
        return b"", Action.NONE, handler()

    def disconnected(self):
        pass


class Protocol(SessionProtocol):
    INTERNAL_ERROR = b"* BYE Internal error, closing\r\n"

    def __init__(self, in_task: bool):
        services = SimpleNamespace(connections=set(), events=None)
        super().__init__(services, None, ConnectionLimiter(10, 10), None, IdleTimeouts())
        self.in_task = in_task

    def make_session(self, ip, port, tls):
        return BuggySession(self.in_task)


@pytest.mark.parametrize("in_task", [False, True], ids=["synchronous", "task"])
def test_handler_bug_gets_internal_error_and_close(in_task, caplog):
    async def run():
        protocol = Protocol(in_task)
        transport = Transport()
        protocol.connection_made(transport)
        protocol.data_received(b"a NOOP\r\n")
        await asyncio.sleep(0.01)
        return transport
    transport = asyncio.run(run())
    assert transport.written == b"* OK hello\r\n* BYE Internal error, closing\r\n"
    assert transport.closed
    assert "session s1 failed" in caplog.text
