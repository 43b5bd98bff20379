"""CameraControl: a PTZ camera's presets and moves, VISCA over serial (RS-232/RS-485) or over IP (UDP 52381).

VISCA's bytes are owned here (no kept library speaks both transports with acknowledgements,
completions and errors): a command is `8x <payload> FF` for camera address x; the camera answers
`y0 4z FF` (ACK, socket z), then `y0 5z FF` (done) or `y0 6z ee FF` (error ee), with y = x + 8.
Over IP each message carries Sony's 8-byte header (payload type, payload length, sequence number)
and the box resets the camera's sequence counter before its first command and after a lost reply.
One command at a time per camera (a lock); a reply that never comes is a time-out, and the next
command starts clean (stale replies are dropped first).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import serial

from drivers.errors import DeviceSpecError, DeviceUnavailable, DriverError

VISCA_PORT = 52381
TERMINATOR = 0xFF
MAX_PACKET = 16  # the longest VISCA message; more bytes without FF are garbage
PRESETS = range(0, 128)
PAN_SPEEDS = range(1, 0x19)
TILT_SPEEDS = range(1, 0x18)
ZOOM_SPEEDS = range(0, 8)

# VISCA over IP payload types.
IP_COMMAND = 0x0100
IP_REPLY = 0x0111
IP_CONTROL = 0x0200
IP_CONTROL_REPLY = 0x0201
IP_RESET = b"\x01"
IP_HEADER = struct.Struct(">HHI")

ERRORS = {
    0x01: "message length error",
    0x02: "syntax error",
    0x03: "command buffer full",
    0x04: "command cancelled",
    0x05: "no such socket",
    0x41: "command not executable now",
}

Direction = Literal[-1, 0, 1]


class PTZError(DriverError):
    """The camera refused a command, answered garbage, or did not answer; the message says which."""


class PTZTimeout(PTZError):
    """The camera did not answer in time."""


# -- the bytes ---------------------------------------------------------------------------------------


def packet(address: int, payload: bytes) -> bytes:
    """The VISCA command `payload` for camera `address` (1..7), framed."""
    if not 1 <= address <= 7:
        raise DeviceSpecError(f"VISCA camera address must be 1 to 7, not {address}")
    return bytes([0x80 | address]) + payload + bytes([TERMINATOR])


def _preset(number: int) -> int:
    if number not in PRESETS:
        raise DeviceSpecError(f"a VISCA preset is 0 to 127, not {number}")
    return number


def recall_payload(number: int) -> bytes:
    """CAM_Memory Recall."""
    return bytes([0x01, 0x04, 0x3F, 0x02, _preset(number)])


def store_payload(number: int) -> bytes:
    """CAM_Memory Set."""
    return bytes([0x01, 0x04, 0x3F, 0x01, _preset(number)])


def home_payload() -> bytes:
    """Pan-tiltDrive Home."""
    return bytes([0x01, 0x06, 0x04])


def pan_tilt_payload(pan: Direction, tilt: Direction, pan_speed: int = 8, tilt_speed: int = 8) -> bytes:
    """Pan-tiltDrive: pan -1 left / 1 right, tilt -1 down / 1 up, 0 stops that axis."""
    if pan_speed not in PAN_SPEEDS or tilt_speed not in TILT_SPEEDS:
        raise DeviceSpecError("VISCA pan speed is 1 to 24 and tilt speed 1 to 23")
    return bytes([0x01, 0x06, 0x01, pan_speed, tilt_speed, {-1: 1, 1: 2, 0: 3}[pan], {1: 1, -1: 2, 0: 3}[tilt]])


def zoom_payload(zoom: Direction, speed: int = 3) -> bytes:
    """CAM_Zoom: 1 tele (in), -1 wide (out), 0 stop, at `speed` 0..7."""
    if speed not in ZOOM_SPEEDS:
        raise DeviceSpecError("VISCA zoom speed is 0 to 7")
    return bytes([0x01, 0x04, 0x07, {0: 0x00, 1: 0x20 | speed, -1: 0x30 | speed}[zoom]])


class ReplyReader:
    """Cuts a byte stream into VISCA messages (`... FF`); what cannot be one is counted as garbage."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.garbage = 0

    def feed(self, data: bytes) -> list[bytes]:
        """The whole messages `data` completes."""
        out = []
        for byte in data:
            if not self._buffer and not byte & 0x80:
                self.garbage += 1  # a message starts with its sender's address byte (high bit set)
                continue
            self._buffer.append(byte)
            if byte == TERMINATOR:
                out.append(bytes(self._buffer))
                self._buffer.clear()
            elif len(self._buffer) >= MAX_PACKET:
                self.garbage += len(self._buffer)
                self._buffer.clear()
        return out


@dataclass
class Reply:
    """One camera reply: 'ack', 'done' or 'error' (with the error code), from the camera address."""

    kind: Literal["ack", "done", "error", "other"]
    camera: int
    code: int = 0
    raw: bytes = b""

    @classmethod
    def parse(cls, message: bytes) -> Reply:
        """What a framed reply says."""
        camera = (message[0] >> 4) - 8
        kind_byte = message[1] & 0xF0 if len(message) >= 3 else 0
        if kind_byte == 0x40 and len(message) == 3:
            return cls("ack", camera, raw=message)
        if kind_byte == 0x50 and len(message) == 3:
            return cls("done", camera, raw=message)
        if kind_byte == 0x60 and len(message) == 4:
            return cls("error", camera, message[2], raw=message)
        return cls("other", camera, raw=message)

    def describe(self) -> str:
        """The error in words."""
        return ERRORS.get(self.code, f"error {self.code:#04x}")


# -- the links ---------------------------------------------------------------------------------------


class Link(ABC):
    """A way to the camera: sends framed VISCA commands, hands framed replies to `replies`."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()
        self.garbage = 0

    @abstractmethod
    async def open(self) -> None:
        """Connect (raise DeviceUnavailable)."""

    @abstractmethod
    async def send(self, message: bytes) -> None:
        """Send one framed command (raise DeviceUnavailable)."""

    async def lost_reply(self) -> None:
        """A command went unanswered: make the next one start clean."""
        self.drain()

    @abstractmethod
    async def close(self) -> None:
        """Release the port or socket (idempotent)."""

    def drain(self) -> None:
        """Forget replies nobody waits for any more."""
        while not self.replies.empty():
            self.replies.get_nowait()


class SerialLink(Link):
    """VISCA over RS-232/RS-485 through pyserial (9600 8N1 by default), read by the event loop (no thread)."""

    def __init__(self, port: str, baudrate: int = 9600) -> None:
        super().__init__()
        self.port = port
        self.baudrate = baudrate
        self._serial: serial.Serial | None = None
        self._reader = ReplyReader()

    async def open(self) -> None:
        try:
            self._serial = serial.Serial(self.port, self.baudrate, timeout=0, write_timeout=1)
        except (serial.SerialException, OSError) as err:
            raise DeviceUnavailable(f"cannot open the camera's serial port {self.port}: {err}") from err
        asyncio.get_running_loop().add_reader(self._serial.fileno(), self._readable)

    def _readable(self) -> None:
        port = self._serial
        if port is None:
            return
        try:
            data = port.read(port.in_waiting or 1)
        except (serial.SerialException, OSError):
            self._drop()  # the adapter went away: the next command opens it again (or says why not)
            return
        for message in self._reader.feed(data):
            self.replies.put_nowait(message)
        self.garbage = self._reader.garbage

    async def send(self, message: bytes) -> None:
        if self._serial is None:
            await self.open()
        assert self._serial is not None
        try:
            self._serial.write(message)
        except (serial.SerialException, OSError) as err:
            await self.close()
            raise DeviceUnavailable(f"cannot write to the camera's serial port {self.port}: {err}") from err

    def _drop(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(port.fileno())
            port.close()

    async def close(self) -> None:
        self._drop()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, link: IpLink) -> None:
        self._link = link

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self._link.received(data)


class IpLink(Link):
    """VISCA over IP (Sony's UDP 52381): the 8-byte header, sequence numbers, the camera's sequence reset."""

    def __init__(self, host: str, port: int = VISCA_PORT) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.sequence = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._control: asyncio.Queue[bytes] = asyncio.Queue()
        self._needs_reset = True

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), remote_addr=(self.host, self.port)
            )
        except OSError as err:
            raise DeviceUnavailable(f"cannot reach the camera at {self.host}:{self.port}: {err}") from err

    def received(self, data: bytes) -> None:
        """One datagram from the camera: a VISCA reply of the current command, or a control reply."""
        if len(data) < IP_HEADER.size:
            self.garbage += len(data)
            return
        kind, length, sequence = IP_HEADER.unpack_from(data)
        payload = data[IP_HEADER.size :]
        if length != len(payload):
            self.garbage += len(data)
        elif kind == IP_CONTROL_REPLY:
            self._control.put_nowait(payload)
        elif kind == IP_REPLY and sequence == self.sequence and payload.endswith(b"\xff") and payload[0] & 0x80:
            self.replies.put_nowait(payload)
        else:
            self.garbage += len(data)  # another command's late reply, or not VISCA

    def _datagram(self, kind: int, payload: bytes) -> bytes:
        return IP_HEADER.pack(kind, len(payload), self.sequence) + payload

    async def _reset(self) -> None:
        """RESET the camera's sequence counter (it answers ACK); the box counts from 0 again."""
        while not self._control.empty():
            self._control.get_nowait()
        self.sequence = 0
        self._write(self._datagram(IP_CONTROL, IP_RESET))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):  # some cameras never answer a reset: carry on
                await self._control.get()
        self._needs_reset = False

    def _write(self, datagram: bytes) -> None:
        if self._transport is None:
            raise DeviceUnavailable(f"the camera at {self.host}:{self.port} is not connected")
        self._transport.sendto(datagram)

    async def send(self, message: bytes) -> None:
        if self._transport is None:
            await self.open()
        if self._needs_reset:
            await self._reset()
        self.sequence = (self.sequence + 1) & 0xFFFFFFFF
        self._write(self._datagram(IP_COMMAND, message))

    async def lost_reply(self) -> None:
        self.drain()
        self._needs_reset = True

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self._needs_reset = True


# -- the camera ---------------------------------------------------------------------------------------


class CameraControl(ABC):
    """A camera's presets and moves; every call raises PTZError (or DeviceUnavailable) in plain words."""

    @abstractmethod
    async def recall_preset(self, number: int) -> None:
        """Move to a stored preset and wait until it is there."""

    @abstractmethod
    async def store_preset(self, number: int) -> None:
        """Store the current position as preset `number`."""

    @abstractmethod
    async def nudge(self, pan: Direction = 0, tilt: Direction = 0, zoom: Direction = 0, seconds: float = 0.3) -> None:
        """Move a little: drive the given axes for `seconds`, then stop."""

    @abstractmethod
    async def home(self) -> None:
        """Go to the home position."""

    @abstractmethod
    async def close(self) -> None:
        """Let the port go (idempotent)."""


@dataclass
class Timeouts:
    """How long a camera may take: to acknowledge a command, and to finish it (a preset move takes a while)."""

    ack_s: float = 1.0
    done_s: float = 10.0


class ViscaCamera(CameraControl):
    """A VISCA camera on a link: one command at a time, each acknowledged and completed or refused."""

    def __init__(self, link: Link, address: int = 1, timeouts: Timeouts | None = None) -> None:
        packet(address, b"")  # checks the address
        self.link = link
        self.address = address
        self.timeouts = timeouts or Timeouts()
        self._lock = asyncio.Lock()

    async def recall_preset(self, number: int) -> None:
        await self.execute(recall_payload(number))

    async def store_preset(self, number: int) -> None:
        await self.execute(store_payload(number))

    async def home(self) -> None:
        await self.execute(home_payload())

    async def nudge(self, pan: Direction = 0, tilt: Direction = 0, zoom: Direction = 0, seconds: float = 0.3) -> None:
        async with self._lock:  # the move and its stop are one command for the other callers
            if pan or tilt:
                await self._execute(pan_tilt_payload(pan, tilt))
            if zoom:
                await self._execute(zoom_payload(zoom))
            await asyncio.sleep(seconds)
            if pan or tilt:
                await self._execute(pan_tilt_payload(0, 0))
            if zoom:
                await self._execute(zoom_payload(0))

    async def execute(self, payload: bytes) -> None:
        """Send one command and wait for its ACK and completion; PTZError/PTZTimeout in words otherwise."""
        async with self._lock:
            await self._execute(payload)

    async def _execute(self, payload: bytes) -> None:
        self.link.drain()
        await self.link.send(packet(self.address, payload))
        try:
            await self._await("ack", self.timeouts.ack_s)
            await self._await("done", self.timeouts.done_s)
        except PTZTimeout:
            await self.link.lost_reply()
            raise

    async def _await(self, wanted: str, within: float) -> None:
        """Wait for the reply `wanted` (an error reply raises; replies of other cameras are skipped)."""
        try:
            async with asyncio.timeout(within):
                while True:
                    reply = Reply.parse(await self.link.replies.get())
                    if reply.camera != self.address:
                        continue
                    if reply.kind == "error":
                        raise PTZError(f"the camera refused the command: {reply.describe()}")
                    if reply.kind == wanted or (wanted == "ack" and reply.kind == "done"):
                        return  # some cameras finish at once without an ACK
        except TimeoutError:
            said = "acknowledge" if wanted == "ack" else "finish"
            garbage = f" ({self.link.garbage} bytes of garbage seen)" if self.link.garbage else ""
            raise PTZTimeout(f"the camera did not {said} the command within {within:g} s{garbage}") from None

    async def close(self) -> None:
        await self.link.close()


@dataclass
class SyntheticCamera(CameraControl):
    """A camera that obeys at once and remembers where it is (demo mode, boxes without a PTZ camera)."""

    position: tuple[int, int, int] = (0, 0, 0)
    presets: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)

    async def recall_preset(self, number: int) -> None:
        self.position = self.presets.get(_preset(number), self.position)
        self.commands.append(f"recall {number}")

    async def store_preset(self, number: int) -> None:
        self.presets[_preset(number)] = self.position
        self.commands.append(f"store {number}")

    async def nudge(self, pan: Direction = 0, tilt: Direction = 0, zoom: Direction = 0, seconds: float = 0.3) -> None:
        x, y, z = self.position
        self.position = (x + pan, y + tilt, z + zoom)
        self.commands.append(f"nudge {pan} {tilt} {zoom}")

    async def home(self) -> None:
        self.position = (0, 0, 0)
        self.commands.append("home")

    async def close(self) -> None:
        return None


def open_camera(spec: str, address: int = 1, timeouts: Timeouts | None = None) -> CameraControl:
    """A camera control from its spec: `serial:/dev/ttyUSB0[@9600]`, `visca-ip:HOST[:PORT]` or `synthetic`."""
    kind, _, rest = spec.partition(":")
    if kind == "synthetic" and not rest:
        return SyntheticCamera()
    if kind == "serial" and rest:
        port, _, baud = rest.partition("@")
        if baud and not baud.isdigit():
            raise DeviceSpecError(f"serial speed must be a number: {spec!r}")
        return ViscaCamera(SerialLink(port, int(baud or 9600)), address, timeouts)
    if kind == "visca-ip" and rest:
        host, _, port_text = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
        if port_text and not port_text.isdigit():
            raise DeviceSpecError(f"VISCA over IP port must be a number: {spec!r}")
        return ViscaCamera(IpLink(host or rest, int(port_text or VISCA_PORT)), address, timeouts)
    raise DeviceSpecError(f"a PTZ camera is serial:PORT[@BAUD], visca-ip:HOST[:PORT] or synthetic, not {spec!r}")
