#!/usr/bin/env python3
"""Glass-to-glass latency at 720p on loopback: the synthetic camera's burned-in clock -> decoded frame.

The box (`classbox demo`: capture, shared encoder, fan-out, WHEP, passthrough sender) against
aiortc's default per-viewer encoding of the same camera, measured in the same run by the same
aiortc receiver (another process, decoding). Target: p95 under 150 ms.

    python bench/latency.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _webrtc import Player, classbox, per_viewer_sender

SCRIPT = Path(__file__).resolve()


async def receive(url: str, seconds: float, settle: float) -> None:
    """Decode frames for `seconds`; print the latencies (ms) read from the burned-in clock as JSON."""
    from drivers.camera import read_burned_clock

    async with aiohttp.ClientSession() as session:
        player = Player()
        asked = time.monotonic()
        await player.join(session, url)
        track = player.video_receiver.track
        await track.recv()
        first_picture_s = time.monotonic() - asked
        latencies: list[float] = []
        unreadable = 0
        began = time.monotonic()
        while time.monotonic() - began < settle + seconds:
            frame = await track.recv()
            arrived = time.monotonic()  # the burned-in clock is the monotonic media clock
            if time.monotonic() - began < settle:
                continue
            clock = read_burned_clock(frame.to_ndarray(format="yuv420p"))
            if clock is None:
                unreadable += 1
            else:
                latencies.append((arrived - clock) * 1000)
        size = [frame.width, frame.height]
        print(json.dumps({"latencies": latencies, "unreadable": unreadable, "size": size, "first": first_picture_s}))
        await player.leave(session, url.split("/whep")[0])


def measure(url: str, seconds: float, settle: float) -> dict[str, Any]:
    argv = [sys.executable, str(SCRIPT), "receive", url, str(seconds), str(settle)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + settle + 60, check=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def line(name: str, r: dict[str, Any]) -> str:
    values = sorted(r["latencies"])
    if len(values) < 2:
        return f"{name:<12} no readable frames ({r['unreadable']} unreadable)"
    p50 = statistics.median(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    size = "x".join(map(str, r["size"]))
    return (
        f"{name:<12} {size:>9} frames={len(values):>4} unreadable={r['unreadable']:>3} "
        f"p50={p50:6.1f} ms  p95={p95:6.1f} ms  max={values[-1]:6.1f} ms  join->first picture {r['first']:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    rec = sub.add_parser("receive")
    rec.add_argument("url")
    rec.add_argument("seconds", type=float)
    rec.add_argument("settle", type=float)
    sub.add_parser("serve-per-viewer").add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=2.0)
    args = parser.parse_args()
    if args.command == "receive":
        asyncio.run(receive(args.url, args.seconds, args.settle))
        return
    if args.command == "serve-per-viewer":
        from _webrtc import serve_per_viewer

        asyncio.run(serve_per_viewer(args.port))
        return
    print("glass-to-glass: burned-in capture clock -> frame decoded by an aiortc receiver (loopback, 720p30)")
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        with classbox(Path(tmp) / "box.log") as (_, url):
            print(line("encode-once", measure(url, args.seconds, args.settle)), flush=True)
        with per_viewer_sender(SCRIPT, Path(tmp) / "baseline.log") as (_, url):
            print(line("per-viewer", measure(url, args.seconds, args.settle)), flush=True)


if __name__ == "__main__":
    main()
