"""The room display: a PJLink projector played by the test on loopback TCP, and an RS-232 display on a pty.

The stand-ins check each byte the driver sends (PJLink class 1, its MD5 authentication, the
configured serial command map) and answer as the devices do, or refuse, or say nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tty
from collections.abc import AsyncIterator

import pytest

from drivers.display import (
    CommandMap,
    DisplayError,
    DisplayStatus,
    DisplayTimeout,
    PJLinkDisplay,
    SerialDisplay,
    parse_bytes,
)
from drivers.errors import DeviceSpecError, DeviceUnavailable
from tests.helpers import free_port

RANDOM = "498e4a67"
PASSWORD = "JBMIAProjectorLink"
INPUTS = {"HDMI 1": "31", "Document camera": "11"}


class PlayedProjector:
    """A PJLink class 1 projector: one command per connection, as the box uses it."""

    def __init__(self, password: str = "") -> None:
        self.password = password
        self.received: list[str] = []
        self.power = "0"
        self.input = "31"
        self.silent = False
        self.answer: str | None = None  # answer this instead (e.g. ERR3)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.silent:
                await reader.read()
                return
            writer.write(f"PJLINK 1 {RANDOM}\r".encode() if self.password else b"PJLINK 0\r")
            line = (await reader.readuntil(b"\r")).decode()
            self.received.append(line)
            writer.write(self._reply(line).encode() + b"\r")
            await writer.drain()
        finally:
            writer.close()

    def _reply(self, line: str) -> str:
        if self.password:
            digest = hashlib.md5((RANDOM + self.password).encode()).hexdigest()
            if not line.startswith(digest):
                return "PJLINK ERRA"
            line = line[len(digest) :]
        body, _, value = line[2:-1].partition(" ")
        if self.answer:
            return f"%1{body}={self.answer}"
        if value == "?":
            return f"%1{body}={self.power if body == 'POWR' else self.input}"
        if body == "POWR":
            self.power = value
        else:
            self.input = value
        return f"%1{body}=OK"


@pytest.fixture
async def projector() -> AsyncIterator[tuple[PlayedProjector, int]]:
    played = PlayedProjector()
    server = await asyncio.start_server(played.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield played, port
    finally:
        server.close()
        await server.wait_closed()


async def test_pjlink_power_input_and_status_without_a_password(projector: tuple[PlayedProjector, int]) -> None:
    played, port = projector
    display = PJLinkDisplay("127.0.0.1", port, input_codes=INPUTS)
    assert await display.status() == DisplayStatus("off")
    await display.power(True)
    await display.select_input("Document camera")
    assert await display.status() == DisplayStatus("on", "Document camera")
    assert played.received == ["%1POWR ?\r", "%1POWR 1\r", "%1INPT 11\r", "%1POWR ?\r", "%1INPT ?\r"]
    with pytest.raises(DisplayError, match="no input named 'VGA'"):
        await display.select_input("VGA")
    played.answer = "ERR3"
    with pytest.raises(DisplayError, match="cannot do that now"):
        await display.power(False)


async def test_pjlink_with_its_password_and_a_wrong_one(projector: tuple[PlayedProjector, int]) -> None:
    played, port = projector
    played.password = PASSWORD
    display = PJLinkDisplay("127.0.0.1", port, password=PASSWORD, input_codes=INPUTS)
    await display.power(True)
    digest = hashlib.md5((RANDOM + PASSWORD).encode()).hexdigest()
    assert played.received == [f"{digest}%1POWR 1\r"]
    assert played.power == "1"
    with pytest.raises(DisplayError, match="refused the PJLink password") as wrong:
        await PJLinkDisplay("127.0.0.1", port, password="not-it").power(False)
    assert "not-it" not in str(wrong.value)
    with pytest.raises(DisplayError, match="asks for its PJLink password, and none is set"):
        await PJLinkDisplay("127.0.0.1", port).power(False)
    assert played.power == "1"


async def test_pjlink_silence_and_nobody_there_are_said_plainly_then_it_works(
    projector: tuple[PlayedProjector, int],
) -> None:
    played, port = projector
    display = PJLinkDisplay("127.0.0.1", port, timeout_s=0.3)
    played.silent = True
    with pytest.raises(DisplayTimeout, match=r"did not answer within 0\.3 s"):
        await display.power(True)
    played.silent = False
    await display.power(True)  # recovers on the next command
    assert played.power == "1"
    with pytest.raises(DeviceUnavailable, match="cannot reach the display"):
        await PJLinkDisplay("127.0.0.1", free_port(), timeout_s=0.5).power(True)


# -- a serial display ---------------------------------------------------------------------------------

LG = CommandMap(  # an LG-style map as the config spells it
    power_on=parse_bytes(r"ka 01 01\r"),
    power_off=parse_bytes(r"ka 01 00\r"),
    status=parse_bytes(r"ka 01 ff\r"),
    status_on=parse_bytes("OK01"),
    status_off=parse_bytes("OK00"),
    inputs={"HDMI 1": parse_bytes(r"xb 01 90\r")},
    reply_end=parse_bytes("x"),
    ok=parse_bytes("OK"),
)


@pytest.fixture
async def serial_display() -> AsyncIterator[tuple[list[bytes], SerialDisplay, dict[str, bytes]]]:
    master, slave = os.openpty()
    tty.setraw(master)
    os.set_blocking(master, False)
    received: list[bytes] = []
    state = {"power": b"00", "reply": b""}
    buffer = bytearray()

    def readable() -> None:
        buffer.extend(os.read(master, 1024))
        while b"\r" in buffer:
            line, _, rest = bytes(buffer).partition(b"\r")
            buffer[:] = rest
            received.append(line + b"\r")
            if state["reply"] == b"silent":
                continue
            if line.startswith(b"ka 01 0"):
                state["power"] = line[-2:]
            answer = state["reply"] or b"a 01 OK" + state["power"] + b"x"
            os.write(master, answer)

    loop = asyncio.get_running_loop()
    loop.add_reader(master, readable)
    display = SerialDisplay(os.ttyname(slave), LG, timeout_s=0.3)
    try:
        yield received, display, state
    finally:
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)


async def test_a_serial_display_follows_its_command_map(
    serial_display: tuple[list[bytes], SerialDisplay, dict[str, bytes]],
) -> None:
    received, display, state = serial_display
    assert await display.status() == DisplayStatus("off")
    await display.power(True)
    await display.select_input("HDMI 1")
    assert await display.status() == DisplayStatus("on")
    assert received == [b"ka 01 ff\r", b"ka 01 01\r", b"xb 01 90\r", b"ka 01 ff\r"]
    state["reply"] = b"a 01 NG01x"
    with pytest.raises(DisplayError, match="did not accept the command"):
        await display.power(False)
    state["reply"] = b"silent"
    with pytest.raises(DisplayTimeout, match=r"did not answer within 0\.3 s"):
        await display.power(False)
    state["reply"] = b""
    await display.power(False)  # recovers
    assert await display.status() == DisplayStatus("off")


async def test_a_missing_serial_port_and_bad_map_bytes_are_clear_errors() -> None:
    with pytest.raises(DeviceUnavailable, match="cannot open the display's serial port /dev/no-such-display"):
        await SerialDisplay("/dev/no-such-display", LG).power(True)
    assert parse_bytes("hex:AA 11 01 01 01 14") == bytes.fromhex("aa11010101 14")
    with pytest.raises(DeviceSpecError, match="not hex bytes"):
        parse_bytes("hex:zz")
    with pytest.raises(DeviceSpecError, match="bad escape"):
        parse_bytes(r"ka \x4")
