"""The web door as a supervised component: uvicorn serving the app on sockets we bind ourselves.

The same app answers on the plain HTTP port and, with the box's own certificate, on the HTTPS
port. HTTPS failing to come up (its port taken, no certificate) leaves the web door degraded,
never down: students and the panel use plain HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from starlette.types import Message

from edge.box import Box
from edge.core.component import Component
from edge.doors.web.app import create_app, end_event_streams
from edge.system.certificate import Certificate

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The daemon owns SIGTERM/SIGINT and stops us in order.
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (dual-stack when host is '::').

    Made with IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP, and
    with Nagle on, every answer on a kept-alive connection waits for the client's delayed ACK (~40 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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


WARM_PATH = "/.classbox-warm-up"  # matches no route: every router is asked, so every router builds


def warm_up(app: FastAPI) -> None:
    """Have the app build its middleware and every route now, in this thread (FastAPI does it on first use).

    Run in a worker thread before serving: otherwise the first request a router sees builds all of
    its routes on the daemon's loop, which a busy box feels as a stall.
    """
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": WARM_PATH, "raw_path": WARM_PATH.encode(), "root_path": "", "query_string": b"", "headers": [],
        "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0),
    }  # fmt: skip

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    asyncio.run(app(scope, receive, send))


@dataclass
class _Listener:
    """One uvicorn server on one socket we bound, and the task serving it."""

    server: _Server
    socket: socket.socket
    task: asyncio.Task[None]


async def _listen(app: FastAPI, sock: socket.socket, name: str, tls: Certificate | None = None) -> _Listener:
    """Serve `app` on `sock` (over TLS with `tls`); return once it accepts."""
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        ssl_certfile=tls.cert_path if tls else None,
        ssl_keyfile=tls.key_path if tls else None,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name=name)
    while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn sets a plain flag)
        await asyncio.sleep(0.01)
    if serving.done():
        serving.result()
        raise RuntimeError("the web server stopped while starting")
    return _Listener(server, sock, serving)


async def _close(listener: _Listener) -> None:
    listener.server.should_exit = True
    await asyncio.gather(listener.task, return_exceptions=True)
    listener.socket.close()


class WebDoor(Component):
    """Serves every web door on the configured port (and HTTPS on the second); healthy once it answers."""

    name = "web"

    def __init__(self, box: Box, app: FastAPI | None = None) -> None:
        super().__init__()
        self._box = box
        self.app = app or create_app(box)
        self._listeners: list[_Listener] = []

    async def start(self) -> None:
        web = self._box.config.web
        await asyncio.to_thread(warm_up, self.app)
        sock = bind_socket(web.host, web.port)
        try:
            self._listeners.append(await _listen(self.app, sock, "web:serve"))
        except BaseException:
            sock.close()
            raise
        problem = await self._start_https()
        detail = f"listening on {web.host}:{web.port}" + (f", HTTPS on {web.https_port}" if not problem else "")
        if problem:
            self.set_health("degraded", f"{detail}; {problem}", port=web.port)
        else:
            self.set_health("ok", detail, port=web.port, https_port=web.https_port)

    async def _start_https(self) -> str:
        """Serve HTTPS on the second port; what went wrong in words ("" when it serves or is off)."""
        web, certificate = self._box.config.web, self._box.https_certificate()
        if not web.https_port:
            return ""
        if certificate is None:
            return "HTTPS is off: the box has no certificate"
        try:
            sock = bind_socket(web.host, web.https_port)
        except OSError as err:
            log.warning("cannot listen for HTTPS on port %d: %s", web.https_port, err.strerror)
            return f"HTTPS port {web.https_port}: {err.strerror}"
        try:
            self._listeners.append(await _listen(self.app, sock, "web:serve-https", certificate))
        except Exception as err:  # a certificate uvicorn cannot load: plain HTTP goes on
            sock.close()
            log.warning("cannot serve HTTPS: %s", err)
            return f"HTTPS failed: {type(err).__name__}"
        return ""

    async def run(self) -> None:
        if self._listeners:
            # Shielded: a cancelled run() must not cut uvicorn short; stop() shuts it down cleanly.
            await asyncio.shield(self._listeners[0].task)

    async def stop(self) -> None:
        listeners, self._listeners = self._listeners, []
        if listeners:
            end_event_streams(self.app)  # open streams never end on their own: uvicorn would wait on them
        for listener in reversed(listeners):
            await _close(listener)
