#!/usr/bin/env python3
"""Fan-out benchmark: sender CPU and delivered fps per viewer as viewers are added.

Encode-once (the box: `classbox demo`, WHEP, shared encoders, passthrough senders) against aiortc's
default per-viewer encoding of the same synthetic 720p30 camera, in the same run. Receivers run in
other processes and count RTP frames at their UDP sockets without decrypting or decoding (the RTP
header is not encrypted; see `_webrtc.count_without_decoding`). Target: 60 viewers at 720p30 on 2 cores,
every viewer >= 28 fps. Viewers offer transport-cc as Chromium does (`BENCH_TRANSPORT_CC=0`: not).

    python bench/fanout.py [--viewers 1,5,10,20,40,60] [--baseline-viewers 1,5,10] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
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
        deadline = time.monotonic() + 30
        # aiortc offers no "all connected" event: poll.
        while time.monotonic() < deadline and any(p.pc.connectionState != "connected" for p in players):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        connected = sum(p.pc.connectionState == "connected" for p in players)
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
            v, a = player.video_ssrc, player.audio_ssrc
            v0, v1 = before.get(v, [0, 0, 0]), after.get(v, [0, 0, 0])
            a0, a1 = before.get(a, [0, 0, 0]), after.get(a, [0, 0, 0])
            fps.append((v1[1] - v0[1]) / elapsed)
            kbps.append((v1[2] - v0[2]) * 8 / 1000 / elapsed)
            audio.append((a1[0] - a0[0]) / elapsed)
        print(json.dumps({"fps": fps, "kbps": kbps, "audio_pps": audio, "connected": [connected]}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # stay until the orchestrator has read the box's figures
        await asyncio.gather(*(p.leave(session, base) for p in players))


PER_RECEIVER = 60  # viewers per receiver process


def box_stream(url: str) -> dict[str, Any] | None:
    """The box's `stream` health (viewers per layer, drops); None for the baseline sender."""
    if "/whep/" not in url:  # the baseline sender has no health report
        return None
    try:
        with urllib.request.urlopen(url.split("/whep/")[0] + "/healthz", timeout=20) as response:
            health = json.loads(response.read())
    except OSError:
        return None  # the box was too busy to answer in time
    stream: dict[str, Any] = health["components"]["stream"]
    return stream


def measure(sender: subprocess.Popen[bytes], url: str, n: int, seconds: float, settle: float) -> dict[str, Any]:
    """Receiver processes for `n` viewers; sample sender and receiver CPU over the counting window."""
    if n == 0:
        time.sleep(settle)
        c0, t0 = cpu_seconds(sender.pid), time.monotonic()
        time.sleep(seconds)
        cpu = (cpu_seconds(sender.pid) - c0) / (time.monotonic() - t0)
        return {"cpu": cpu, "rx_cpu": 0.0, "fps": [], "kbps": [], "audio_pps": [], "drops": 0, "connected": []}
    sizes = [min(PER_RECEIVER, n - i) for i in range(0, n, PER_RECEIVER)]
    receivers = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), "receive", url, str(k), str(seconds), str(settle)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in sizes
    ]
    outs = [iter(r.stdout) for r in receivers if r.stdout is not None]
    for out in outs:  # every receiver has joined and settled
        while not next(out).startswith("window-start"):
            pass
    c0, t0, s0 = cpu_seconds(sender.pid), time.monotonic(), box_stream(url)
    r0 = sum(cpu_seconds(r.pid) for r in receivers)
    result: dict[str, Any] = {"fps": [], "kbps": [], "audio_pps": [], "connected": []}
    for i, out in enumerate(outs):
        for line in out:
            if line.startswith("window-end") and i == 0:
                result["cpu"] = (cpu_seconds(sender.pid) - c0) / (time.monotonic() - t0)
                result["rx_cpu"] = (sum(cpu_seconds(r.pid) for r in receivers) - r0) / (time.monotonic() - t0)
                s1 = box_stream(url)
                result["stream"] = s1
                drops = (
                    None if s0 is None or s1 is None else s1["viewers_dropped_packets"] - s0["viewers_dropped_packets"]
                )
                result["drops"] = drops
            elif line.startswith("{"):
                for key, values in json.loads(line).items():
                    result[key] += values
                break  # the receiver now waits for "done" on its stdin
    for receiver in receivers:
        assert receiver.stdin is not None
        receiver.stdin.write("done\n")
        receiver.stdin.close()
        receiver.wait(60)
    if len(result["fps"]) != n:
        raise RuntimeError(f"the receivers for {n} viewers failed")
    return result


def row(mode: str, n: int, r: dict[str, Any]) -> str:
    fps = r["fps"]
    head = f"{mode:<11} {n:>4} {r['cpu'] * 100:>8.1f}% {r['rx_cpu'] * 100:>8.1f}%"
    if not fps:
        return head
    drops = "-" if r["drops"] is None else str(r["drops"])
    stream = r.get("stream")
    layers = f"{stream['viewers_high']}/{stream['viewers_low']}" if stream else "-"
    return (
        f"{head} {min(fps):>7.1f} {statistics.median(fps):>7.1f} {sum(f >= 28 for f in fps):>4}/{len(fps):<3}"
        f" {statistics.median(r['kbps']):>9.0f} {drops:>8} {sum(r['connected']):>5} {layers:>7}"
    )


def run(viewers: list[int], baseline: list[int], low_viewers: list[int], seconds: float, settle: float) -> None:
    """Both modes, every viewer count; prints a table."""
    print(f"sender: synthetic 1280x720 @ 30 fps + 48 kHz tone; {seconds:.0f} s per step; {os.cpu_count()} cores")
    print("CPU = % of one core over the counting window; rxCPU = all receiver processes; drops = packets the")
    print("box's fan-out dropped for viewers that fell behind (then resumed at a keyframe); conn = ICE+DTLS")
    print("connected before counting; hi/low = viewers per layer at the end (the box sheds to low when it lags)")
    head = f"{'mode':<11} {'N':>4} {'sndCPU':>9} {'rxCPU':>9} {'minFPS':>7} {'medFPS':>7} {'>=28fps':>8}"
    print(f"{head} {'kbps/view':>9} {'drops':>8} {'conn':>5} {'hi/low':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        results: dict[str, dict[int, dict[str, Any]]] = {"encode-once": {}, "per-viewer": {}}
        with classbox(Path(tmp) / "box.log") as (proc, url):
            for n in [0, *viewers]:
                results["encode-once"][n] = r = measure(proc, url, n, seconds, settle)
                print(row("encode-once", n, r), flush=True)
            for n in low_viewers:  # data saver: every viewer on the low layer (640x360 @ 15 fps)
                r = measure(proc, url + "?data_saver=1", n, seconds, settle)
                print(row("once-low", n, r), flush=True)
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
    parser.add_argument("--low-viewers", default="60", help="viewer counts on the low layer (data saver)")
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
        low = [int(x) for x in args.low_viewers.split(",") if x]
        run(counts, baseline, low, args.seconds, args.settle)


if __name__ == "__main__":
    main()
