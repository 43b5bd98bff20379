#!/usr/bin/env python3
"""Ink benchmark: bits per second of the board's ink stream against the low video layer, in one run.

A minute of writing (the demo's synthetic pen writing, and the recorded pen fixture played in a
loop) goes through the same path as on the box: the evdev parser, the board input component,
the board's simplification and incremental sending, and the JSON each viewer's data channel
carries. The baseline is the low video layer's bitrate measured in the same run: a minute of
camera-like pictures (moving gradient and noise) encoded with the live encoder's x264 settings.
Prints both, with an estimate of the per-message transport overhead (SCTP, DTLS, UDP, IPv4).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # ahead of bench/ itself: bench/sync.py is not the sync package

from drivers.board import EvdevParser, Recording, load_recording, synthetic_writing  # noqa: E402
from edge.board.pen import BoardInputComponent  # noqa: E402
from edge.core.config import BoxConfig  # noqa: E402
from edge.core.events import EventBus  # noqa: E402
from edge.media.encoders import VideoLayer, VideoLayerEncoder  # noqa: E402
from edge.services import Services  # noqa: E402

SECONDS = 60.0
WIRE_OVERHEAD_BYTES = 12 + 16 + 29 + 8 + 20  # SCTP common header + DATA chunk, DTLS 1.2 AES-GCM record, UDP, IPv4
PEN_FIXTURE = REPO / "tests" / "recorded" / "board-pen.bin"


def looped(recording: Recording, seconds: float) -> list[tuple[int, int, int, float]]:
    """The recording's events played again and again for `seconds` (times made continuous)."""
    events = list(recording.events())
    start, span = events[0][3], events[-1][3] - events[0][3] + 0.5
    out: list[tuple[int, int, int, float]] = []
    offset = 0.0
    while offset < seconds:
        out += [(k, c, v, t - start + offset) for k, c, v, t in events if t - start + offset < seconds]
        offset += span
    return out


async def ink_bytes(events: list[tuple[int, int, int, float]], info: object) -> tuple[int, int, int, int]:
    """(messages, payload bytes, raw points, points sent) of the data channel's ink for these events."""
    with tempfile.TemporaryDirectory() as state:
        config = BoxConfig()
        config.box.state_dir = Path(state)
        bus = EventBus()
        services = Services(config, bus)
        component = BoardInputComponent(services.current_config, bus, services.board)
        parser = EvdevParser(info)  # type: ignore[arg-type]
        messages = payload = 0
        with bus.subscribe("board.", maxsize=1_000_000) as sub:
            for event in events:
                for contact in parser.feed(*event):
                    component.draw(contact)
            while not sub._queue.empty():
                item = sub._queue.get_nowait()
                text = json.dumps({**item.data, "type": item.topic, "at": item.at})  # what viewers are sent
                messages += 1
                payload += len(text.encode())
        return messages, payload, services.board.raw_points, services.board.sent_points


def low_layer_bytes(seconds: float) -> tuple[int, VideoLayer]:
    """Bytes the low layer's encoder makes of `seconds` of camera-like pictures."""
    low = BoxConfig().stream.low
    layer = VideoLayer("low", low.width, low.height, low.fps, low.kbps)
    codec = VideoLayerEncoder(layer, lambda: None, lambda *a: None, 0.0)._open_codec()
    rng = np.random.default_rng(7)
    ys, xs = np.mgrid[0 : layer.height, 0 : layer.width]
    total = 0
    for i in range(int(seconds * layer.fps)):
        luma = ((xs + ys + i * 4) % 256).astype(np.uint8)
        luma = np.clip(luma.astype(np.int16) + rng.integers(-12, 13, luma.shape), 0, 255).astype(np.uint8)
        chroma = np.full((layer.height // 2, layer.width), 128, np.uint8)
        picture = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
        picture.pts = i * (90_000 // layer.fps)
        total += sum(packet.size for packet in codec.encode(picture))
    total += sum(packet.size for packet in codec.encode(None))
    return total, layer


def main() -> None:
    video, layer = low_layer_bytes(SECONDS)
    video_bps = video * 8 / SECONDS
    print(f"low video layer {layer.width}x{layer.height}@{layer.fps} (target {layer.kbps} kbit/s): "
          f"{video_bps / 1000:.1f} kbit/s measured over {SECONDS:.0f} s")  # fmt: skip
    synthetic = synthetic_writing(SECONDS)
    pen = load_recording(PEN_FIXTURE)
    for name, events, info in (
        ("synthetic writing (demo)", list(synthetic.events()), synthetic.info),
        ("recorded pen fixture, looped", looped(pen, SECONDS), pen.info),
    ):
        messages, payload, raw, sent = asyncio.run(ink_bytes(events, info))
        bps = payload * 8 / SECONDS
        wire = (payload + messages * WIRE_OVERHEAD_BYTES) * 8 / SECONDS
        print(f"{name}: {raw} pen samples -> {sent} points sent in {messages} messages; "
              f"ink {bps / 1000:.2f} kbit/s payload, {wire / 1000:.2f} kbit/s on the wire; "
              f"ratio to the low layer 1/{video_bps / wire:.0f} (aim: 1/20 or less)")  # fmt: skip


if __name__ == "__main__":
    main()
