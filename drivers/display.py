"""DisplayControl: the room's display or projector — power on/off, input select, status.

Two backends beside a synthetic one: PJLink class 1 over TCP (port 4352, with its MD5
authentication: the display greets `PJLINK 1 <random>` and the first command carries
md5(random + password)), and RS-232 command maps for displays that speak only serial (the bytes of
each command and of the replies that mean on and off come from the config). Each command opens
the connection, says one thing, reads one answer and closes: displays allow few connections and
drop idle ones, and a display that was unplugged works again on the next command.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import serial

from drivers.errors import DeviceSpecError, DeviceUnavailable, DriverError

PJLINK_PORT = 4352
MAX_LINE = 256  # PJLink answers are short; more without CR is not PJLink
Power = Literal["on", "off", "warming", "cooling", "unknown"]
PJLINK_POWER: dict[str, Power] = {"0": "off", "1": "on", "2": "cooling", "3": "warming"}
PJLINK_ERRORS = {
    "ERR1": "the display does not know that command",
    "ERR2": "the display refused that value",
    "ERR3": "the display cannot do that now (warming up or cooling down?)",
    "ERR4": "the display reports a failure of its own",
}


class DisplayError(DriverError):
    """The display refused a command or answered something it should not; the message says which."""


class DisplayTimeout(DisplayError):
    """The display did not answer in time."""


@dataclass
class DisplayStatus:
    """What the display says of itself."""

    power: Power
    input: str | None = None


class DisplayControl(ABC):
    """A display or projector; every call raises DisplayError or DeviceUnavailable in plain words."""

    @abstractmethod
    async def power(self, on: bool) -> None:
        """Switch the display on or off."""

    @abstractmethod
    async def select_input(self, name: str) -> None:
        """Show input `name` (one of `inputs`)."""

    @abstractmethod
    async def status(self) -> DisplayStatus:
        """Power state (and input, where the display says)."""

    @property
    @abstractmethod
    def inputs(self) -> list[str]:
        """The inputs it can be asked to show."""


# -- PJLink ------------------------------------------------------------------------------------------


class PJLinkDisplay(DisplayControl):
    """A PJLink class 1 display over TCP; `input_codes` maps input names to PJLink codes (e.g. HDMI 1: 31)."""

    def __init__(
        self,
        host: str,
        port: int = PJLINK_PORT,
        password: str = "",
        input_codes: dict[str, str] | None = None,
        timeout_s: float = 3.0,
    ) -> None:
        self.host = host
        self.port = port
        self._password = password
        self.input_codes = dict(input_codes or {})
        self.timeout_s = timeout_s
        self._lock = asyncio.Lock()

    @property
    def inputs(self) -> list[str]:
        return list(self.input_codes)

    async def power(self, on: bool) -> None:
        await self._expect_ok("POWR", "1" if on else "0")

    async def select_input(self, name: str) -> None:
        code = self.input_codes.get(name)
        if code is None:
            raise DisplayError(f"the display has no input named {name!r}")
        await self._expect_ok("INPT", code)

    async def status(self) -> DisplayStatus:
        power = PJLINK_POWER.get(await self.command("POWR", "?"), "unknown")
        if power != "on":
            return DisplayStatus(power)
        code = await self.command("INPT", "?")
        named = next((name for name, c in self.input_codes.items() if c == code), code)
        return DisplayStatus(power, named)

    async def _expect_ok(self, name: str, value: str) -> None:
        answer = await self.command(name, value)
        if answer != "OK":
            raise DisplayError(f"the display answered {name} with {answer!r}")

    async def command(self, name: str, value: str) -> str:
        """One `%1NAME value` exchange; the display's answer after `=` (ERRn raise DisplayError in words)."""
        where = f"{self.host}:{self.port}"
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout_s):
                    return await self._exchange(name, value)
            except TimeoutError:
                raise DisplayTimeout(f"the display at {where} did not answer within {self.timeout_s:g} s") from None
            except OSError as err:
                raise DeviceUnavailable(f"cannot reach the display at {where}: {err.strerror or err}") from err

    async def _exchange(self, name: str, value: str) -> str:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            prefix = self._digest(await self._line(reader))
            writer.write(f"{prefix}%1{name} {value}\r".encode())
            await writer.drain()
            return self._answer(name, await self._line(reader))
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _digest(self, greeting: str) -> str:
        """What goes before the first command: "" without authentication, else md5(random + password)."""
        if greeting == "PJLINK 0":
            return ""
        if greeting.startswith("PJLINK 1 ") and len(greeting) == 17:
            if not self._password:
                raise DisplayError("the display asks for its PJLink password, and none is set")
            return hashlib.md5((greeting[9:] + self._password).encode(), usedforsecurity=False).hexdigest()
        raise DisplayError(f"the display did not greet as PJLink does (it said {greeting[:40]!r})")

    def _answer(self, name: str, line: str) -> str:
        if line == "PJLINK ERRA":
            raise DisplayError("the display refused the PJLink password")
        head = f"%1{name}="
        if not line.startswith(head):
            raise DisplayError(f"the display answered something else than {name}: {line[:40]!r}")
        answer = line[len(head) :]
        if answer in PJLINK_ERRORS:
            raise DisplayError(PJLINK_ERRORS[answer])
        return answer

    async def _line(self, reader: asyncio.StreamReader) -> str:
        data = bytearray()
        while not data.endswith(b"\r"):
            byte = await reader.read(1)
            if not byte:
                raise DisplayError("the display closed the connection without answering")
            data += byte
            if len(data) > MAX_LINE:
                raise DisplayError("the display sent a line too long for PJLink")
        return data[:-1].decode("ascii", errors="replace")


# -- RS-232 command maps ------------------------------------------------------------------------------


def parse_bytes(text: str) -> bytes:
    """The bytes a config string stands for: `hex:AA 11 01` or text with escapes (`ka 01 01\\r`)."""
    if text.startswith("hex:"):
        try:
            return bytes.fromhex(text[4:])
        except ValueError as err:
            raise DeviceSpecError(f"not hex bytes: {text!r}") from err
    try:
        return text.encode().decode("unicode_escape").encode("latin-1")
    except ValueError as err:
        raise DeviceSpecError(f"a bad escape in {text!r}") from err


@dataclass
class CommandMap:
    """What a serial display understands: each command's bytes and the replies that mean on and off."""

    power_on: bytes
    power_off: bytes
    status: bytes = b""
    status_on: bytes = b""
    status_off: bytes = b""
    inputs: dict[str, bytes] = field(default_factory=dict)
    reply_end: bytes = b"\r"  # a reply ends with this ("": the display does not answer)
    ok: bytes = b""  # what an accepted command's reply contains ("": any reply)


class SerialDisplay(DisplayControl):
    """A display driven by its RS-232 command map through pyserial, read by the event loop."""

    def __init__(self, port: str, commands: CommandMap, baudrate: int = 9600, timeout_s: float = 2.0) -> None:
        self.port = port
        self.commands = commands
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self._lock = asyncio.Lock()

    @property
    def inputs(self) -> list[str]:
        return list(self.commands.inputs)

    async def power(self, on: bool) -> None:
        await self._accepted(self.commands.power_on if on else self.commands.power_off)

    async def select_input(self, name: str) -> None:
        code = self.commands.inputs.get(name)
        if code is None:
            raise DisplayError(f"the display has no input named {name!r}")
        await self._accepted(code)

    async def status(self) -> DisplayStatus:
        if not self.commands.status:
            return DisplayStatus("unknown")
        reply = await self.exchange(self.commands.status)
        if self.commands.status_on and self.commands.status_on in reply:
            return DisplayStatus("on")
        if self.commands.status_off and self.commands.status_off in reply:
            return DisplayStatus("off")
        raise DisplayError(f"the display's status reply means nothing known: {reply[:40]!r}")

    async def _accepted(self, command: bytes) -> None:
        reply = await self.exchange(command)
        if self.commands.ok and self.commands.ok not in reply:
            raise DisplayError(f"the display did not accept the command (it answered {reply[:40]!r})")

    async def exchange(self, command: bytes) -> bytes:
        """Send `command`; the reply up to `reply_end` (b"" when the map expects none)."""
        async with self._lock:
            try:
                port = serial.Serial(self.port, self.baudrate, timeout=0, write_timeout=1)
            except (serial.SerialException, OSError) as err:
                raise DeviceUnavailable(f"cannot open the display's serial port {self.port}: {err}") from err
            try:
                port.reset_input_buffer()
                port.write(command)
                return await self._reply(port) if self.commands.reply_end else b""
            except (serial.SerialException, OSError) as err:
                raise DeviceUnavailable(f"the display's serial port {self.port} failed: {err}") from err
            finally:
                port.close()

    async def _reply(self, port: serial.Serial) -> bytes:
        loop = asyncio.get_running_loop()
        data = bytearray()
        arrived = asyncio.Event()
        loop.add_reader(port.fileno(), arrived.set)
        try:
            async with asyncio.timeout(self.timeout_s):
                while not data.endswith(self.commands.reply_end):
                    await arrived.wait()
                    arrived.clear()
                    data += port.read(port.in_waiting or 1)
                    if len(data) > MAX_LINE:
                        raise DisplayError("the display sent a reply too long for its command map")
        except TimeoutError:
            raise DisplayTimeout(f"the display on {self.port} did not answer within {self.timeout_s:g} s") from None
        finally:
            loop.remove_reader(port.fileno())
        return bytes(data[: -len(self.commands.reply_end)])


# -- synthetic ---------------------------------------------------------------------------------------


class SyntheticDisplay(DisplayControl):
    """A display that obeys at once (demo mode, boxes without a controllable display)."""

    def __init__(self, inputs: list[str] | None = None) -> None:
        self._inputs = list(inputs or ["HDMI 1", "HDMI 2"])
        self.state = DisplayStatus("off")

    @property
    def inputs(self) -> list[str]:
        return list(self._inputs)

    async def power(self, on: bool) -> None:
        self.state = DisplayStatus("on" if on else "off", self.state.input)

    async def select_input(self, name: str) -> None:
        if name not in self._inputs:
            raise DisplayError(f"the display has no input named {name!r}")
        self.state = DisplayStatus(self.state.power, name)

    async def status(self) -> DisplayStatus:
        return DisplayStatus(self.state.power, self.state.input)


def check_spec(spec: str) -> tuple[str, str, int]:
    """(kind, where, port or speed) of a display spec: `pjlink:HOST[:PORT]`, `serial:PORT[@BAUD]` or `synthetic`."""
    kind, _, rest = spec.partition(":")
    if kind == "synthetic" and not rest:
        return kind, "", 0
    if kind == "pjlink" and rest:
        host, colon, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
        if colon and not port.isdigit():
            raise DeviceSpecError(f"the PJLink port must be a number: {spec!r}")
        return kind, host, int(port or PJLINK_PORT)
    if kind == "serial" and rest:
        path, at, baud = rest.partition("@")
        if at and not baud.isdigit():
            raise DeviceSpecError(f"serial speed must be a number: {spec!r}")
        return kind, path, int(baud or 9600)
    raise DeviceSpecError(f"a display is pjlink:HOST[:PORT], serial:PORT[@BAUD] or synthetic, not {spec!r}")


def open_display(
    spec: str,
    *,
    password: str = "",
    inputs: dict[str, str] | None = None,
    commands: CommandMap | None = None,
    timeout_s: float = 3.0,
) -> DisplayControl:
    """The display `spec` names; `inputs` are PJLink codes (pjlink) or the map's input bytes as text (serial)."""
    kind, where, number = check_spec(spec)
    if kind == "pjlink":
        return PJLinkDisplay(where, number, password, inputs, timeout_s)
    if kind == "serial":
        if commands is None:
            raise DeviceSpecError("a serial display needs its command map (power on and off at least)")
        return SerialDisplay(where, commands, number, timeout_s)
    return SyntheticDisplay(list(inputs or {}) or None)
