"""A box without a battery clock: the wall clock steps mid-lesson under a real daemon (libfaketime).

Only the wall clock steps (`DONT_FAKE_MONOTONIC=1`), as when NTP answers after an offline boot:
the lesson lasts as long as it was live, the recording keeps every segment, a real aiortc viewer
keeps decoding, and health says the clock stepped.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from edge.core.config import BoxConfig, VideoLayerConfig, dump_config
from tests.helpers import DaemonProcess
from tests.stream_fixture import join, until

FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
SEGMENT_S = 2.0
BEFORE_STEP_S = 7.0
AFTER_STEP_S = 8.0
DAY = 86_400.0


def faketime_env(stamp: Path) -> dict[str, str]:
    """libfaketime reading its offset from `stamp` (re-read every second); the monotonic clock stays real."""
    if not FAKETIME.is_file():
        pytest.fail(f"{FAKETIME} is missing: apt-get install faketime (./bootstrap test does)")
    return {
        "LD_PRELOAD": str(FAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(stamp),
        "FAKETIME_CACHE_DURATION": "1",
        "DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_DONT_RESET": "1",
    }


def write_config(tmp_path: Path) -> Path:
    """A small box (the machine is shared) with short segments."""
    config = BoxConfig()
    camera = config.cameras[0]
    camera.width, camera.height, camera.fps = 640, 360, 15
    config.stream.high = VideoLayerConfig(width=640, height=360, fps=15, kbps=500)
    config.stream.low = VideoLayerConfig(width=320, height=180, fps=10, kbps=150)
    config.stream.keyframe_interval_s = SEGMENT_S
    config.recording.segment_seconds = SEGMENT_S
    config.discovery.enabled = False
    path = tmp_path / "classbox.toml"
    path.write_text(dump_config(config))
    return path


def video_timeline(path: Path) -> tuple[float, float, int]:
    """(duration s, largest gap between consecutive frames s, frames) of the MP4's video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = sorted(float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return times[-1] - times[0], max(gaps), len(times)


async def clock_health(client: httpx.AsyncClient) -> dict[str, Any] | None:
    """The clock's entry in /healthz once it has seen a step."""
    clock: dict[str, Any] = (await client.get("/healthz")).json()["components"]["clock"]
    return clock if clock["steps"] else None


async def finished_recording(client: httpx.AsyncClient, lesson_id: str) -> dict[str, Any] | None:
    recordings = (await client.get("/api/recordings")).json()["recordings"]
    found: dict[str, Any] | None = next((r for r in recordings if r["lesson_id"] == lesson_id), None)
    return found if found and found["state"] == "ready" else None


async def poll(probe: Any, within: float, what: str) -> Any:
    """Await `probe()` until it gives something truthy (HTTP on the loop, never blocking it)."""
    deadline = time.monotonic() + within
    while not (value := await probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.2)
    return value


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("before", "after", "step_s", "words"),
    [("-3d", "+0", 3 * DAY, "+3 d 0 h 0 min"), ("+0", "-1h", -3600.0, "-1 h 0 min 0 s")],
    ids=["three-days-forward", "one-hour-back"],
)
async def test_a_clock_step_mid_lesson_loses_nothing(
    tmp_path: Path, before: str, after: str, step_s: float, words: str
) -> None:
    stamp = tmp_path / "faketime"
    stamp.write_text(before + "\n")
    daemon = DaemonProcess(tmp_path / "state", "--config", str(write_config(tmp_path)), env=faketime_env(stamp))
    try:
        await asyncio.to_thread(daemon.wait_healthy, 30)
        async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as client:
            asked = time.monotonic()
            started = await client.post("/api/lessons", json={"title": "Across a step"})
            began = (asked + time.monotonic()) / 2
            assert started.status_code == 201, started.text
            lesson = started.json()
            player = await join(client, f"{daemon.url}/whep/{lesson['join_code']}")
            try:
                await until(lambda: player.frames["video"] >= 15, 20, "the viewer decoding")
                await asyncio.sleep(max(0.0, began + BEFORE_STEP_S - time.monotonic()))
                stamp.write_text(after + "\n")  # NTP answers
                clock = await poll(lambda: clock_health(client), 10, "health to see the step")
                decoded, seen = [player.frames["video"]], []
                for _ in range(2):  # the viewer keeps decoding right after the step and until the end
                    await asyncio.sleep(AFTER_STEP_S / 2)
                    decoded.append(player.frames["video"])
                    seen.append((await client.get("/api/viewers")).json()["viewers"])
                asked = time.monotonic()
                stopped = await client.post("/api/lessons/current/stop")
                live_s = (asked + time.monotonic()) / 2 - began
            finally:
                await player.close(client)
            assert stopped.status_code == 200, stopped.text
            duration_s = stopped.json()["lesson"]["duration_s"]
            recording = await poll(lambda: finished_recording(client, lesson["id"]), 40, "the recording ready")
            video = await client.get(recording["download"])
            ink = await client.get(recording["ink"])
        (tmp_path / "lesson.mp4").write_bytes(video.content)
        mp4_s, largest_gap, frames = await asyncio.to_thread(video_timeline, tmp_path / "lesson.mp4")
        log = daemon.log()
    finally:
        await asyncio.to_thread(daemon.terminate)

    print(
        f"live {live_s:.2f} s, lesson {duration_s:.2f} s, MP4 {mp4_s:.2f} s ({frames} frames, largest gap "
        f"{largest_gap:.3f} s), catalogue {recording['duration_s']:.2f} s, viewer decoded {decoded} across the step"
    )
    assert clock["last_step_offset_s"] == pytest.approx(step_s, abs=2)
    assert f"the clock stepped by {words}" in clock["detail"]
    assert log.count("the wall clock stepped by") == 1, "the step is logged once"
    assert abs(duration_s - live_s) < 1.0
    assert duration_s - SEGMENT_S - 0.5 <= mp4_s <= duration_s + 0.5, "at most one segment short"
    assert largest_gap < 1.0, "no hole in the recording around the step"
    assert abs(recording["duration_s"] - mp4_s) < 0.5
    assert decoded[0] < decoded[1] < decoded[2], f"the viewer kept decoding across the step: {seen}"
    events = {line["topic"]: line for line in map(json.loads, ink.text.splitlines())}
    started_t, stopped_t = events["recording.started"]["t"], events["recording.stopped"]["t"]
    assert 0 <= started_t < stopped_t, events
    assert abs(stopped_t - duration_s) < 1.0, "ink times run on the recording's own clock"
