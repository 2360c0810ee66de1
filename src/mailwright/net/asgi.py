"""Serving an ASGI application (the HTTP API, api/): uvicorn on the process's own event
loop and already bound sockets, as the mail listeners are served.

uvicorn's `serve()` installs its own SIGINT/SIGTERM handlers (signal.signal), which
would take the signals from app.py's; so the server is driven through its parts:
startup on our sockets, its main loop (a 0.1 s tick that refreshes the Date header
and watches should_exit) as a task, and shutdown when app.py stops."""

from __future__ import annotations

import asyncio
import socket
import ssl

import uvicorn


class HttpServer:
    def __init__(self, app: object, tls: ssl.SSLContext | None, timeout: float = 30.0):
        self.config = uvicorn.Config(
            app, lifespan="off", log_config=None, access_log=False, proxy_headers=False,
            server_header=False, timeout_keep_alive=int(timeout),
            timeout_graceful_shutdown=10)
        self.config.load()
        # An SSLContext we built (net/tls.py) rather than uvicorn's file options.
        self.config.ssl = tls
        self.server = uvicorn.Server(self.config)
        self.task: asyncio.Task | None = None

    async def start(self, sockets: list[socket.socket]) -> None:
        # What serve() sets up before startup(): the lifespan handler ("off": the app
        # needs no startup or shutdown events).
        self.server.lifespan = self.config.lifespan_class(self.config)
        await self.server.startup(sockets=sockets)
        self.task = asyncio.get_running_loop().create_task(self.server.main_loop())

    async def stop(self) -> None:
        if self.task is None:
            return
        self.server.should_exit = True
        await self.task
        await self.server.shutdown()
