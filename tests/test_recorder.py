"""The recorder on the real shared encoders (synthetic camera and tone through the real drivers)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edge.core.config import BoxConfig
from edge.core.events import Event
from edge.recording.catalogue import Catalogue
from edge.recording.recorder import Recorder
from edge.recording.segments import INK_LOG, closed_segments
from tests.stream_fixture import live_box, small_config, until


def ffprobe(path: Path) -> dict[str, Any]:
    """Streams and format of a media file, as ffprobe reads them."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def recording_config(tmp_path: Path) -> BoxConfig:
    config = small_config(tmp_path)
    config.recording.enabled = True
    config.recording.segment_seconds = 1.0
    config.stream.keyframe_interval_s = 1.0
    return config


async def next_event(events: Any, topic: str, within: float = 20.0) -> Event:
    async def wait() -> Event:
        while True:
            event: Event = await events.get()
            if event.topic == topic:
                return event

    return await asyncio.wait_for(wait(), within)


@pytest.mark.slow
async def test_lesson_is_recorded_in_segments_and_joined_to_mp4(tmp_path: Path) -> None:
    async with live_box(recording_config(tmp_path)) as live:
        box = live.box
        events = box.bus.subscribe("recording.")
        lesson = await live.start_lesson("Fractions")
        recorder = box.parts.recorder
        assert isinstance(recorder, Recorder)
        await next_event(events, "recording.segment")
        await next_event(events, "recording.segment")
        box.bus.publish("board.stroke", points=[[0.1, 0.2], [0.3, 0.4]])
        ink_log = recorder.root / lesson.id / INK_LOG  # flushed and fsynced with every closed segment
        await until(lambda: "board.stroke" in ink_log.read_text(), within=15, what="the stroke in the ink log")
        await box.stop_lesson("panel")
        finished = await next_event(events, "recording.finished")

        recording = Catalogue(box.services.database()).require(lesson.id)
        segments = Catalogue(box.services.database()).segments(lesson.id)
    assert finished.data["recording"]["id"] == lesson.id
    assert recording.state == "ready"
    assert not recording.interrupted
    assert len(segments) >= 3
    assert all(s.size > 0 and len(s.sha256) == 64 for s in segments)
    assert closed_segments(Path(recording.dir)) == [], "segments are dropped once joined"
    probe = await asyncio.to_thread(ffprobe, Path(recording.path or ""))
    codecs = sorted(s["codec_name"] for s in probe["streams"])
    assert codecs == ["h264", "opus"]
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (640, 360)
    assert abs(float(probe["format"]["duration"]) - (recording.duration_s or 0)) < 0.5
    assert abs(sum(s.duration_s or 0 for s in segments) - (recording.duration_s or 0)) < 1.0
    text = await asyncio.to_thread(Path(recording.ink_path or "").read_text)
    ink = [json.loads(line) for line in text.splitlines()]
    topics = [line["topic"] for line in ink]
    assert topics[0] == "recording.started"
    assert "board.stroke" in topics
    assert ink[0]["data"]["media_origin"] == lesson.started_at
    stroke = next(line for line in ink if line["topic"] == "board.stroke")
    assert lesson.started_at < stroke["at"] < (recording.ended_at or 0)


@pytest.mark.slow
async def test_recorder_restarted_mid_lesson_carries_on_into_the_same_recording(tmp_path: Path) -> None:
    async with live_box(recording_config(tmp_path)) as live:
        box = live.box
        events = box.bus.subscribe("recording.")
        lesson = await live.start_lesson("Geometry")
        recorder = box.parts.recorder
        assert isinstance(recorder, Recorder)
        await next_event(events, "recording.segment")
        await recorder.stop()  # what the supervisor does before a restart
        await recorder.start()
        assert recorder.health().metrics["recording"] == 1
        await next_event(events, "recording.segment")
        await next_event(events, "recording.segment")
        await box.stop_lesson("panel")
        await next_event(events, "recording.finished")
        recording = Catalogue(box.services.database()).require(lesson.id)
        seqs = [s.seq for s in Catalogue(box.services.database()).segments(lesson.id)]
    assert recording.state == "ready"
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= 3
    probe = await asyncio.to_thread(ffprobe, Path(recording.path or ""))
    assert float(probe["format"]["duration"]) >= 2.0
