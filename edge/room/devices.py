"""The room's devices for the teacher's panel: the PTZ camera's named presets and the board display.

`RoomDevices` (component name `room`) owns the camera control and the display control built from
`[ptz]` and `[display]`; the devices are opened per command, so one that is unplugged or off only
makes that command fail: the panel gets a plain sentence, the status strip an alarm until the device
answers again, and the component reports itself degraded. Nothing here stops the daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.display import CommandMap, DisplayControl, DisplayStatus, open_display, parse_bytes
from drivers.errors import DriverError
from drivers.ptz import CameraControl, Direction, Timeouts, open_camera
from edge.core.component import Component
from edge.core.config import BoxConfig
from edge.core.errors import RoomDeviceError
from edge.core.events import EventBus
from edge.core.texts import N_

log = logging.getLogger(__name__)

CAMERA_ALARM, DISPLAY_ALARM = "ptz", "display"
CAMERA_SILENT = N_("The PTZ camera did not answer: check its cable and power.")
DISPLAY_SILENT = N_("The board display did not answer: check that it is plugged in and on its network.")
NO_CAMERA = N_("No PTZ camera is set up on this box.")
NO_DISPLAY = N_("No controllable display is set up on this box.")
NO_PRESET = N_("That camera button is not set up.")

RaiseAlarm = Callable[[str, str], None]
ClearAlarm = Callable[[str], None]


def command_map(config: BoxConfig) -> CommandMap | None:
    """The serial display's command map from `[display]` (None unless the display is serial)."""
    d = config.display
    if not d.control.startswith("serial:"):
        return None
    return CommandMap(
        power_on=parse_bytes(d.power_on),
        power_off=parse_bytes(d.power_off),
        status=parse_bytes(d.status),
        status_on=parse_bytes(d.status_on),
        status_off=parse_bytes(d.status_off),
        inputs={i.name: parse_bytes(i.code) for i in d.inputs},
        reply_end=parse_bytes(d.reply_end),
        ok=parse_bytes(d.ok),
    )


class RoomDevices(Component):
    """The PTZ camera and the board display, one command at a time each, failures reported not raised upward."""

    name = "room"

    def __init__(
        self, config: Callable[[], BoxConfig], bus: EventBus, raise_alarm: RaiseAlarm, clear_alarm: ClearAlarm
    ) -> None:
        super().__init__()
        self._config_of = config
        self._bus = bus
        self._raise, self._clear = raise_alarm, clear_alarm
        self.camera: CameraControl | None = None
        self.display: DisplayControl | None = None
        self.preset: str | None = None  # the last preset recalled
        self.power: str = "unknown"  # the display's power as last seen
        self._problems: dict[str, str] = {}

    @property
    def _config(self) -> BoxConfig:
        return self._config_of()

    async def start(self) -> None:
        ptz, display = self._config.ptz, self._config.display
        if ptz.control:
            self.camera = open_camera(ptz.control, ptz.address, Timeouts(ack_s=1.0, done_s=ptz.timeout_s))
        if display.control:
            inputs = {i.name: i.code for i in display.inputs}
            self.display = open_display(
                display.control,
                password=display.password,
                inputs=inputs,
                commands=command_map(self._config),
                timeout_s=display.timeout_s,
            )
        self._report()

    async def stop(self) -> None:
        camera, self.camera = self.camera, None
        if camera is not None:
            await camera.close()
        self.display = None

    def _report(self) -> None:
        parts = [f"camera: {self._config.ptz.control or 'none'}", f"display: {self._config.display.control or 'none'}"]
        if self._problems:
            self.set_health("degraded", "; ".join(self._problems.values()))
        else:
            self.set_health("ok", ", ".join(parts))

    # -- what the panel shows -------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What the room card shows: the camera's buttons, the display, and what failed last."""
        return {
            "camera": {
                "available": self.camera is not None,
                "presets": [p.name for p in self._config.ptz.presets] if self.camera is not None else [],
                "preset": self.preset,
                "problem": CAMERA_SILENT if CAMERA_ALARM in self._problems else None,
            },
            "display": {
                "available": self.display is not None,
                "power": self.power,
                "board_input": self._config.display.board_input or None,
                "problem": DISPLAY_SILENT if DISPLAY_ALARM in self._problems else None,
            },
        }

    # -- the camera -------------------------------------------------------------------------------

    def _camera(self) -> CameraControl:
        if self.camera is None:
            raise RoomDeviceError(NO_CAMERA, missing=True)
        return self.camera

    def _preset_number(self, name: str) -> int:
        for preset in self._config.ptz.presets:
            if preset.name == name:
                return preset.number
        raise RoomDeviceError(NO_PRESET, missing=True)

    async def recall(self, name: str) -> None:
        """Move the camera to the preset named `name`."""
        camera, number = self._camera(), self._preset_number(name)
        await self._camera_does(camera.recall_preset(number))
        self.preset = name
        self._bus.publish("device.ptz", preset=name)

    async def store(self, name: str) -> None:
        """Store where the camera points now as the preset named `name`."""
        camera, number = self._camera(), self._preset_number(name)
        await self._camera_does(camera.store_preset(number))
        self.preset = name

    async def nudge(self, pan: Direction, tilt: Direction, zoom: Direction) -> None:
        """Move the camera a little."""
        await self._camera_does(self._camera().nudge(pan, tilt, zoom))
        self.preset = None

    async def home(self) -> None:
        """Send the camera to its home position."""
        await self._camera_does(self._camera().home())
        self.preset = None

    async def _camera_does(self, action: Awaitable[None]) -> None:
        await self._device_does(CAMERA_ALARM, CAMERA_SILENT, action)

    # -- the display ------------------------------------------------------------------------------

    def _display(self) -> DisplayControl:
        if self.display is None:
            raise RoomDeviceError(NO_DISPLAY, missing=True)
        return self.display

    async def board_power(self, on: bool) -> str:
        """Switch the board display on (and to the board's input) or off; the power it then has."""
        display = self._display()
        await self._device_does(DISPLAY_ALARM, DISPLAY_SILENT, display.power(on))
        board_input = self._config.display.board_input
        if on and board_input:
            await self._device_does(DISPLAY_ALARM, DISPLAY_SILENT, display.select_input(board_input))
        self.power = "on" if on else "off"
        self._bus.publish("device.display", power=self.power)
        return self.power

    async def display_status(self) -> DisplayStatus:
        """Ask the display how it is."""
        status: DisplayStatus = await self._device_does(DISPLAY_ALARM, DISPLAY_SILENT, self._display().status())
        self.power = status.power
        return status

    async def _device_does(self, which: str, message: str, action: Awaitable[Any]) -> Any:
        """Await a device's action; a failure becomes an alarm, a degraded report and a RoomDeviceError."""
        try:
            result = await action
        except DriverError as err:
            self._problems[which] = f"{which}: {err}"
            self._raise(which, message)
            self._report()
            log.warning("room: the %s failed: %s", which, err)
            raise RoomDeviceError(message, str(err)) from err
        if self._problems.pop(which, None) is not None:
            self._clear(which)
            self._report()
        return result


def state(room: RoomDevices | None) -> dict[str, Any]:
    """The room card's state; nothing available before the daemon wired the component in."""
    if room is None:
        return {
            "camera": {"available": False, "presets": [], "preset": None, "problem": None},
            "display": {"available": False, "power": "unknown", "board_input": None, "problem": None},
        }
    return room.state()


def camera_room(room: RoomDevices | None) -> RoomDevices:
    """The component, when it has a camera to move (RoomDeviceError 'not set up' otherwise)."""
    if room is None or room.camera is None:
        raise RoomDeviceError(NO_CAMERA, missing=True)
    return room


def display_room(room: RoomDevices | None) -> RoomDevices:
    """The component, when it has a display to switch (RoomDeviceError 'not set up' otherwise)."""
    if room is None or room.display is None:
        raise RoomDeviceError(NO_DISPLAY, missing=True)
    return room
