"""PTZ cameras over VISCA: the test plays the camera on a pty (RS-232) and on UDP (VISCA over IP), byte for byte.

The camera stand-in checks every byte the driver sends against the VISCA command set and answers
as a camera does (ACK, completion), or with an error, garbage or silence; the driver must say what
went wrong in words and work again on the next command.
"""

from __future__ import annotations

import asyncio
import os
import struct
import tty
from collections.abc import AsyncIterator, Callable

import pytest

from drivers.errors import DeviceSpecError, DeviceUnavailable
from drivers.ptz import IpLink, PTZError, PTZTimeout, SerialLink, Timeouts, ViscaCamera, open_camera
from tests.helpers import free_port

QUICK = Timeouts(ack_s=0.3, done_s=0.5)
ACK, DONE = bytes.fromhex("9041ff"), bytes.fromhex("9051ff")


class PlayedCamera:
    """What the camera does with each command: 'ok', 'error', 'silent', 'garbage', 'no-done' or 'hold'."""

    def __init__(self, send: Callable[[bytes], None]) -> None:
        self.send = send
        self.received: list[bytes] = []
        self.mode = "ok"
        self.release = asyncio.Event()
        self.got_one = asyncio.Event()
        self._buffer = b""

    def bytes_in(self, data: bytes) -> None:
        self._buffer += data
        while b"\xff" in self._buffer:
            message, _, self._buffer = self._buffer.partition(b"\xff")
            self.command(message + b"\xff")

    def command(self, message: bytes) -> None:
        self.received.append(message)
        self.got_one.set()
        if self.mode == "ok":
            self.send(ACK)
            self.send(DONE)
        elif self.mode == "error":
            self.send(bytes.fromhex("906141ff"))  # command not executable
        elif self.mode == "garbage":
            self.send(b"\x01\x02hello\x00")
        elif self.mode == "no-done":
            self.send(ACK)
        elif self.mode == "hold":
            self.send(ACK)
            task = asyncio.get_running_loop().create_task(self._done_later())
            self._held = task

    async def _done_later(self) -> None:
        await self.release.wait()
        self.send(DONE)


@pytest.fixture
async def pty_camera() -> AsyncIterator[tuple[PlayedCamera, ViscaCamera]]:
    master, slave = os.openpty()
    tty.setraw(master)
    path = os.ttyname(slave)
    played = PlayedCamera(lambda data: os.write(master, data))
    loop = asyncio.get_running_loop()
    os.set_blocking(master, False)
    loop.add_reader(master, lambda: played.bytes_in(os.read(master, 1024)))
    camera = ViscaCamera(SerialLink(path), address=1, timeouts=QUICK)
    try:
        yield played, camera
    finally:
        await camera.close()
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)


async def test_presets_home_and_nudges_go_out_as_visca_bytes_over_serial(
    pty_camera: tuple[PlayedCamera, ViscaCamera],
) -> None:
    played, camera = pty_camera
    await camera.recall_preset(2)
    await camera.store_preset(3)
    await camera.home()
    await camera.nudge(pan=1, seconds=0.01)
    await camera.nudge(tilt=1, zoom=1, seconds=0.01)
    await camera.nudge(pan=-1, tilt=-1, seconds=0.01)
    assert [m.hex(" ") for m in played.received] == [
        "81 01 04 3f 02 02 ff",  # CAM_Memory Recall 2
        "81 01 04 3f 01 03 ff",  # CAM_Memory Set 3
        "81 01 06 04 ff",  # Pan-tiltDrive Home
        "81 01 06 01 08 08 02 03 ff",  # right
        "81 01 06 01 08 08 03 03 ff",  # stop
        "81 01 06 01 08 08 03 01 ff",  # up
        "81 01 04 07 23 ff",  # zoom tele, speed 3
        "81 01 06 01 08 08 03 03 ff",
        "81 01 04 07 00 ff",  # zoom stop
        "81 01 06 01 08 08 01 02 ff",  # left and down
        "81 01 06 01 08 08 03 03 ff",
    ]


async def test_errors_garbage_and_silence_are_said_plainly_and_the_next_command_works(
    pty_camera: tuple[PlayedCamera, ViscaCamera],
) -> None:
    played, camera = pty_camera
    played.mode = "error"
    with pytest.raises(PTZError, match="refused the command: command not executable now"):
        await camera.recall_preset(1)
    played.mode = "silent"
    with pytest.raises(PTZTimeout, match=r"did not acknowledge the command within 0\.3 s$"):
        await camera.recall_preset(1)
    played.mode = "garbage"
    with pytest.raises(PTZTimeout, match=r"did not acknowledge .* \(\d+ bytes of garbage seen\)"):
        await camera.recall_preset(1)
    played.mode = "no-done"
    with pytest.raises(PTZTimeout, match=r"did not finish the command within 0\.5 s"):
        await camera.recall_preset(1)
    played.mode = "ok"
    played.received.clear()
    await camera.recall_preset(4)  # recovers: the late and stale replies are not taken for this one's
    assert played.received == [bytes.fromhex("8101043f0204ff")]


async def test_one_command_at_a_time_per_camera(pty_camera: tuple[PlayedCamera, ViscaCamera]) -> None:
    played, camera = pty_camera
    camera.timeouts = Timeouts(ack_s=1.0, done_s=10.0)
    played.mode = "hold"
    first = asyncio.create_task(camera.recall_preset(1))
    second = asyncio.create_task(camera.recall_preset(2))
    await played.got_one.wait()
    await asyncio.sleep(0.2)  # time for a second command to arrive, were it sent
    assert played.received == [bytes.fromhex("8101043f0201ff")]
    played.mode = "ok"
    played.release.set()
    await asyncio.gather(first, second)
    assert played.received[1] == bytes.fromhex("8101043f0202ff")


async def test_a_serial_camera_whose_cable_is_pulled_is_a_clear_error_not_a_busy_loop() -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    link = SerialLink(os.ttyname(slave))
    camera = ViscaCamera(link, timeouts=QUICK)
    played = PlayedCamera(lambda data: os.write(master, data))
    loop = asyncio.get_running_loop()
    os.set_blocking(master, False)
    loop.add_reader(master, lambda: played.bytes_in(os.read(master, 1024)))
    try:
        await camera.home()
        loop.remove_reader(master)
        os.close(master)  # the cable is pulled: the port reads as gone
        for _ in range(200):  # the loop hears the hang-up at once; a reader left on a dead port would spin
            if link._serial is None:
                break
            await asyncio.sleep(0.01)
        assert link._serial is None  # the dead port was let go (its reader off the loop); the next command reopens
        with pytest.raises((PTZError, DeviceUnavailable)):
            await camera.home()
    finally:
        await camera.close()
        os.close(slave)


async def test_a_missing_serial_port_is_a_clear_error() -> None:
    camera = ViscaCamera(SerialLink("/dev/does-not-exist-ptz"), timeouts=QUICK)
    with pytest.raises(DeviceUnavailable, match="cannot open the camera's serial port /dev/does-not-exist-ptz"):
        await camera.home()
    await camera.close()


def test_specs_and_values_out_of_range_are_refused() -> None:
    with pytest.raises(DeviceSpecError, match="preset is 0 to 127"):
        asyncio.run(open_camera("synthetic").recall_preset(128))
    with pytest.raises(DeviceSpecError, match="serial:PORT"):
        open_camera("usb0")
    with pytest.raises(DeviceSpecError, match="address must be 1 to 7"):
        ViscaCamera(SerialLink("/dev/null"), address=8)
    assert isinstance(open_camera("visca-ip:10.0.0.9:1259"), ViscaCamera)


# -- VISCA over IP ------------------------------------------------------------------------------------

HEADER = struct.Struct(">HHI")


class UdpCamera(asyncio.DatagramProtocol):
    """A VISCA-over-IP camera: answers RESET and commands with the command's sequence number."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.mode = "ok"

    def connection_made(self, transport: asyncio.DatagramTransport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        assert self.transport is not None
        self.datagrams.append(data)
        kind, length, sequence = HEADER.unpack_from(data)
        assert length == len(data) - 8
        if self.mode == "silent":
            return
        if kind == 0x0200:
            self.transport.sendto(HEADER.pack(0x0201, 1, 0) + b"\x01", addr)
            return
        self.transport.sendto(HEADER.pack(0x0111, 3, sequence - 1) + DONE, addr)  # a late reply: ignored
        if self.mode == "error":
            self.transport.sendto(HEADER.pack(0x0111, 4, sequence) + bytes.fromhex("906102ff"), addr)
            return
        self.transport.sendto(b"\x00\x01junk", addr)
        for reply in (ACK, DONE):
            self.transport.sendto(HEADER.pack(0x0111, len(reply), sequence) + reply, addr)


@pytest.fixture
async def udp_camera() -> AsyncIterator[tuple[UdpCamera, ViscaCamera]]:
    port = free_port()
    transport, played = await asyncio.get_running_loop().create_datagram_endpoint(
        UdpCamera, local_addr=("127.0.0.1", port)
    )
    camera = ViscaCamera(IpLink("127.0.0.1", port), timeouts=QUICK)
    try:
        yield played, camera
    finally:
        await camera.close()
        transport.close()


async def test_visca_over_ip_resets_the_sequence_then_numbers_each_command(
    udp_camera: tuple[UdpCamera, ViscaCamera],
) -> None:
    played, camera = udp_camera
    await camera.recall_preset(5)
    await camera.home()
    assert [d.hex(" ") for d in played.datagrams] == [
        "02 00 00 01 00 00 00 00 01",  # control command RESET
        "01 00 00 07 00 00 00 01 81 01 04 3f 02 05 ff",
        "01 00 00 05 00 00 00 02 81 01 06 04 ff",
    ]


async def test_visca_over_ip_error_and_silence_then_a_fresh_sequence(udp_camera: tuple[UdpCamera, ViscaCamera]) -> None:
    played, camera = udp_camera
    await camera.home()
    played.mode = "error"
    with pytest.raises(PTZError, match="syntax error"):
        await camera.home()
    played.mode = "silent"
    with pytest.raises(PTZTimeout, match="did not acknowledge"):
        await camera.home()
    played.mode = "ok"
    played.datagrams.clear()
    await camera.recall_preset(0)
    assert [d.hex(" ") for d in played.datagrams] == [
        "02 00 00 01 00 00 00 00 01",  # after a lost reply the box resets the sequence first
        "01 00 00 07 00 00 00 01 81 01 04 3f 02 00 ff",
    ]
