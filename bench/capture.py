#!/usr/bin/env python3
"""Capture benchmark: CPU per delivered frame at 1280x720 30 fps, OpenCV (file) and synthetic paths.

Each path is measured against a baseline taken in the same run on the same machine:
- OpenCV: the driver (decode + the one BGR->I420 conversion + threads + latest-frame hand-off)
  against a bare `cv2.VideoCapture.read()` loop on the same clip (decode only);
- synthetic: the driver (pattern + burned-in clock and text + hand-off) against one plain
  memcpy of an I420 frame (the least any producer must do).
Copies: full-frame conversions per delivered frame (aim: exactly one), BGR buffers OpenCV had to
allocate (aim: one, reused), and whether the consumer got the capture thread's array itself.

Encoders: process CPU of the demo's video layers encoding one synthetic 720p30 capture, with and
without the lowest layer (320x180 at 10 fps), in alternating runs of the same process.

    python bench/capture.py [--seconds 4] [--encoder-seconds 6]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.camera import CapturingVideoSource, OpenCVVideoSource, SyntheticVideoSource, VideoDevice  # noqa: E402
from edge.core.config import BoxConfig, VideoLayerConfig  # noqa: E402
from edge.media.encoders import VideoLayer, VideoLayerEncoder  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 30


def make_clip(folder: Path, seconds: int) -> Path:
    """A 720p30 H.264 clip with camera-like noise."""
    path = folder / "clip720.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}",
         "-vf", "noise=alls=12:allf=t", "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", "30",
         "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def consume(source: CapturingVideoSource, seconds: float) -> tuple[float, int, bool]:
    """Run a consumer (like the encoder) for `seconds`: (CPU s of the whole process, frames got, zero-copy?)."""
    source.start()
    first = source.wait_newer(0, 10.0)
    assert first is not None, "no frame"
    got, index, shared = 0, first.index, True
    cpu0, end = time.process_time(), time.monotonic() + seconds
    while time.monotonic() < end:
        frame = source.wait_newer(index, 1.0)
        if frame is None:
            continue
        shared = shared and frame.yuv is source.latest().yuv and frame.yuv.flags.owndata  # type: ignore[union-attr]
        got += frame.index - index
        index = frame.index
    cpu = time.process_time() - cpu0
    source.stop()
    return cpu, got, shared


def decode_only(clip: Path, frames: int) -> float:
    """CPU s per frame of a bare OpenCV read loop (no conversion, no threads): the OpenCV baseline."""
    cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    ok, buffer = cap.read()
    cpu0, done = time.process_time(), 0
    while done < frames:
        ok, buffer = cap.read(buffer)
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        done += 1
    cpu = time.process_time() - cpu0
    cap.release()
    return cpu / frames


def convert_only(clip: Path, frames: int) -> float:
    """CPU s per frame of the BGR->I420 conversion alone."""
    cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    _, bgr = cap.read()
    cap.release()
    cpu0 = time.process_time()
    for _ in range(frames):
        cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    return (time.process_time() - cpu0) / frames


def memcpy_only(frames: int) -> float:
    """CPU s per frame of copying one I420 720p frame into a new array."""
    src = np.random.default_rng(0).integers(0, 255, (HEIGHT * 3 // 2, WIDTH), dtype=np.uint8)
    cpu0 = time.process_time()
    for _ in range(frames):
        src.copy()
    return (time.process_time() - cpu0) / frames


def demo_layers() -> list[VideoLayer]:
    """The default config's video layers, best first."""
    stream = BoxConfig().stream
    configured: list[tuple[str, VideoLayerConfig]] = [
        ("high", stream.high),
        ("low", stream.low),
        ("lowest", stream.lowest),
    ]
    return [VideoLayer(name, c.width, c.height, c.fps, c.kbps) for name, c in configured]


def encode_cpu(layers: list[VideoLayer], seconds: float) -> tuple[float, dict[str, float]]:
    """(process CPU as a share of one core, fps per layer) while `layers` encode one synthetic 720p30 camera."""
    camera = SyntheticVideoSource("bench", WIDTH, HEIGHT, FPS)
    encoders = [VideoLayerEncoder(layer, lambda: camera, lambda packet: None, time.monotonic()) for layer in layers]
    camera.start()
    for encoder in encoders:
        encoder.start()
    time.sleep(1.0)  # codecs open, first keyframes
    cpu0, t0, frames0 = time.process_time(), time.monotonic(), [e.frames for e in encoders]
    time.sleep(seconds)
    cpu, elapsed = time.process_time() - cpu0, time.monotonic() - t0
    rates = {e.layer.name: (e.frames - f0) / elapsed for e, f0 in zip(encoders, frames0, strict=True)}
    for encoder in encoders:
        encoder.stop()
    camera.stop()
    return cpu / elapsed, rates


def encoders_section(seconds: float, rounds: int = 3) -> None:
    """The lowest layer's CPU cost: with and without it, alternating so that the machine's load hits both alike."""
    layers = demo_layers()
    two, three = layers[:2], layers
    with_cpu, without_cpu = [], []
    rates: dict[str, float] = {}
    for _ in range(rounds):
        cpu, _rates = encode_cpu(two, seconds)
        without_cpu.append(cpu)
        cpu, rates = encode_cpu(three, seconds)
        with_cpu.append(cpu)
    without, with_ = sorted(without_cpu)[rounds // 2], sorted(with_cpu)[rounds // 2]
    print(f"\nencoders (camera + encoders, one process, median of {rounds} alternating runs of {seconds:g} s)")
    print(f"  baseline high + low:                    {without * 100:5.1f}% of a core")
    print(
        f"  high + low + lowest:                    {with_ * 100:5.1f}% of a core  "
        f"({', '.join(f'{n} {r:.1f} fps' for n, r in rates.items())})"
    )
    print(
        f"  the lowest layer costs:                 {(with_ - without) * 100:5.1f}% of a core "
        f"({(with_ - without) / without * 100:+.1f}% of the baseline)"
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--encoder-seconds", type=float, default=6.0)
    parser.add_argument("--only-encoders", action="store_true", help="only the encoders section")
    args = parser.parse_args()
    if args.only_encoders:
        encoders_section(args.encoder_seconds)
        return
    frames = int(args.seconds * FPS)
    print(
        f"capture benchmark: {WIDTH}x{HEIGHT} {FPS} fps, {args.seconds:g} s per path, 2 shared cores, "
        "CPU = process CPU time / frames delivered"
    )
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp), 3)
        base_decode = decode_only(clip, frames)
        base_convert = convert_only(clip, frames)
        source = OpenCVVideoSource("bench", VideoDevice("file", str(clip)), WIDTH, HEIGHT, FPS)
        cpu, got, shared = consume(source, args.seconds)
        per = cpu / max(got, 1)
        print("\nOpenCV (file, paced to 30 fps)")
        print(f"  baseline decode only (bare read loop):  {ms(base_decode)} CPU/frame")
        print(f"  baseline BGR->I420 conversion alone:    {ms(base_convert)} CPU/frame")
        print(
            f"  driver, whole process:                  {ms(per)} CPU/frame  ({got} frames, "
            f"{got / args.seconds:.1f} fps, {cpu / args.seconds * 100:.0f}% of a core)"
        )
        print(f"  driver / (decode + conversion):         {per / (base_decode + base_convert):.2f}x")
        print(
            f"  conversions per delivered frame:        {source.conversions / max(source.stats().delivered, 1):.2f}"
            "  (aim: 1)"
        )
        print(f"  BGR buffers allocated by OpenCV:        {source.decode_buffers}  (aim: 1, then reused)")
        print(f"  consumer got the capture thread's array: {'yes (0 copies in the hand-off)' if shared else 'NO'}")

        base_copy = memcpy_only(frames)
        synthetic = SyntheticVideoSource("bench", WIDTH, HEIGHT, FPS)
        cpu, got, shared = consume(synthetic, args.seconds)
        per = cpu / max(got, 1)
        print("\nsynthetic (pattern + burned-in clock and counter)")
        print(f"  baseline one I420 frame copy:           {ms(base_copy)} CPU/frame")
        print(
            f"  driver, whole process:                  {ms(per)} CPU/frame  ({got} frames, "
            f"{got / args.seconds:.1f} fps, {cpu / args.seconds * 100:.0f}% of a core)"
        )
        print(f"  driver / one frame copy:                {per / base_copy:.2f}x")
        print(f"  consumer got the capture thread's array: {'yes (0 copies in the hand-off)' if shared else 'NO'}")
    encoders_section(args.encoder_seconds)


if __name__ == "__main__":
    main()
