"""Writes the board's evdev fixtures: a pen tablet and a multitouch frame, in the kernel's event order.

These machines have no /dev/uinput, so the streams are written here event by event the way the
kernel's drivers emit them (wacom: proximity, MSC_SERIAL, ABS_DISTANCE, tilt, BTN_TOUCH with
pressure, the eraser end as BTN_TOOL_RUBBER; hid-multitouch: protocol B slots, single-touch
emulation axes, BTN_TOOL_DOUBLETAP, MSC_TIMESTAMP, one SYN_DROPPED) and kept as raw
`struct input_event` bytes plus an evemu-like JSON description. Run: `python tests/recorded/make_board.py`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from evdev import ecodes as e

from drivers.board import DeviceInfo, encode_events

HERE = Path(__file__).parent
T0 = 1764633600.0  # the recordings' wall clock (evdev timestamps are CLOCK_REALTIME by default)
Ev = tuple[int, int, int, float]

PEN = DeviceInfo(
    "Wacom One by Wacom M Pen",
    {e.ABS_X: (0, 21600), e.ABS_Y: (0, 13500), e.ABS_PRESSURE: (0, 2047), e.ABS_DISTANCE: (0, 63),
     e.ABS_TILT_X: (-64, 63), e.ABS_TILT_Y: (-64, 63)},
)  # fmt: skip
TOUCH = DeviceInfo(
    "ILITEK ILITEK-TP",
    {e.ABS_X: (0, 16383), e.ABS_Y: (0, 9599), e.ABS_MT_SLOT: (0, 9), e.ABS_MT_POSITION_X: (0, 16383),
     e.ABS_MT_POSITION_Y: (0, 9599), e.ABS_MT_TRACKING_ID: (0, 65535)},
)  # fmt: skip


def syn(t: float) -> Ev:
    return (e.EV_SYN, e.SYN_REPORT, 0, t)


def pen_stroke(out: list[Ev], t: float, tool: int, path: list[tuple[float, float, float]], serial: int) -> float:
    """Hover in, touch, draw `path` (x, y, pressure in 0..1) at 133 Hz, lift, leave."""
    x, y, _ = path[0]
    out += [(e.EV_ABS, e.ABS_X, int(x * 21600), t), (e.EV_ABS, e.ABS_Y, int(y * 13500), t)]
    out += [(e.EV_ABS, e.ABS_DISTANCE, 30, t), (e.EV_KEY, tool, 1, t), (e.EV_MSC, e.MSC_SERIAL, serial, t), syn(t)]
    for i, (x, y, p) in enumerate(path):
        t += 0.0075
        out += [(e.EV_ABS, e.ABS_X, int(x * 21600), t), (e.EV_ABS, e.ABS_Y, int(y * 13500), t)]
        out += [(e.EV_ABS, e.ABS_PRESSURE, int(p * 2047), t), (e.EV_ABS, e.ABS_TILT_X, 12 - i % 3, t)]
        if i == 0:
            out += [(e.EV_ABS, e.ABS_DISTANCE, 0, t), (e.EV_KEY, e.BTN_TOUCH, 1, t)]
        out += [(e.EV_MSC, e.MSC_SERIAL, serial, t), syn(t)]
    t += 0.0075
    out += [(e.EV_ABS, e.ABS_PRESSURE, 0, t), (e.EV_KEY, e.BTN_TOUCH, 0, t), (e.EV_ABS, e.ABS_DISTANCE, 12, t),
            (e.EV_MSC, e.MSC_SERIAL, serial, t), syn(t)]  # fmt: skip
    t += 0.03
    out += [(e.EV_ABS, e.ABS_DISTANCE, 0, t), (e.EV_KEY, tool, 0, t), (e.EV_MSC, e.MSC_SERIAL, 0, t), syn(t)]
    return t + 0.25


def pen_recording() -> list[Ev]:
    """Three pen strokes (a wave, a loop, a line) and an eraser stroke."""
    out: list[Ev] = []
    wave = [(0.1 + i * 0.004, 0.3 + 0.05 * math.sin(i / 8), 0.3 + 0.4 * i / 150) for i in range(150)]
    loop = [(0.5 + 0.1 * math.cos(i / 20), 0.5 + 0.1 * math.sin(i / 20), 0.6) for i in range(126)]
    line = [(0.1 + i * 0.008, 0.8, 0.5) for i in range(100)]
    rub = [(0.2 + i * 0.003, 0.31, 0.8) for i in range(60)]
    t = T0
    for tool, path, serial in ((e.BTN_TOOL_PEN, wave, 0x2B6), (e.BTN_TOOL_PEN, loop, 0x2B6),
                               (e.BTN_TOOL_PEN, line, 0x2B6), (e.BTN_TOOL_RUBBER, rub, 0x2B6)):  # fmt: skip
        t = pen_stroke(out, t, tool, path, serial)
    return out


def touch_recording() -> list[Ev]:
    """One finger draws, a second joins and both move, the first lifts, then a SYN_DROPPED mid-stroke."""
    out: list[Ev] = []
    t = T0
    ts = 0
    sx = 16383
    sy = 9599

    def frame(events: list[Ev]) -> None:
        nonlocal t, ts
        t += 0.008
        ts += 8000
        out.extend((kind, code, value, t) for kind, code, value, _ in events)
        out.extend([(e.EV_MSC, e.MSC_TIMESTAMP, ts, t), syn(t)])

    frame([(e.EV_ABS, e.ABS_MT_TRACKING_ID, 101, 0), (e.EV_ABS, e.ABS_MT_POSITION_X, int(0.2 * sx), 0),
           (e.EV_ABS, e.ABS_MT_POSITION_Y, int(0.2 * sy), 0), (e.EV_KEY, e.BTN_TOUCH, 1, 0),
           (e.EV_KEY, e.BTN_TOOL_FINGER, 1, 0), (e.EV_ABS, e.ABS_X, int(0.2 * sx), 0),
           (e.EV_ABS, e.ABS_Y, int(0.2 * sy), 0)])  # fmt: skip
    for i in range(1, 40):
        x = int((0.2 + i * 0.01) * sx)
        frame([(e.EV_ABS, e.ABS_MT_POSITION_X, x, 0), (e.EV_ABS, e.ABS_X, x, 0)])
    frame([(e.EV_ABS, e.ABS_MT_SLOT, 1, 0), (e.EV_ABS, e.ABS_MT_TRACKING_ID, 102, 0),
           (e.EV_ABS, e.ABS_MT_POSITION_X, int(0.7 * sx), 0), (e.EV_ABS, e.ABS_MT_POSITION_Y, int(0.7 * sy), 0),
           (e.EV_KEY, e.BTN_TOOL_FINGER, 0, 0), (e.EV_KEY, e.BTN_TOOL_DOUBLETAP, 1, 0)])  # fmt: skip
    for i in range(1, 30):
        frame([(e.EV_ABS, e.ABS_MT_SLOT, 0, 0), (e.EV_ABS, e.ABS_MT_POSITION_Y, int((0.2 + i * 0.01) * sy), 0),
               (e.EV_ABS, e.ABS_MT_SLOT, 1, 0), (e.EV_ABS, e.ABS_MT_POSITION_Y, int((0.7 - i * 0.01) * sy), 0),
               (e.EV_ABS, e.ABS_Y, int((0.2 + i * 0.01) * sy), 0)])  # fmt: skip
    frame([(e.EV_ABS, e.ABS_MT_SLOT, 0, 0), (e.EV_ABS, e.ABS_MT_TRACKING_ID, -1, 0),
           (e.EV_KEY, e.BTN_TOOL_DOUBLETAP, 0, 0), (e.EV_KEY, e.BTN_TOOL_FINGER, 1, 0)])  # fmt: skip
    for i in range(1, 20):
        frame([(e.EV_ABS, e.ABS_MT_SLOT, 1, 0), (e.EV_ABS, e.ABS_MT_POSITION_X, int((0.7 - i * 0.01) * sx), 0)])
    t += 0.008
    out += [(e.EV_ABS, e.ABS_MT_POSITION_X, int(0.4 * sx), t), (e.EV_SYN, e.SYN_DROPPED, 0, t)]  # buffer overrun
    frame([(e.EV_ABS, e.ABS_MT_POSITION_X, int(0.45 * sx), 0)])  # the frame that ends the drop
    frame([(e.EV_ABS, e.ABS_MT_SLOT, 2, 0), (e.EV_ABS, e.ABS_MT_TRACKING_ID, 103, 0),
           (e.EV_ABS, e.ABS_MT_POSITION_X, int(0.9 * sx), 0),
           (e.EV_ABS, e.ABS_MT_POSITION_Y, int(0.1 * sy), 0)])  # fmt: skip
    frame([(e.EV_ABS, e.ABS_MT_TRACKING_ID, -1, 0), (e.EV_KEY, e.BTN_TOUCH, 0, 0), (e.EV_KEY, e.BTN_TOOL_FINGER, 0, 0)])
    return out


def main() -> None:
    for name, info, events in (("board-pen", PEN, pen_recording()), ("board-touch", TOUCH, touch_recording())):
        (HERE / f"{name}.bin").write_bytes(encode_events(events))
        (HERE / f"{name}.json").write_text(json.dumps(info.to_json(), indent=1) + "\n")


if __name__ == "__main__":
    main()
