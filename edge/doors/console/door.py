"""The console door: the `console` component serving the serial port and the local socket, and `classbox console`.

Inside the daemon, `ConsoleDoor` runs one session on `console.serial_port` (pyserial, 8N1, through
drivers/serial_line.py) and one per connection on the Unix socket (`console.socket_path`, mode 0600).
A port that is missing or goes away (USB adapter unplugged, pty closed) is tried again quietly
every few seconds: the component stays healthy and the rest of the daemon never notices.

`classbox console` bridges the terminal (raw mode) to that socket; with no daemon answering it runs
the same console in this process, offline: a `Box` opened on the config and state, not attached to
any component.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import stat
import sys
import termios
import tty
from collections.abc import Iterator
from pathlib import Path

from drivers.serial_line import SerialLine, SerialLineError
from edge.box import Box
from edge.core.component import Component
from edge.core.config import BoxConfig
from edge.core.events import EventBus
from edge.doors.console.commands import serve
from edge.doors.console.engine import QueueTransport, Session
from edge.system.accounts import PinGate

log = logging.getLogger(__name__)

SOCKET_NAME = "console.sock"
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0


def socket_path(config: BoxConfig) -> Path:
    """Where the running box's console listens: `console.socket_path`, else console.sock in the state folder."""
    configured = config.console.socket_path
    return Path(configured) if configured else config.box.state_dir / SOCKET_NAME


class ConsoleDoor(Component):
    """The technician's console on the serial port and the local socket; one PIN lock-out for both."""

    name = "console"

    def __init__(self, box: Box, gate: PinGate | None = None, retry_max_s: float = RETRY_MAX_S) -> None:
        super().__init__()
        self._box = box
        self._gate = gate or PinGate()
        self._retry_max_s = retry_max_s
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._line: SerialLine | None = None
        self._path = socket_path(box.config)

    async def start(self) -> None:
        try:
            await self._listen()
        except OSError as err:  # e.g. a full or read-only state disk: the serial port still serves
            log.warning("console: no local socket at %s (%s); `classbox console` runs offline", self._path, err)
            self._server = None
        self._report("")

    async def _listen(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self._path.lstat().st_mode):
                self._path.unlink()  # left by a daemon that did not stop cleanly
        # Not a umask change (it is the whole process's): connecting needs write permission, which the
        # usual umask already withholds from others until the chmod.
        self._server = await asyncio.start_unix_server(self._connected, path=str(self._path))
        os.chmod(self._path, 0o600)

    async def run(self) -> None:
        port = self._box.config.console.serial_port
        if not port:
            await asyncio.Event().wait()
        retry = RETRY_FIRST_S
        while True:
            transport = await self._open(port)
            if transport is None:
                await asyncio.sleep(retry)
                retry = min(retry * 2, self._retry_max_s)
                continue
            retry = RETRY_FIRST_S
            try:
                await serve(Session(self._box, transport, self._gate, where="serial"))
            finally:
                await self._close_line()
            self._report(port)
            await asyncio.sleep(RETRY_FIRST_S)

    async def _open(self, port: str) -> QueueTransport | None:
        loop = asyncio.get_running_loop()
        transport = QueueTransport(self._write_serial, f"serial:{port}")

        def arrived(data: bytes) -> None:  # in the serial reader's thread
            loop.call_soon_threadsafe(transport.feed, data)

        try:
            self._line = await asyncio.to_thread(
                SerialLine, port, self._box.config.console.baudrate,
                arrived,
            )  # fmt: skip
        except SerialLineError as err:
            if self.health().detail != f"waiting for {port}":
                log.info("console: %s; trying again quietly", err)
            self._report(port, waiting=True)
            return None
        log.info("console: serving %s at %d baud", port, self._box.config.console.baudrate)
        self._report(port)
        return transport

    async def _write_serial(self, data: bytes) -> None:
        line = self._line
        if line is None:
            raise OSError("the serial port is closed")
        await asyncio.to_thread(line.write, data)

    async def _close_line(self) -> None:
        line, self._line = self._line, None
        if line is not None:
            await asyncio.to_thread(line.close)

    def _report(self, port: str, waiting: bool = False) -> None:
        serial = f"waiting for {port}" if waiting else (f"serial {port}" if port else "no serial port")
        where = f"{serial}; {'local socket' if self._server is not None else 'no local socket'}"
        self.set_health("ok", where, console_sessions=len(self._sessions))

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        transport = QueueTransport(lambda data: _send(writer, data), "socket")
        pump = asyncio.create_task(_pump(reader, transport), name="console-socket-reader")
        try:
            await serve(Session(self._box, transport, self._gate, where="socket"))
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if task is not None:
                self._sessions.discard(task)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        sessions = list(self._sessions)
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        await self._close_line()
        await self._box.drop_network_change()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


async def _pump(reader: asyncio.StreamReader, transport: QueueTransport) -> None:
    try:
        while data := await reader.read(4096):
            transport.feed(data)
    except OSError:
        pass
    transport.feed(b"")


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


# -- `classbox console` ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def raw_terminal(fd: int, baudrate: int | None = None) -> Iterator[None]:
    """The terminal on `fd` in raw mode (keys as typed, Ctrl-C a byte; a serial line at `baudrate`) while inside."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        speed = getattr(termios, f"B{baudrate}", None)
        if speed is not None:  # a serial tty (the image's ttyS0) runs at the console's speed; a pty ignores it
            attributes = termios.tcgetattr(fd)
            attributes[4] = attributes[5] = speed
            termios.tcsetattr(fd, termios.TCSANOW, attributes)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def connect(config: BoxConfig) -> socket.socket | None:
    """A connection to the running box's console socket, or None when no daemon answers."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(socket_path(config)))
    except OSError:
        sock.close()
        return None
    return sock


def bridge(sock: socket.socket, stdin: int, stdout: int, baudrate: int | None = None) -> None:
    """Copy bytes both ways between the terminal and the daemon's console until either side ends."""
    with sock, raw_terminal(stdin, baudrate):
        while True:
            ready, _, _ = select.select([stdin, sock], [], [])
            if stdin in ready:
                data = os.read(stdin, 4096)
                if not data:
                    return
                sock.sendall(data)
            if sock in ready:
                data = sock.recv(4096)
                if not data:
                    return
                _write_all(stdout, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def offline(config: BoxConfig, config_path: Path | None, stdin: int, stdout: int) -> None:
    """The console in this process, without the daemon: status, doctor, logs, config, net, restart, reboot, reset."""
    loop = asyncio.get_running_loop()
    bus = EventBus()
    bus.bind(loop)
    box = Box(config, bus, config_path)
    root = logging.getLogger()
    ring = box.log_handler()  # log lines would garble the raw terminal: `logs` has them
    handlers, root.handlers = root.handlers, [ring]
    await asyncio.to_thread(box.open)
    transport = QueueTransport(lambda data: _write_all(stdout, data), "terminal")

    def readable() -> None:
        try:
            data = os.read(stdin, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin)
        transport.feed(data)

    loop.add_reader(stdin, readable)
    try:
        with raw_terminal(stdin, config.console.baudrate):
            await serve(Session(box, transport, PinGate(), where="terminal"))
    finally:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(stdin)
        await box.drop_network_change()
        box.close()
        root.handlers = handlers


def console_main(config: BoxConfig, config_path: Path | None) -> int:
    """`classbox console`: bridge to the running box, else the offline console; 0 when the terminal closes."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    sock = connect(config)
    if sock is not None:
        bridge(sock, stdin, stdout, config.console.baudrate)
        return 0
    asyncio.run(offline(config, config_path, stdin, stdout))
    return 0
