#!/usr/bin/env python3
"""Recorder benchmark: CPU to record a lesson by remuxing the shared packets, against a second encode.

The recorder writes the live packets into fsynced MPEG-TS segments and joins them into one MP4
without re-encoding. The baseline, measured in the same run on the same frames, is what a
recorder with its own encoder would spend: encoding the 720p30 frames once more with the same
x264 settings the live encoder uses. Prints both CPU times and the ratio.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge.media.packets import AUDIO_TIME_BASE, VIDEO_TIME_BASE, EncodedPacket  # noqa: E402
from edge.recording.segments import SegmentWriter, closed_segments, join_segments  # noqa: E402

SECONDS, FPS, WIDTH, HEIGHT = 20, 30, 1280, 720


def cpu() -> float:
    """CPU seconds of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def frames() -> list[av.VideoFrame]:
    """Moving noise-and-gradient pictures, as a camera would give the encoder."""
    rng = np.random.default_rng(1)
    base = np.tile(np.linspace(0, 255, WIDTH, dtype=np.uint8), (HEIGHT, 1))
    pictures = []
    for i in range(SECONDS * FPS):
        luma = np.roll(base, i * 4, axis=1) ^ rng.integers(0, 24, (HEIGHT, WIDTH), dtype=np.uint8)
        yuv = np.concatenate([luma, np.full((HEIGHT // 2, WIDTH), 128, np.uint8)])
        picture = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        picture.pts, picture.time_base = i * 90_000 // FPS, VIDEO_TIME_BASE
        pictures.append(picture)
    return pictures


def encode(pictures: list[av.VideoFrame]) -> list[EncodedPacket]:
    """The live encoder's work (x264 ultrafast/zerolatency baseline, 2 s GOP)."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base, codec.framerate, codec.bit_rate = VIDEO_TIME_BASE, Fraction(FPS, 1), 1_500_000
    codec.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "forced-idr": "1",
        "x264-params": f"scenecut=0:keyint={2 * FPS}:min-keyint={2 * FPS}",
    }
    out = []
    for picture in [*pictures, None]:
        for packet in codec.encode(picture):
            out.append(
                EncodedPacket(
                    "high",
                    bytes(packet),
                    packet.pts,
                    VIDEO_TIME_BASE,
                    bool(packet.is_keyframe),
                    time.monotonic(),
                    90_000 // FPS,
                )
            )
    return out


def audio_packets() -> list[EncodedPacket]:
    """Opus packets, 20 ms each, for the same span."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format, codec.time_base = 48_000, "mono", "s16", AUDIO_TIME_BASE
    out = []
    for i in range(SECONDS * 50):
        pcm = (np.sin(np.arange(960) * 0.0576 + i) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48_000, i * 960, AUDIO_TIME_BASE
        for packet in codec.encode(frame):
            out.append(EncodedPacket("audio", bytes(packet), packet.pts, AUDIO_TIME_BASE, True, time.monotonic(), 960))
    return out


def record(packets: list[EncodedPacket], directory: Path) -> float:
    """The recorder's work: segments (fsynced) + the join to MP4; returns the MP4's duration."""
    writer = SegmentWriter(directory, 4.0, lambda segment: None)
    writer.start()
    for packet in packets:
        while writer._queue.full():  # the bench feeds faster than real time; wait like a live lesson would
            time.sleep(0.001)
        writer.put_packet(packet)
    writer.close()
    return join_segments(closed_segments(directory), directory / "lesson.mp4")


def main() -> None:
    pictures = frames()
    began = cpu()
    video = encode(pictures)
    encode_cpu = cpu() - began
    packets = sorted([*video, *audio_packets()], key=lambda p: float(p.pts * p.time_base))
    work = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    try:
        began, wall = cpu(), time.perf_counter()
        duration = record(packets, work)
        record_cpu, record_wall = cpu() - began, time.perf_counter() - wall
        size = (work / "lesson.mp4").stat().st_size
    finally:
        shutil.rmtree(work)
    print(f"lesson: {SECONDS} s of {WIDTH}x{HEIGHT}@{FPS} H.264 + Opus, joined MP4 {duration:.2f} s, {size} bytes")
    print(f"baseline (a second x264 encode of the same frames): {encode_cpu:.3f} CPU s")
    print(f"recorder (remux to fsynced segments + join to MP4):  {record_cpu:.3f} CPU s ({record_wall:.3f} s wall)")
    print(f"recorder / second encode: {record_cpu / encode_cpu:.3f}")


if __name__ == "__main__":
    main()
