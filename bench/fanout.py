#!/usr/bin/env python3
"""Fan-out benchmark: sender CPU and delivered fps per viewer as viewers are added.

Encode-once (the box: `classbox demo`, WHEP, shared encoders, passthrough senders) against aiortc's
default per-viewer encoding of the same synthetic 720p30 camera, in the same run. Receivers run in
another process and count RTP frames without decoding. Target: 60 viewers at 720p30 on 2 cores,
every viewer >= 28 fps.

    python bench/fanout.py [--viewers 1,5,10,20,40,60] [--baseline-viewers 1,5,10] [--seconds 8]
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
from _webrtc import classbox, count_without_decoding, cpu_seconds, join_all, per_viewer_sender, serve_per_viewer

SCRIPT = Path(__file__).resolve()


async def receive(url: str, n: int, seconds: float, settle: float) -> None:
    """Join `n` players, wait `settle` s, count frames for `seconds`, print JSON, leave."""
    counts = count_without_decoding()
    base = url.split("/whep")[0]
    async with aiohttp.ClientSession() as session:
        players = await join_all(url, n, session)
        print("joined", flush=True)
        await asyncio.sleep(settle)
        before = {k: list(v) for k, v in counts.items()}
        print("window-start", flush=True)
        began = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - began
        after = {k: list(v) for k, v in counts.items()}
        print("window-end", flush=True)
        fps, kbps, audio = [], [], []
        for player in players:
            v, a = id(player.video_receiver), id(player.audio_receiver)
            v0, v1 = before.get(v, [0, 0, 0]), after.get(v, [0, 0, 0])
            a0, a1 = before.get(a, [0, 0, 0]), after.get(a, [0, 0, 0])
            fps.append((v1[1] - v0[1]) / elapsed)
            kbps.append((v1[2] - v0[2]) * 8 / 1000 / elapsed)
            audio.append((a1[0] - a0[0]) / elapsed)
        print(json.dumps({"fps": fps, "kbps": kbps, "audio_pps": audio}), flush=True)
        await asyncio.gather(*(p.leave(session, base) for p in players))


def measure(sender: subprocess.Popen[bytes], url: str, n: int, seconds: float, settle: float) -> dict[str, Any]:
    """Run a receiver process for `n` viewers; sample the sender's CPU over the counting window."""
    if n == 0:
        time.sleep(settle)
        c0, t0 = cpu_seconds(sender.pid), time.monotonic()
        time.sleep(seconds)
        return {"cpu": (cpu_seconds(sender.pid) - c0) / (time.monotonic() - t0), "fps": [], "kbps": [], "audio_pps": []}
    argv = [sys.executable, str(SCRIPT), "receive", url, str(n), str(seconds), str(settle)]
    receiver = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    c0 = t0 = 0.0
    result: dict[str, Any] = {}
    for line in receiver.stdout:
        if line.startswith("window-start"):
            c0, t0 = cpu_seconds(sender.pid), time.monotonic()
        elif line.startswith("window-end"):
            result["cpu"] = (cpu_seconds(sender.pid) - c0) / (time.monotonic() - t0)
        elif line.startswith("{"):
            result.update(json.loads(line))
    receiver.wait(60)
    if "fps" not in result:
        raise RuntimeError(f"the receiver for {n} viewers failed (exit {receiver.returncode})")
    return result


def row(mode: str, n: int, r: dict[str, Any]) -> str:
    fps = r["fps"]
    if not fps:
        return f"{mode:<11} {n:>4} {r['cpu'] * 100:>8.1f}% {'-':>8} {'-':>8} {'-':>8} {'-':>9}"
    return (
        f"{mode:<11} {n:>4} {r['cpu'] * 100:>8.1f}% {min(fps):>8.1f} {statistics.median(fps):>8.1f}"
        f" {sum(f >= 28 for f in fps):>4}/{len(fps):<3} {statistics.median(r['kbps']):>9.0f}"
    )


def run(viewers: list[int], baseline: list[int], seconds: float, settle: float) -> None:
    """Both modes, every viewer count; prints a table."""
    print(f"sender: synthetic 1280x720 @ 30 fps + 48 kHz tone; {seconds:.0f} s per step; CPU = % of one core")
    print(f"{'mode':<11} {'N':>4} {'senderCPU':>9} {'minFPS':>8} {'medFPS':>8} {'>=28fps':>8} {'kbps/view':>9}")
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        results: dict[str, dict[int, dict[str, Any]]] = {"encode-once": {}, "per-viewer": {}}
        with classbox(Path(tmp) / "box.log") as (proc, url):
            for n in [0, *viewers]:
                results["encode-once"][n] = r = measure(proc, url, n, seconds, settle)
                print(row("encode-once", n, r), flush=True)
        with per_viewer_sender(SCRIPT, Path(tmp) / "baseline.log") as (proc, url):
            for n in [0, *baseline]:
                results["per-viewer"][n] = r = measure(proc, url, n, seconds, settle)
                print(row("per-viewer", n, r), flush=True)
        summary(results)


def summary(results: dict[str, dict[int, dict[str, Any]]]) -> None:
    once, per = results["encode-once"], results["per-viewer"]
    idle = once[0]["cpu"]
    for n in sorted(once):
        if n:
            print(
                f"encode-once: {n} viewers cost {(once[n]['cpu'] - idle) / n * 100:.2f}% of a core each above encoding"
            )
    for n in sorted(per):
        if n and n in once:
            ratio = (per[n]["cpu"] / once[n]["cpu"]) if once[n]["cpu"] else float("nan")
            print(f"at {n} viewers per-viewer encoding uses {ratio:.1f}x the sender CPU of encode-once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    rec = sub.add_parser("receive")
    rec.add_argument("url")
    rec.add_argument("n", type=int)
    rec.add_argument("seconds", type=float)
    rec.add_argument("settle", type=float)
    serve = sub.add_parser("serve-per-viewer")
    serve.add_argument("port", type=int)
    parser.add_argument("--viewers", default="1,5,10,20,40,60")
    parser.add_argument("--baseline-viewers", default="1,5,10")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    if args.command == "receive":
        asyncio.run(receive(args.url, args.n, args.seconds, args.settle))
    elif args.command == "serve-per-viewer":
        asyncio.run(serve_per_viewer(args.port))
    else:
        counts = [int(x) for x in args.viewers.split(",") if x]
        baseline = [int(x) for x in args.baseline_viewers.split(",") if x]
        run(counts, baseline, args.seconds, args.settle)


if __name__ == "__main__":
    main()
