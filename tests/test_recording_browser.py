"""A finished recording plays in headless Chromium straight from the box's download route (Range requests)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edge.recording.catalogue import Catalogue
from tests.browser import chromium
from tests.stream_fixture import live_box
from tests.test_recorder import next_event, recording_config

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PLAY = """async (src) => {
  const video = document.createElement('video');
  video.muted = true;
  document.body.appendChild(video);
  video.src = src;
  await new Promise((ok, bad) => {
    video.onloadedmetadata = ok;
    video.onerror = () => bad(String(video.error.message));
  });
  await video.play();
  await new Promise((ok) => setTimeout(ok, 1500));
  return { duration: video.duration, time: video.currentTime, width: video.videoWidth,
           frames: video.getVideoPlaybackQuality().totalVideoFrames, audioBytes: video.webkitAudioDecodedByteCount };
}"""


async def test_recording_plays_in_chromium_from_the_download_route(tmp_path: Path) -> None:
    async with live_box(recording_config(tmp_path)) as live:
        events = live.box.bus.subscribe("recording.")
        lesson = await live.start_lesson("Music")
        for _ in range(3):
            await next_event(events, "recording.segment")
        await live.box.stop_lesson("panel")
        await next_event(events, "recording.finished")
        recording = Catalogue(live.box.services.database()).require(lesson.id)
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(live.base + "/healthz")  # same origin as the recording
            played: dict[str, Any] = await asyncio.wait_for(
                page.evaluate(PLAY, f"{live.base}/api/recordings/{recording.id}/download"), 30
            )
    assert abs(played["duration"] - (recording.duration_s or 0)) < 0.3
    assert played["time"] > 0.5
    assert played["width"] == 640
    assert played["frames"] > 5
    assert played["audioBytes"] > 0
