"""What the import contracts (pyproject.toml [tool.importlinter], run by `make test`)
cannot see: asyncio's streams, servers and socket calls are attributes of asyncio and
of its event loop, which every layer imports. Only net/, the servers, app.py,
workers.py and the outbound clients (queue/, mx/) may open, accept or wrap a
connection; sessions, policy and storage get bytes handed to them."""

from __future__ import annotations

import ast
from pathlib import Path

import mailwright

PACKAGE = Path(mailwright.__file__).parent

# asyncio and event-loop calls that open, accept or upgrade a connection, and the
# stream classes.
NETWORK_CALLS = {
    "open_connection", "start_server", "open_unix_connection", "start_unix_server",
    "create_connection", "create_server", "create_unix_connection", "create_unix_server",
    "create_datagram_endpoint", "connect_accepted_socket", "sock_connect", "sock_accept",
    "sock_recv", "sock_recv_into", "sock_sendall", "sock_sendfile", "start_tls",
    "StreamReader", "StreamWriter",
}
ALLOWED = ("net/", "app.py", "workers.py", "smtp/server.py", "imap/server.py",
           "pop3/server.py", "queue/client.py", "queue/smtpclient.py", "queue/mtasts.py",
           "mx/")


def network_calls(source: str) -> list[tuple[int, str]]:
    """(line, name) of every attribute named like a network call, in line order."""
    return sorted((node.lineno, node.attr) for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Attribute) and node.attr in NETWORK_CALLS)


def test_the_scan_finds_stream_and_loop_calls():
    source = ("import asyncio\n"
              "async def f(loop):\n"
              "    r, w = await asyncio.open_connection('h', 25)\n"
              "    await loop.start_tls(w, None, None)\n"
              "    x: asyncio.StreamReader\n"
              "    return asyncio.sleep(0)\n")
    assert network_calls(source) == [(3, "open_connection"), (4, "start_tls"),
                                     (5, "StreamReader")]


def test_only_the_network_layer_opens_connections():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ALLOWED):
            continue
        found += [f"{rel}:{line} {name}" for line, name in network_calls(path.read_text())]
    assert found == []
