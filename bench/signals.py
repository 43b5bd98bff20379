#!/usr/bin/env python3
"""Signal checks benchmark: CPU per second of the checks against CPU per second of the shared encoders.

The checks: `SignalChecks.tick()` four times a second on a live 1280x720 camera (synthetic, with
sensor-like noise so nothing is "frozen") and a 48 kHz microphone, measured with the calling
thread's CPU clock (the sources' own threads are not counted: they run with or without checks).
The baseline: the demo's video layers (H.264 720p30, 360p15, 180p10) and Opus encoding the same
kind of pictures and sound for one second, measured with the process's CPU clock (x264 has
threads of its own; nothing else runs then) in the same run.

    python bench/signals.py [--looks 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.audio import FRAME_SAMPLES, AudioFrame, SyntheticAudioSource  # noqa: E402
from drivers.camera import CapturingVideoSource, VideoFrame  # noqa: E402
from edge.core.config import BoxConfig  # noqa: E402
from edge.core.events import EventBus  # noqa: E402
from edge.media.capture import CameraComponent, MicrophoneComponent  # noqa: E402
from edge.media.encoders import AudioEncoder, VideoLayer, VideoLayerEncoder  # noqa: E402
from edge.media.signals import PERIOD_S, SignalChecks  # noqa: E402
from edge.services import Services  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 30
LAYERS = (
    VideoLayer("high", 1280, 720, 30, 1500),
    VideoLayer("low", 640, 360, 15, 350),
    VideoLayer("lowest", 320, 180, 10, 100),
)


class NoisyCamera(CapturingVideoSource):
    """A 720p camera: a fixed scene under fresh sensor noise, 30 frames a second."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        super().__init__("bench", WIDTH, HEIGHT, FPS)
        self._frames = frames
        self._n = 0

    def _open(self) -> None:
        pass

    def _grab(self) -> tuple[np.ndarray, float]:
        self._stopping.wait(1.0 / FPS)
        self._n += 1
        return self._frames[self._n % len(self._frames)], time.monotonic()


def noisy_frames(count: int) -> list[np.ndarray]:
    """I420 720p frames of a gradient scene with +-3 levels of noise each."""
    rng = np.random.default_rng(1)
    base = np.empty((HEIGHT * 3 // 2, WIDTH), dtype=np.int16)
    base[:HEIGHT] = np.tile(np.linspace(40, 200, WIDTH, dtype=np.int16), (HEIGHT, 1))
    base[HEIGHT:] = 128
    return [np.clip(base + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def checks_cpu_per_second(looks: int) -> float:
    """CPU seconds the checks take per second of running (four looks a second)."""
    config = BoxConfig()
    services = Services(config, EventBus())
    camera = CameraComponent(services.bus, config.cameras[0])
    mic = MicrophoneComponent(services.bus, services.mute, config.microphones[0])
    camera.source = NoisyCamera(noisy_frames(8))
    mic.source = SyntheticAudioSource("room")
    camera.source.start()
    mic.source.start()
    checks = SignalChecks(services.alarms, services.mute, camera, mic, clock=services.clock.monotonic)
    try:
        while camera.source.latest() is None or mic.source.latest() is None:
            time.sleep(0.01)
        asyncio.run(checks.start())
        spent = 0.0
        for _ in range(looks):
            time.sleep(PERIOD_S / 4)  # new frames and sound arrive between looks, as in the daemon
            began = time.thread_time()
            checks.tick()
            spent += time.thread_time() - began
    finally:
        camera.source.stop()
        mic.source.stop()
    return spent / looks / PERIOD_S


def encoders_cpu_per_second() -> float:
    """CPU seconds the shared encoders take per second of lesson (every layer at its rate, plus Opus)."""
    frames = noisy_frames(30)
    total = 0.0
    for layer in LAYERS:
        encoder = VideoLayerEncoder(layer, lambda: None, lambda packet: None, 0.0)
        encoder._codec = encoder._open_codec()
        for i in range(layer.fps):
            frame = VideoFrame(frames[i % len(frames)], WIDTH, HEIGHT, i + 1, i / layer.fps)
            began = time.process_time()  # the process's clock: x264 encodes in threads of its own
            encoder._encode(frame)
            total += time.process_time() - began
    audio = AudioEncoder(lambda: None, lambda packet: None, 0.0)
    tone = np.round(3000 * np.sin(np.arange(FRAME_SAMPLES) / 10)).astype(np.int16).reshape(-1, 1)
    for i in range(50):
        began = time.process_time()
        audio._encode(AudioFrame(tone, 48000, 1, i + 1, i * FRAME_SAMPLES / 48000))
        total += time.process_time() - began
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--looks", type=int, default=200)
    args = parser.parse_args()
    encoders = encoders_cpu_per_second()
    checks = checks_cpu_per_second(args.looks)
    print(f"shared encoders (720p30 + 360p15 + 180p10 + Opus): {encoders * 1000:.1f} ms CPU per second of lesson")
    print(f"signal checks (4 looks/s, 720p camera + mic):      {checks * 1000:.2f} ms CPU per second")
    print(f"checks / encoders: {checks / encoders * 100:.2f} %")


if __name__ == "__main__":
    main()
