"""The board's pen and touch: `BoardInput` over Linux evdev, and a replay of recorded event streams.

Both backends feed the same parser (`EvdevParser`): multitouch protocol B slots (each finger is
one contact), pens with pressure and an eraser end (BTN_TOOL_PEN / BTN_TOOL_RUBBER, BTN_TOUCH),
axis ranges normalised to 0..1, then turned (`rotation`) and fitted to the display's area
(calibration). It hands out `Contact` samples: a contact goes down, moves, and goes up.

A recording is the device's bytes as the kernel gave them (`struct input_event`, native layout)
beside a JSON description of the device (`name`, and each axis's `[min, max]` by evdev name), the
way evemu keeps them. `synthetic_writing()` makes such a recording of a pen writing (demo mode).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import select
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evdev import ecodes

from drivers.errors import DeviceSpecError, DeviceUnavailable

__all__ = [
    "EVENT",
    "BoardInput",
    "Contact",
    "DeviceInfo",
    "EvdevParser",
    "Mapping",
    "Recording",
    "load_recording",
    "EventSource",
    "EvdevSource",
    "ReplaySource",
    "encode_events",
    "open_board_input",
    "synthetic_writing",
]

log = logging.getLogger(__name__)

EVENT = struct.Struct("llHHi")  # struct input_event: struct timeval, __u16 type, __u16 code, __s32 value
MT_AXES = (ecodes.ABS_MT_POSITION_X, ecodes.ABS_MT_POSITION_Y)
READ_WAIT_S = 0.2  # how often a blocked reader looks at its stop flag
RETRY_S = 2.0

ContactKind = Literal["down", "move", "up"]
InputTool = Literal["pen", "eraser", "touch"]


@dataclass(frozen=True)
class Contact:
    """One sample of a pen or finger on the board: x, y in 0..1 of the display, pressure 0..1, t seconds."""

    kind: ContactKind
    contact: str  # stable while the pen or finger stays down
    tool: InputTool
    x: float
    y: float
    pressure: float
    t: float


@dataclass(frozen=True)
class DeviceInfo:
    """What the parser needs to know of a device: its name and its axes' ranges (by evdev code)."""

    name: str
    axes: dict[int, tuple[int, int]]

    @property
    def multitouch(self) -> bool:
        """True for a protocol-B multitouch device (its fingers come in slots)."""
        return all(axis in self.axes for axis in MT_AXES)

    def to_json(self) -> dict[str, Any]:
        """The description a recording keeps beside its bytes."""
        return {"name": self.name, "axes": {ecodes.ABS[code]: list(r) for code, r in sorted(self.axes.items())}}

    @classmethod
    def from_json(cls, data: Any) -> DeviceInfo:
        """A description read back; DeviceSpecError when it is not one."""
        try:
            axes = {_abs_code(name): (int(r[0]), int(r[1])) for name, r in data["axes"].items()}
            return cls(str(data["name"]), axes)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise DeviceSpecError(f"not a board recording's description: {err}") from err


def _abs_code(name: str) -> int:
    code = ecodes.ecodes.get(name)
    if not isinstance(code, int) or not name.startswith("ABS_"):
        raise ValueError(f"unknown axis {name}")
    return code


@dataclass(frozen=True)
class Mapping:
    """From the device's frame to the display's: turned `rotation` degrees clockwise, then fitted to `area`."""

    rotation: int = 0
    area: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # left, top, right, bottom of the input's range

    def apply(self, x: float, y: float) -> tuple[float, float]:
        """Display coordinates (0..1) of a normalised input position."""
        if self.rotation == 90:
            x, y = y, 1.0 - x
        elif self.rotation == 180:
            x, y = 1.0 - x, 1.0 - y
        elif self.rotation == 270:
            x, y = 1.0 - y, x
        left, top, right, bottom = self.area
        return _clamp((x - left) / (right - left)), _clamp((y - top) / (bottom - top))


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


@dataclass
class _Slot:
    tracking_id: int = -1
    x: int = 0
    y: int = 0
    pressure: int | None = None
    down: bool = False  # reported down to the consumer
    moved: bool = False
    name: str = ""


@dataclass
class _Pen:
    tool: InputTool = "pen"
    in_range: bool = False
    touching: bool = False
    x: int = 0
    y: int = 0
    pressure: int | None = None
    down: bool = False
    moved: bool = False
    strokes: int = 0


@dataclass
class EvdevParser:
    """Turns evdev events into contacts, one SYN_REPORT frame at a time."""

    info: DeviceInfo
    mapping: Mapping = field(default_factory=Mapping)
    _slots: dict[int, _Slot] = field(default_factory=dict)
    _slot: int = 0
    _pen: _Pen = field(default_factory=_Pen)
    _dropping: bool = False

    def feed(self, ev_type: int, code: int, value: int, t: float) -> list[Contact]:
        """One event; the contacts its frame completes (on SYN_REPORT), else []."""
        if ev_type == ecodes.EV_SYN:
            return self._sync(code, t)
        if self._dropping:
            return []
        if ev_type == ecodes.EV_ABS:
            self._abs(code, value)
        elif ev_type == ecodes.EV_KEY:
            self._key(code, value)
        return []

    def feed_all(self, events: Iterable[tuple[int, int, int, float]]) -> Iterator[Contact]:
        """Every contact of a stream of (type, code, value, t) events."""
        for event in events:
            yield from self.feed(*event)

    def _abs(self, code: int, value: int) -> None:
        if self.info.multitouch:
            self._mt_abs(code, value)
            return
        pen = self._pen
        if code == ecodes.ABS_X:
            pen.x, pen.moved = value, True
        elif code == ecodes.ABS_Y:
            pen.y, pen.moved = value, True
        elif code == ecodes.ABS_PRESSURE:
            pen.pressure = value

    def _mt_abs(self, code: int, value: int) -> None:
        if code == ecodes.ABS_MT_SLOT:
            self._slot = value
            return
        slot = self._slots.setdefault(self._slot, _Slot())
        if code == ecodes.ABS_MT_TRACKING_ID:
            slot.tracking_id = value
            slot.pressure = None if value >= 0 else slot.pressure
        elif code == ecodes.ABS_MT_POSITION_X:
            slot.x, slot.moved = value, True
        elif code == ecodes.ABS_MT_POSITION_Y:
            slot.y, slot.moved = value, True
        elif code == ecodes.ABS_MT_PRESSURE:
            slot.pressure = value

    def _key(self, code: int, value: int) -> None:
        pen = self._pen
        if code in (ecodes.BTN_TOOL_PEN, ecodes.BTN_TOOL_RUBBER):
            if value:
                pen.tool = "eraser" if code == ecodes.BTN_TOOL_RUBBER else "pen"
            pen.in_range = bool(value)
        elif code == ecodes.BTN_TOUCH:
            pen.touching = bool(value)

    def _sync(self, code: int, t: float) -> list[Contact]:
        if code == ecodes.SYN_DROPPED:  # the kernel's buffer overflowed: lift everything, wait for a full frame
            self._dropping = True
            return self.lift_all(t)
        if code != ecodes.SYN_REPORT:
            return []
        if self._dropping:
            self._dropping = False
            return []
        return self._mt_frame(t) if self.info.multitouch else self._pen_frame(t)

    def _mt_frame(self, t: float) -> list[Contact]:
        out = []
        for number, slot in sorted(self._slots.items()):
            kind: ContactKind | None = None
            if slot.tracking_id >= 0 and not slot.down:
                slot.down, slot.name, kind = True, f"t{number}-{slot.tracking_id}", "down"
            elif slot.tracking_id >= 0 and slot.moved:
                kind = "move"
            elif slot.tracking_id < 0 and slot.down:
                slot.down, kind = False, "up"
            if kind is not None:
                out.append(self._contact(kind, slot.name, "touch", slot.x, slot.y, slot.pressure, t))
            slot.moved = False
        return out

    def _pen_frame(self, t: float) -> list[Contact]:
        pen = self._pen
        touching = pen.touching and pen.in_range
        kind: ContactKind | None = None
        if touching and not pen.down:
            pen.down, kind = True, "down"
        elif touching and pen.moved:
            kind = "move"
        elif not touching and pen.down:
            pen.down, kind = False, "up"
        pen.moved = False
        if kind is None:
            return []
        contact = self._contact(kind, f"p{pen.strokes}", pen.tool, pen.x, pen.y, pen.pressure, t)
        pen.strokes += kind == "up"
        return [contact]

    def lift_all(self, t: float) -> list[Contact]:
        """Every contact still down goes up (the device went, or the kernel dropped events)."""
        for slot in self._slots.values():
            slot.tracking_id = -1
        self._pen.touching = False
        return self._mt_frame(t) if self.info.multitouch else self._pen_frame(t)

    def _contact(
        self, kind: ContactKind, name: str, tool: InputTool, x: int, y: int, pressure: int | None, t: float
    ) -> Contact:
        mt = self.info.multitouch
        x_axis, y_axis = MT_AXES if mt else (ecodes.ABS_X, ecodes.ABS_Y)
        p_axis = ecodes.ABS_MT_PRESSURE if mt else ecodes.ABS_PRESSURE
        dx, dy = self.mapping.apply(self._norm(x, x_axis), self._norm(y, y_axis))
        p = 0.5 if pressure is None or p_axis not in self.info.axes else self._norm(pressure, p_axis)
        return Contact(kind, name, tool, dx, dy, p, t)

    def _norm(self, value: int, axis: int) -> float:
        low, high = self.info.axes.get(axis, (0, 1))
        return _clamp((value - low) / (high - low)) if high > low else 0.0


# -- recordings and the synthetic pen -----------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """A device's description and its recorded `struct input_event` bytes."""

    info: DeviceInfo
    data: bytes

    def events(self) -> Iterator[tuple[int, int, int, float]]:
        """The recorded events as (type, code, value, t seconds)."""
        usable = len(self.data) - len(self.data) % EVENT.size
        for sec, usec, ev_type, code, value in EVENT.iter_unpack(self.data[:usable]):
            yield ev_type, code, value, sec + usec / 1e6


def load_recording(path: Path) -> Recording:
    """A recording from `NAME.bin` and its description `NAME.json`; DeviceSpecError when either is wrong."""
    try:
        data = path.read_bytes()
        info = DeviceInfo.from_json(json.loads(path.with_suffix(".json").read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise DeviceSpecError(f"cannot read the board recording {path}: {err}") from err
    if len(data) % EVENT.size:
        raise DeviceSpecError(f"{path} is not a stream of input events ({len(data)} bytes)")
    return Recording(info, data)


def encode_events(events: Iterable[tuple[int, int, int, float]]) -> bytes:
    """(type, code, value, t) events as the kernel hands them out."""
    out = bytearray()
    for ev_type, code, value, t in events:
        sec = math.floor(t)
        out += EVENT.pack(sec, round((t - sec) * 1e6) % 1_000_000, ev_type, code, value)
    return bytes(out)


PEN_INFO = DeviceInfo(
    "Synthetic Pen", {ecodes.ABS_X: (0, 32767), ecodes.ABS_Y: (0, 18431), ecodes.ABS_PRESSURE: (0, 4095)}
)


def synthetic_writing(seconds: float = 60.0, rate_hz: int = 100) -> Recording:
    """A pen writing loops across the board for `seconds`, line after line (the demo's board)."""
    events: list[tuple[int, int, int, float]] = []
    t = 0.0
    stroke = 0
    while t < seconds:
        t = _pen_stroke(events, stroke, t, rate_hz)
        stroke += 1
    return Recording(PEN_INFO, encode_events(events))


def _pen_stroke(events: list[tuple[int, int, int, float]], n: int, t: float, rate_hz: int) -> float:
    """One word-long stroke of loops; returns when the next one may start."""
    row, col = (n // 3) % 8, n % 3
    x0, y0 = 0.06 + col * 0.31, 0.1 + row * 0.11
    steps = int(1.5 * rate_hz)
    syn = (ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
    events.append((ecodes.EV_KEY, ecodes.BTN_TOOL_PEN, 1, t))
    events.append((*syn, t))
    for i in range(steps):
        t += 1 / rate_hz
        a = i / steps
        x = x0 + 0.26 * a + 0.02 * math.cos(a * 9 * math.pi)
        y = y0 + 0.03 * math.sin(a * 9 * math.pi) - 0.01 * math.sin(a * math.pi)
        pressure = int(4095 * (0.45 + 0.25 * math.sin(a * math.pi)))
        events.append((ecodes.EV_ABS, ecodes.ABS_X, int(x * 32767), t))
        events.append((ecodes.EV_ABS, ecodes.ABS_Y, int(y * 18431), t))
        events.append((ecodes.EV_ABS, ecodes.ABS_PRESSURE, pressure, t))
        if i == 0:
            events.append((ecodes.EV_KEY, ecodes.BTN_TOUCH, 1, t))
        events.append((*syn, t))
    t += 1 / rate_hz
    events += [(ecodes.EV_ABS, ecodes.ABS_PRESSURE, 0, t), (ecodes.EV_KEY, ecodes.BTN_TOUCH, 0, t), (*syn, t)]
    t += 0.05
    events += [(ecodes.EV_KEY, ecodes.BTN_TOOL_PEN, 0, t), (*syn, t)]
    if n % 24 == 23:  # the board is full: wipe it with the eraser end
        t = _erase(events, t + 0.5, rate_hz)
    return t + 0.4


def _erase(events: list[tuple[int, int, int, float]], t: float, rate_hz: int) -> float:
    """The eraser end sweeps the board in a zigzag."""
    syn = (ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
    events += [(ecodes.EV_KEY, ecodes.BTN_TOOL_RUBBER, 1, t), (*syn, t)]
    steps = 2 * rate_hz
    for i in range(steps):
        t += 1 / rate_hz
        a = i / steps
        events.append((ecodes.EV_ABS, ecodes.ABS_X, int((0.05 + 0.9 * abs(math.sin(a * 8 * math.pi))) * 32767), t))
        events.append((ecodes.EV_ABS, ecodes.ABS_Y, int((0.05 + 0.9 * a) * 18431), t))
        events.append((ecodes.EV_ABS, ecodes.ABS_PRESSURE, 3000, t))
        if i == 0:
            events.append((ecodes.EV_KEY, ecodes.BTN_TOUCH, 1, t))
        events.append((*syn, t))
    t += 1 / rate_hz
    events += [
        (ecodes.EV_KEY, ecodes.BTN_TOUCH, 0, t),
        (*syn, t),
        (ecodes.EV_KEY, ecodes.BTN_TOOL_RUBBER, 0, t),
        (*syn, t),
    ]
    return t


# -- backends and the reader thread --------------------------------------------------------------------


Event = tuple[int, int, int, float]


class EventSource:
    """Where events come from: `open()` describes the device, `read()` yields its events until `stop` is set."""

    label = "board input"

    def open(self) -> DeviceInfo:
        """Open the device (DeviceUnavailable when it cannot be) and describe it."""
        raise NotImplementedError

    def read(self, stop: threading.Event) -> Iterator[Event]:
        """Events until `stop` is set or the device goes (DeviceUnavailable)."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the device (idempotent)."""


class ReplaySource(EventSource):
    """A recording played at its own pace (looping, for the demo), as if the device were there."""

    def __init__(self, recording: Recording, loop: bool = True, speed: float = 1.0, label: str = "replay") -> None:
        self.recording = recording
        self.loop = loop
        self.speed = speed
        self.label = label

    def open(self) -> DeviceInfo:
        return self.recording.info

    def read(self, stop: threading.Event) -> Iterator[Event]:
        offset = 0.0
        started = time.monotonic()
        while not stop.is_set():
            first: float | None = None
            last = 0.0
            for ev_type, code, value, t in self.recording.events():
                first = t if first is None else first
                last = offset + t - first
                delay = started + last / self.speed - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    return
                yield ev_type, code, value, last
            if not self.loop or first is None:
                return
            offset = last + 1.0


class EvdevSource(EventSource):
    """A Linux input device (pen, touch frame, touch screen) found by a part of its name or its path."""

    def __init__(self, spec: str) -> None:
        if not spec:
            raise DeviceSpecError("board.device must name the pen or touch device (part of its name, or a path)")
        self.spec = spec
        self.label = spec
        self._device: Any = None

    def open(self) -> DeviceInfo:
        import evdev

        try:
            self._device = device = evdev.InputDevice(self._find(evdev))
            caps: Any = device.capabilities(absinfo=True).get(ecodes.EV_ABS, [])
        except OSError as err:
            raise DeviceUnavailable(f"cannot open the board input {self.spec}: {err.strerror or err}") from err
        axes = {code: (info.min, info.max) for code, info in caps}
        self.label = device.name
        return DeviceInfo(device.name, axes)

    def _find(self, evdev: Any) -> str:
        if self.spec.startswith("/dev/"):
            return self.spec
        for path in evdev.list_devices():
            with contextlib.suppress(OSError):
                device = evdev.InputDevice(path)
                name = device.name
                device.close()
                if self.spec.lower() in name.lower():
                    return str(path)
        raise DeviceUnavailable(f"no input device's name contains {self.spec!r}")

    def read(self, stop: threading.Event) -> Iterator[Event]:
        device = self._device
        try:
            while not stop.is_set():
                ready, _, _ = select.select([device.fd], [], [], READ_WAIT_S)
                if ready:
                    for event in device.read():
                        yield event.type, event.code, event.value, event.sec + event.usec / 1e6
        except OSError as err:
            raise DeviceUnavailable(f"the board input {self.label} went away: {err.strerror or err}") from err

    def close(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            with contextlib.suppress(OSError):
                device.close()


class BoardInput:
    """Pen and touch contacts from one source, read in a thread this object owns; retried when the device goes."""

    def __init__(self, source: EventSource, mapping: Mapping | None = None, retry_s: float = RETRY_S) -> None:
        self.source = source
        self.mapping = mapping or Mapping()
        self.retry_s = retry_s
        self.error = ""
        self.connected = False
        self.contacts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_contact: Callable[[Contact], None]) -> None:
        """Start the reader thread; `on_contact` is called from it for every contact."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(on_contact,), name="board-input", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the reader thread and let go of the device (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        self.source.close()

    def _run(self, on_contact: Callable[[Contact], None]) -> None:
        while not self._stop.is_set():
            try:
                self._read_once(on_contact)
                if not self._stop.is_set() and isinstance(self.source, ReplaySource):
                    return  # a recording played once has ended
            except DeviceUnavailable as err:
                self.error, self.connected = str(err), False
                log.warning("%s; trying again in %.0f s", err, self.retry_s)
            finally:
                self.source.close()
            self._stop.wait(self.retry_s)

    def _read_once(self, on_contact: Callable[[Contact], None]) -> None:
        parser = EvdevParser(self.source.open(), self.mapping)
        self.error, self.connected = "", True
        try:
            for event in self.source.read(self._stop):
                for contact in parser.feed(*event):
                    self.contacts += 1
                    on_contact(contact)
        finally:
            for contact in parser.lift_all(time.monotonic()):  # a device that went mid-stroke ends its strokes
                on_contact(contact)


def open_board_input(source: str, device: str, mapping: Mapping, loop: bool = True) -> BoardInput | None:
    """The configured board input (`none`: None); DeviceSpecError for a bad spec or recording."""
    if source == "none":
        return None
    if source == "synthetic":
        return BoardInput(ReplaySource(synthetic_writing(), loop=loop, label="synthetic writing"), mapping)
    if source == "replay":
        return BoardInput(ReplaySource(load_recording(Path(device)), loop=loop, label=device), mapping)
    if source == "evdev":
        return BoardInput(EvdevSource(device), mapping)
    raise DeviceSpecError(f"unknown board input {source!r}: none, evdev, replay or synthetic")
