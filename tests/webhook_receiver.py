"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 (http.server in a
thread) that checks each request's signature with the `verify` function README.md tells
receivers to copy, and keeps what it got.

Each path is an endpoint of its own: its secret, the status it answers, and optionally
a hold (the request is recorded, then answered only when released: a receiver that
processed a delivery whose answer we never saw).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .conftest import ROOT, free_port

HOLD_LIMIT = 30.0        # seconds a held request waits for its release at most


def readme_verify():
    """The `verify` function of README.md's Webhooks section, exactly as written there."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Webhooks"):]
    code = re.search(r"```python\n(.*?def verify.*?)```", section, re.S)
    assert code, "README.md's Webhooks section shows a verify function"
    namespace: dict = {}
    exec(compile(code[1], "README.md", "exec"), namespace)
    return namespace["verify"]


@dataclass
class Received:
    path: str
    delivery: str               # the Mailwright-Delivery header
    event: str                  # the Mailwright-Event header
    signed: bool                # the signature verified with the path's secret
    body: dict


@dataclass
class Route:
    secret: str = ""
    status: int = 200
    hold: bool = False
    answer: bytes = b""             # the body of the answer
    release: threading.Event = field(default_factory=threading.Event)


class Receiver:
    def __init__(self, port: int | None = None, clock=time.time):
        self.port = port or free_port()
        self.clock = clock          # "now" for the signature's timestamp check
        self.paths: dict[str, Route] = {}
        self.received: list[Received] = []
        self.arrived = threading.Condition()
        self.verify = readme_verify()
        self.server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def endpoint(self, path: str, secret: str = "", status: int = 200,
                 hold: bool = False, answer: bytes = b"") -> Route:
        self.paths[path] = Route(secret, status, hold, answer)
        return self.paths[path]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = receiver.paths.get(self.path, Route(status=404))
                signed = receiver.verify(path.secret, self.headers.get("Mailwright-Signature",
                                                                        ""), body,
                                         now=receiver.clock())
                with receiver.arrived:
                    receiver.received.append(Received(
                        self.path, self.headers.get("Mailwright-Delivery", ""),
                        self.headers.get("Mailwright-Event", ""), signed, json.loads(body)))
                    receiver.arrived.notify_all()
                if path.hold:
                    path.release.wait(HOLD_LIMIT)
                try:
                    self.send_response(path.status if signed else 401)
                    self.send_header("Content-Length", str(len(path.answer)))
                    self.end_headers()
                    self.wfile.write(path.answer)
                except OSError:      # the sender is gone (a held request after a kill)
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until start() again (same port)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def got(self, path: str, event: str | None = None) -> list[Received]:
        with self.arrived:
            return [r for r in self.received
                    if r.path == path and (event is None or r.event == event)]

    def wait(self, predicate, timeout: float = 20.0) -> bool:
        """Wait (bounded) until predicate() holds; re-checked as requests arrive."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.arrived.wait(min(left, 0.1))
        return True
