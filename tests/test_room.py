"""The room card: preset buttons and the board display's power, against devices the test plays.

The test plays a VISCA-over-IP camera (UDP) and a PJLink projector with a password (TCP) on loopback;
the service layer is tested on its own first, then the real daemon with Chromium on the panel.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from pydantic import ValidationError

from edge.core.config import BoxConfig, DisplayInput
from edge.core.errors import RoomDeviceError
from edge.core.events import EventBus
from edge.room.devices import DISPLAY_SILENT, RoomDevices, command_map
from tests.helpers import REPO, DaemonProcess, free_port, http_json
from tests.test_display import PASSWORD, RANDOM, PlayedProjector
from tests.test_ptz import UdpCamera

SCREENSHOTS = REPO / "docs" / "screenshots"
SIZES = ((1280, 800), (800, 480), (390, 844))
DIGEST = hashlib.md5((RANDOM + PASSWORD).encode()).hexdigest()


class Devices:
    """The room's camera and projector, played by the test on loopback."""

    def __init__(self, camera: UdpCamera, camera_port: int, projector: PlayedProjector, projector_port: int) -> None:
        self.camera, self.camera_port = camera, camera_port
        self.projector, self.projector_port = projector, projector_port

    def commands(self) -> list[str]:
        """The VISCA commands the camera got (headers and RESETs left out), as hex."""
        return [d[8:].hex(" ") for d in self.camera.datagrams if d[:2] == b"\x01\x00"]


@pytest.fixture
async def devices() -> AsyncIterator[Devices]:
    loop = asyncio.get_running_loop()
    camera_port = free_port()
    transport, camera = await loop.create_datagram_endpoint(UdpCamera, local_addr=("127.0.0.1", camera_port))
    projector = PlayedProjector(PASSWORD)
    server = await asyncio.start_server(projector.serve, "127.0.0.1", 0)
    try:
        yield Devices(camera, camera_port, projector, server.sockets[0].getsockname()[1])
    finally:
        transport.close()
        server.close()
        await server.wait_closed()


def room_config(devices: Devices) -> BoxConfig:
    config = BoxConfig()
    config.ptz.control = f"visca-ip:127.0.0.1:{devices.camera_port}"
    config.display.control = f"pjlink:127.0.0.1:{devices.projector_port}"
    config.display.password = PASSWORD
    config.display.inputs = [DisplayInput(name="HDMI 1", code="31")]
    config.display.board_input = "HDMI 1"
    config.display.timeout_s = 0.5
    return config


async def test_presets_and_the_board_power_reach_the_devices_and_a_silent_one_raises_an_alarm(
    devices: Devices,
) -> None:
    config = room_config(devices)
    alarms: dict[str, str] = {}
    room = RoomDevices(lambda: config, EventBus(), alarms.__setitem__, lambda name: alarms.pop(name, None))
    await room.start()
    try:
        await room.recall("Teacher")
        assert devices.commands() == ["81 01 04 3f 02 02 ff"]
        with pytest.raises(RoomDeviceError, match="not set up") as missing:
            await room.recall("Window")
        assert missing.value.missing
        assert await room.board_power(True) == "on"
        assert devices.projector.received == [f"{DIGEST}%1POWR 1\r", f"{DIGEST}%1INPT 31\r"]
        devices.projector.silent = True
        with pytest.raises(RoomDeviceError) as silent:
            await room.board_power(False)
        assert str(silent.value) == DISPLAY_SILENT
        assert "did not answer within 0.5 s" in silent.value.reason
        assert alarms == {"display": DISPLAY_SILENT}
        assert room.health().status == "degraded"
        assert room.state()["display"]["problem"] == DISPLAY_SILENT
        devices.projector.silent = False
        assert await room.board_power(False) == "off"
        assert alarms == {}
        assert room.health().status == "ok"
        assert PASSWORD not in str(room.state()) + room.health().detail
    finally:
        await room.stop()
        await room.stop()


# -- Chromium on the panel ---------------------------------------------------------------------------


def daemon_config(tmp_path: Path, devices: Devices) -> Path:
    path = tmp_path / "box.toml"
    path.write_text(
        f"""
[box]
name = "Room 12"
[[cameras]]
name = "teacher"
width = 640
height = 360
fps = 10
[stream.high]
width = 640
height = 360
fps = 10
kbps = 400
[stream.low]
width = 320
height = 180
fps = 10
kbps = 150
[stream.lowest]
enabled = false
[discovery]
enabled = false
[ptz]
control = "visca-ip:127.0.0.1:{devices.camera_port}"
[display]
control = "pjlink:127.0.0.1:{devices.projector_port}"
password = "{PASSWORD}"
board_input = "HDMI 1"
timeout_s = 1.0
[[display.inputs]]
name = "HDMI 1"
code = "31"
"""
    )
    return path


async def shots(page: Page, name: str) -> None:
    """`docs/screenshots/<name>-<w>x<h>.png` with the room card in view, at each size (it must fit the width)."""
    for width, height in SIZES:
        await page.set_viewport_size({"width": width, "height": height})
        await page.locator("#room-card").scroll_into_view_if_needed()
        assert await page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}x{height}.png"))
    await page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})


@pytest.mark.slow
@pytest.mark.browser
async def test_the_teacher_presses_a_preset_and_the_board_power_and_sees_a_silent_display(
    tmp_path: Path, browser: Browser, devices: Devices
) -> None:
    daemon = DaemonProcess(tmp_path / "state", "--config", str(daemon_config(tmp_path, devices)))
    try:
        await asyncio.to_thread(daemon.wait_healthy, 60.0)
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=True)
        page = await context.new_page()
        await page.goto(f"{daemon.url}/panel")
        card = page.locator("#room-card")
        await expect(card).to_have_attribute("data-ready", "true", timeout=15_000)
        await expect(page.locator("#presets button")).to_have_text(["Board", "Teacher", "Class"])
        await page.locator('#presets button[data-preset="Class"]').tap()
        await expect(page.locator('#presets button[data-preset="Class"]')).to_have_attribute("aria-pressed", "true")
        assert devices.commands() == ["81 01 04 3f 02 03 ff"]
        await page.locator("#board-on").tap()
        await expect(page.locator("#board-on")).to_have_attribute("aria-pressed", "true")
        assert devices.projector.received == [f"{DIGEST}%1POWR 1\r", f"{DIGEST}%1INPT 31\r"]
        await shots(page, "panel-room-en")

        devices.projector.silent = True
        await page.locator("#board-off").tap()
        await expect(page.locator("#room-message")).to_have_text(DISPLAY_SILENT, timeout=10_000)
        await expect(page.locator("#status")).to_contain_text(DISPLAY_SILENT)  # the status strip says it too
        status, health = await asyncio.to_thread(http_json, daemon.url + "/healthz")
        assert status == 200
        assert health["components"]["room"]["status"] == "degraded"
        assert PASSWORD not in str(health)
        devices.projector.silent = False
        await page.locator("#board-off").tap()
        await expect(page.locator("#room-message")).to_be_hidden()
        await expect(page.locator("#board-off")).to_have_attribute("aria-pressed", "true")

        await context.add_cookies([{"name": "classbox_lang", "value": "ar", "url": daemon.url}])
        await page.reload()
        await expect(card).to_have_attribute("data-ready", "true", timeout=15_000)
        assert await page.get_attribute("html", "dir") == "rtl"
        await shots(page, "panel-room-ar")
        await context.close()
        assert await asyncio.to_thread(daemon.terminate, 15) == 0
    finally:
        await asyncio.to_thread(daemon.__exit__)


def test_a_serial_display_map_is_read_from_the_config_and_refused_without_its_power_bytes() -> None:
    config = BoxConfig.model_validate(
        {
            "display": {
                "control": "serial:/dev/ttyUSB1@19200",
                "power_on": "ka 01 01\\r",
                "power_off": "hex:6b 61 20 30 31 20 30 30 0d",
                "status": "ka 01 ff\\r",
                "status_on": "OK01",
                "reply_end": "x",
                "inputs": [{"name": "HDMI 1", "code": "xb 01 90\\r"}],
                "board_input": "HDMI 1",
            }
        }
    )
    found = command_map(config)
    assert found is not None
    assert (found.power_on, found.power_off, found.status) == (b"ka 01 01\r", b"ka 01 00\r", b"ka 01 ff\r")
    assert (found.status_on, found.reply_end, found.inputs) == (b"OK01", b"x", {"HDMI 1": b"xb 01 90\r"})
    with pytest.raises(ValidationError, match="needs its power on and power off bytes"):
        BoxConfig.model_validate({"display": {"control": "serial:/dev/ttyUSB1"}})
    with pytest.raises(ValidationError, match="is not one of the inputs"):
        BoxConfig.model_validate({"display": {"control": "synthetic", "board_input": "VGA"}})
    with pytest.raises(ValidationError, match="a PTZ camera is serial:PORT"):
        BoxConfig.model_validate({"ptz": {"control": "usb:0"}})
