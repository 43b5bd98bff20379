#!/usr/bin/env python3
"""Soak: many lessons back to back on ONE `classbox demo` process, with viewers joining and leaving.

Each lesson runs a few seconds with a few real WHEP viewers (aiortc peers in this process): they
join one after another, some leave by DELETE mid-lesson, one closes its peer connection without a
word (a student closing the tab), the rest are ended by the lesson stop. After each lesson the
soak waits for its recording to be finalised and checks the MP4 (PyAV): H.264 and Opus, both about
the lesson's length and aligned with each other, audio that is not silent; and it asks the box's
health what it still holds of the lesson (viewers, fan-out subscriptions: there should be none).

The daemon's resident memory, open file descriptors and threads are sampled after the first
lesson (the same-run baseline), every `--every` lessons and after the last; the figure is their
growth over the run. A box that leaks a pipeline, a socket or a thread per lesson shows it here
long before a school does.

    python bench/soak.py [--lessons 200] [--viewers 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from _webrtc import Player, count_without_decoding, free_port, stop

REPO = Path(__file__).resolve().parent.parent

BOX_CONFIG = """
[web]
host = "127.0.0.1"
port = {port}
[[cameras]]
name = "teacher"
width = {width}
height = {height}
fps = {fps}
[stream]
keyframe_interval_s = 1.0
[stream.high]
width = {width}
height = {height}
fps = {fps}
kbps = 600
[stream.low]
width = {low_width}
height = {low_height}
fps = {low_fps}
kbps = 150
[recording]
segment_seconds = 2.0
[discovery]
enabled = false
"""

DURATION_SLACK_S = 0.5  # a track may differ from the lesson's span by the start/stop hooks and the last segment
AV_SLACK_S = 0.3  # audio and video of one recording: the same span, give or take a packet or two and the codec delay


# -- the daemon -----------------------------------------------------------------------------------


def _get_json(url: str, method: str = "GET", timeout: float = 30.0) -> dict[str, Any]:
    data = b"{}" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


@contextlib.contextmanager
def soak_box(work: Path, width: int, height: int, fps: int) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """`classbox demo` on a free loopback port; yields (process, base URL, state dir)."""
    port = free_port()
    config = work / "classbox.toml"
    low = {"low_width": max(160, width // 4 * 2), "low_height": max(120, height // 4 * 2), "low_fps": max(1, fps // 2)}
    config.write_text(BOX_CONFIG.format(port=port, width=width, height=height, fps=fps, **low))
    state = work / "state"
    argv = [sys.executable, "-m", "edge", "demo", "--config", str(config), "--state-dir", str(state)]
    argv += ["--port", str(port), "--host", "127.0.0.1"]
    with (work / "box.log").open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, proc)
            yield proc, base, state
        finally:
            stop(proc)


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the box exited with {proc.returncode}")
        with contextlib.suppress(OSError, ValueError):
            if _get_json(base + "/healthz", timeout=2)["status"] == "ok":
                return
        time.sleep(0.2)
    raise RuntimeError(f"the box was not healthy within {within} s")


@dataclass(frozen=True)
class Sample:
    """The daemon's footprint at one point of the run."""

    lesson: int
    rss_kb: int
    fds: int
    threads: int
    fd_kinds: dict[str, int]

    def line(self) -> str:
        kinds = " ".join(f"{k}={v}" for k, v in sorted(self.fd_kinds.items()))
        figures = f"RSS {self.rss_kb / 1024:7.1f} MB  fds {self.fds:>4}  threads {self.threads:>3}"
        return f"after lesson {self.lesson:>4}: {figures}  ({kinds})"


def sample(pid: int, lesson: int) -> Sample:
    """RSS, open fds (by kind) and threads of process `pid`."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    kinds: Counter[str] = Counter()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            kinds[_fd_kind(os.readlink(fd))] += 1
    rss = int(status["VmRSS"].split()[0])
    return Sample(lesson, rss, sum(kinds.values()), int(status["Threads"]), dict(kinds))


def _fd_kind(target: str) -> str:
    if target.startswith(("socket:", "pipe:")):
        return target.split(":", 1)[0]
    if target.startswith("anon_inode:"):
        return target.split(":", 1)[1].strip("[]")
    return "file"


# -- one lesson -----------------------------------------------------------------------------------


@dataclass
class LessonResult:
    """What one lesson gave: its span, what its viewers received, its recording's check."""

    index: int
    lesson_id: str
    duration_s: float = 0.0
    audio_dropped: int = 0  # frames the audio encoder dropped as a catch-up burst after a stall
    viewers_ok: int = 0
    viewer_problems: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # what the box still held once the lesson ended
    state: str = ""
    problems: list[str] = field(default_factory=list)


async def run_lesson(
    session: aiohttp.ClientSession,
    base: str,
    index: int,
    viewers: int,
    seconds: float,
    counts: dict[int, list[int]],
) -> LessonResult:
    """Start a lesson, let `viewers` join and leave over `seconds`, stop it."""
    async with session.post(base + "/api/lessons", json={"title": f"Soak {index}"}) as response:
        body = await response.json()
        if response.status != 201:
            raise RuntimeError(f"lesson {index} did not start: {response.status} {body}")
    result = LessonResult(index, body["id"])
    url = f"{base}/whep/{body['join_code']}"
    began = time.monotonic()
    tasks = [
        asyncio.create_task(_viewer(session, base, url, i, viewers, seconds, began, counts), name=f"soak:viewer:{i}")
        for i in range(viewers)
    ]
    await asyncio.sleep(seconds)
    async with session.get(base + "/healthz") as response:
        media = (await response.json())["components"].get("media", {})
        result.audio_dropped = int(media.get("audio_dropped_frames", 0))
    async with session.post(base + "/api/lessons/current/stop", json={}) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"lesson {index} did not stop: {response.status} {body}")
    result.duration_s = float(body["lesson"]["duration_s"])
    for i, outcome in enumerate(await asyncio.gather(*tasks, return_exceptions=True)):
        if outcome is True:
            result.viewers_ok += 1
        else:
            result.viewer_problems.append(f"viewer {i}: {outcome!r}")
    return result


async def _viewer(
    session: aiohttp.ClientSession,
    base: str,
    url: str,
    i: int,
    viewers: int,
    seconds: float,
    began: float,
    counts: dict[int, list[int]],
) -> bool | str:
    """Join at a staggered time, receive, leave the way viewer `i` leaves; True if media arrived."""
    await asyncio.sleep(max(0.0, began + i * seconds / (3 * viewers) - time.monotonic()))
    player = Player()
    try:
        await player.join(session, url)
        if i % 3 == 1:  # leaves mid-lesson by DELETE
            await asyncio.sleep(max(0.0, began + 2 * seconds / 3 - time.monotonic()))
        else:  # stays until the lesson ends (i % 3 == 2 then closes the tab without a DELETE)
            await asyncio.sleep(max(0.0, began + seconds + 0.5 - time.monotonic()))
        got = _received(player, counts)
        return True if got is None else got
    finally:
        if i % 3 == 2:
            await player.pc.close()
        else:
            await player.leave(session, base)
        counts.pop(player.video_ssrc, None)
        counts.pop(player.audio_ssrc, None)


def _received(player: Player, counts: dict[int, list[int]]) -> str | None:
    video = counts.get(player.video_ssrc, [0, 0, 0])
    audio = counts.get(player.audio_ssrc, [0, 0, 0])
    if video[1] < 2 or audio[0] < 5:
        return f"received {video[1]} video frames, {audio[0]} audio packets"
    return None


async def left_over(session: aiohttp.ClientSession, base: str) -> list[str]:
    """What the box still holds of a lesson that ended: viewers, fan-out subscriptions."""
    async with session.get(base + "/healthz") as response:
        components = (await response.json())["components"]
    held = {
        "viewers": components.get("stream", {}).get("viewers", 0),
        "fan-out subscriptions": components.get("media", {}).get("subscribers", 0),
    }
    return [f"{n} {what} left after the lesson ended" for what, n in held.items() if n]


# -- the recording --------------------------------------------------------------------------------


async def wait_finalised(session: aiohttp.ClientSession, base: str, lesson_id: str, within: float = 120.0) -> str:
    """The recording's state once it is no longer `recording` (or `missing` / `recording` on timeout)."""
    deadline = time.monotonic() + within
    state = "missing"
    while time.monotonic() < deadline:
        async with session.get(base + "/api/recordings") as response:
            body = await response.json()
        found = next((r for r in body["recordings"] if r["lesson_id"] == lesson_id), None)
        state = found["state"] if found else "missing"
        if state not in ("recording", "missing"):
            return str(state)
        await asyncio.sleep(0.1)
    return state


def check_mp4(path: Path, lesson_s: float) -> list[str]:
    """Problems of a finished recording: codecs, track lengths against the lesson, silent audio."""
    if not path.is_file():
        return ["no lesson.mp4"]
    problems: list[str] = []
    with av.open(str(path)) as container:
        kinds = {s.type: s.codec_context.name for s in container.streams}
        if kinds != {"video": "h264", "audio": "opus"}:
            problems.append(f"streams {kinds}")
        spans = _spans(container)
    with av.open(str(path)) as container:
        rms = _audio_rms(container)
    for kind, (first, last, packets) in spans.items():
        if packets == 0:
            problems.append(f"{kind}: no packets")
        elif abs((last - first) - lesson_s) > DURATION_SLACK_S:
            problems.append(f"{kind}: {last - first:.2f} s for a {lesson_s:.2f} s lesson")
    if all(n for _, _, n in spans.values()):
        (v0, v1, _), (a0, a1, _) = spans["video"], spans["audio"]
        if abs(v0 - a0) > AV_SLACK_S or abs(v1 - a1) > AV_SLACK_S:
            problems.append(f"audio {a0:.2f}-{a1:.2f} s against video {v0:.2f}-{v1:.2f} s")
    if rms < 100:
        problems.append(f"audio is silent (RMS {rms:.0f})")
    return problems


def _spans(container: Any) -> dict[str, tuple[float, float, int]]:
    spans: dict[str, tuple[float, float, int]] = {"video": (math.inf, -math.inf, 0), "audio": (math.inf, -math.inf, 0)}
    for packet in container.demux():
        if packet.pts is None or packet.stream.type not in spans:
            continue
        start = float(packet.pts * packet.time_base)
        end = start + float((packet.duration or 0) * packet.time_base)
        first, last, n = spans[packet.stream.type]
        spans[packet.stream.type] = (min(first, start), max(last, end), n + 1)
    return spans


def _audio_rms(container: Any) -> float:
    if not container.streams.audio:
        return 0.0
    total, count = 0.0, 0
    for frame in container.decode(audio=0):
        raw = frame.to_ndarray()
        pcm = raw.astype(np.float64) * (32768.0 if raw.dtype.kind == "f" else 1.0)
        total += float(np.sum(pcm**2))
        count += pcm.size
    return math.sqrt(total / count) if count else 0.0


# -- the run --------------------------------------------------------------------------------------


async def soak(proc: subprocess.Popen[bytes], base: str, state: Path, args: argparse.Namespace) -> None:
    """Run the lessons, sample the daemon, check each recording; print as it goes and a summary."""
    counts = count_without_decoding()
    samples: list[Sample] = []
    results: list[LessonResult] = []
    began = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        samples.append(sample(proc.pid, 0))
        print(samples[-1].line().replace("after lesson    0", "before lessons   "), flush=True)
        for index in range(1, args.lessons + 1):
            result = await run_lesson(session, base, index, args.viewers, args.seconds, counts)
            result.state = await wait_finalised(session, base, result.lesson_id)
            if result.state == "ready":
                mp4 = state / "recordings" / result.lesson_id / "lesson.mp4"
                result.problems = await asyncio.to_thread(check_mp4, mp4, result.duration_s)
            result.held = await left_over(session, base)
            results.append(result)
            if result.state != "ready" or result.problems or result.viewer_problems or result.held:
                print(
                    f"lesson {index}: {result.state}", result.problems, result.viewer_problems, result.held, flush=True
                )
            if index in (1, args.lessons) or index % args.every == 0:
                samples.append(sample(proc.pid, index))
                print(samples[-1].line(), f"[{time.monotonic() - began:.0f} s]", flush=True)
            if proc.poll() is not None:
                raise RuntimeError(f"the box exited with {proc.returncode} during lesson {index}")
    summary(samples, results)


def growth(before: Sample, after: Sample) -> str:
    """One line: how the footprint grew from one sample to a later one."""
    lessons = max(1, after.lesson - before.lesson)
    rss_mb = (after.rss_kb - before.rss_kb) / 1024
    return (
        f"growth from lesson {before.lesson} to {after.lesson}: RSS {rss_mb:+.1f} MB "
        f"({rss_mb * 1024 / lessons:+.1f} KB/lesson), fds {after.fds - before.fds:+d}, "
        f"threads {after.threads - before.threads:+d}"
    )


def summary(samples: list[Sample], results: list[LessonResult]) -> None:
    """The figures: footprint growth against the first lesson, recording states, viewers served."""
    first, middle, last = samples[1], samples[1 + (len(samples) - 2) // 2], samples[-1]
    print()
    print(f"baseline (after lesson {first.lesson}): {first.line().split(': ', 1)[1]}")
    print(f"end      (after lesson {last.lesson}): {last.line().split(': ', 1)[1]}")
    print(growth(first, last))
    if first.lesson < middle.lesson < last.lesson:  # a leak grows in both halves; warming up only in the first
        print(growth(middle, last))
    states = Counter(r.state for r in results)
    bad = [r for r in results if r.state != "ready" or r.problems]
    print("recordings by state:", ", ".join(f"{k}={v}" for k, v in sorted(states.items())))
    print(
        f"recordings checked (h264 + opus, tracks within {DURATION_SLACK_S} s of the lesson and {AV_SLACK_S} s of "
        f"each other, audible): "
        f"{sum(1 for r in results if r.state == 'ready' and not r.problems)} good, {len(bad)} bad"
    )
    for r in bad:
        print(f"  lesson {r.index} ({r.lesson_id[:8]}, {r.duration_s:.2f} s): {r.state} {'; '.join(r.problems)}")
    viewers = sum(r.viewers_ok for r in results)
    failed = [p for r in results for p in r.viewer_problems]
    print(f"viewers that received video and audio: {viewers} of {viewers + len(failed)}")
    for problem in failed[:20]:
        print("  ", problem)
    bursts = [r for r in results if r.audio_dropped]
    print(
        f"lessons whose microphone caught up after a stall (audio frames dropped to stay in sync): {len(bursts)}, "
        f"{sum(r.audio_dropped for r in bursts)} frames of 20 ms"
    )
    held = [r for r in results if r.held]
    print(f"lessons after which the box still held viewers or fan-out subscriptions: {len(held)}")
    for r in held[:20]:
        print(f"  lesson {r.index}: {'; '.join(r.held)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lessons", type=int, default=200)
    parser.add_argument("--viewers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each lesson")
    parser.add_argument("--every", type=int, default=25, help="sample the daemon every N lessons")
    parser.add_argument("--video", default="640x360@15", help="camera and high layer, WxH@FPS")
    parser.add_argument("--keep", type=Path, help="keep the box's state and log in this folder")
    args = parser.parse_args()
    size, fps = args.video.split("@")
    width, height = (int(v) for v in size.split("x"))
    print(
        f"soak: {args.lessons} lessons of {args.seconds:.1f} s, {args.viewers} viewers each, {args.video}, "
        "one `classbox demo` process"
    )
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            work = args.keep
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-soak-")))
        proc, base, state = stack.enter_context(soak_box(work, width, height, int(fps)))
        asyncio.run(soak(proc, base, state, args))


if __name__ == "__main__":
    main()
