"""The web door as a supervised component: uvicorn serving the app on a socket we bind ourselves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from edge.component import Component
from edge.service import Box
from edge.web.app import create_app, end_event_streams

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The daemon owns SIGTERM/SIGINT and stops us in order.
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (dual-stack when host is '::')."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class WebDoor(Component):
    """Serves every web door on the configured port; healthy once it answers."""

    name = "web"

    def __init__(self, box: Box, app: FastAPI | None = None) -> None:
        super().__init__()
        self._box = box
        self.app = app or create_app(box)
        self._server: _Server | None = None
        self._socket: socket.socket | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        web = self._box.config.web
        self._socket = bind_socket(web.host, web.port)
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = _Server(config)
        serving = asyncio.create_task(self._server.serve(sockets=[self._socket]), name="web:serve")
        while not self._server.started and not serving.done():  # noqa: ASYNC110 (uvicorn sets a plain flag)
            await asyncio.sleep(0.01)
        if serving.done():
            serving.result()
            raise RuntimeError("the web server stopped while starting")
        self._serving = serving
        self.set_health("ok", f"listening on {web.host}:{web.port}", port=web.port)

    async def run(self) -> None:
        if self._serving is not None:
            # Shielded: a cancelled run() must not cut uvicorn short; stop() shuts it down cleanly.
            await asyncio.shield(self._serving)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            end_event_streams(self.app)
            server.should_exit = True
            serving, self._serving = self._serving, None
            if serving is not None:
                await asyncio.gather(serving, return_exceptions=True)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
