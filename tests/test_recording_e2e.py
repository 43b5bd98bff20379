"""End to end: `classbox demo` as a real process records a lesson and uploads it to the real tus server.

Also the power cut: SIGKILL mid-lesson, restart, the recording is recovered up to its last closed
segment, marked interrupted, and uploaded.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.core.config import BoxConfig, VideoLayerConfig, dump_config
from edge.recording.segments import closed_segments
from tests.helpers import DaemonProcess, http_json, wait_for
from tests.tus_fixture import TusServer, require_tus_server, sha256_of


@pytest.fixture
def tus(tmp_path: Path) -> Iterator[TusServer]:
    require_tus_server()
    server = TusServer(tmp_path / "tus")
    server.start()
    yield server
    server.stop()


def write_config(tmp_path: Path, tus: TusServer, segment_seconds: float) -> Path:
    """A small box (the machine is shared) that uploads to the test server."""
    config = BoxConfig()
    camera = config.cameras[0]
    camera.width, camera.height, camera.fps = 640, 360, 15
    config.stream.high = VideoLayerConfig(width=640, height=360, fps=15, kbps=500)
    config.stream.low = VideoLayerConfig(width=320, height=180, fps=10, kbps=150)
    config.stream.keyframe_interval_s = min(2.0, segment_seconds)
    config.recording.segment_seconds = segment_seconds
    config.upload.tus_url = tus.url
    config.upload.chunk_size_kb = 256
    config.discovery.enabled = False
    path = tmp_path / "classbox.toml"
    path.write_text(dump_config(config))
    return path


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def recording_of(daemon: DaemonProcess, lesson_id: str) -> dict[str, Any] | None:
    status, body = http_json(daemon.url + "/api/recordings")
    assert status == 200, body
    return next((r for r in body["recordings"] if r["lesson_id"] == lesson_id), None)


def uploaded(daemon: DaemonProcess, lesson_id: str) -> dict[str, Any] | None:
    recording = recording_of(daemon, lesson_id)
    return recording if recording and recording["upload_state"] == "uploaded" else None


def download(daemon: DaemonProcess, recording: dict[str, Any], target: Path) -> Path:
    with urllib.request.urlopen(daemon.url + recording["download"], timeout=30) as response:
        target.write_bytes(response.read())
    return target


def server_copy(tus: TusServer, sha256: str) -> Path:
    matches = [p for p in tus.uploads() if tus.info(p)["metadata"].get("sha256") == sha256]
    assert len(matches) == 1, [tus.info(p)["metadata"] for p in tus.uploads()]
    return matches[0]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_thirty_second_lesson_is_recorded_played_back_and_uploaded(tmp_path: Path, tus: TusServer) -> None:
    config = write_config(tmp_path, tus, segment_seconds=4.0)
    with DaemonProcess(tmp_path / "state", "--config", str(config)) as daemon:
        daemon.wait_healthy(30)
        status, body = http_json(daemon.url + "/api/lessons", "POST", {"title": "Demo lesson"})
        assert status == 201, body
        lesson_id = body["id"]
        time.sleep(30)
        status, body = http_json(daemon.url + "/api/lessons/current/stop", "POST")
        assert status == 200, body
        lesson_seconds = body["lesson"]["duration_s"]
        recording = wait_for(lambda: uploaded(daemon, lesson_id), 90, 0.5, "the recording uploaded")
        local = download(daemon, recording, tmp_path / "downloaded.mp4")
        metrics = urllib.request.urlopen(daemon.url + "/metrics", timeout=5).read().decode()
        assert daemon.terminate() == 0

    probe = ffprobe(local)
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["h264", "opus"]
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (640, 360)
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    # The sound starts with the lesson, not with the second of room sound the microphone still held.
    assert abs(float(audio["duration"]) - float(video["duration"])) < 0.3, (audio["duration"], video["duration"])
    duration = float(probe["format"]["duration"])
    print(f"lesson {lesson_seconds:.2f} s, recording {duration:.2f} s, {recording['size']} bytes")
    assert abs(duration - lesson_seconds) < 1.5, (duration, lesson_seconds)
    assert abs(duration - recording["duration_s"]) < 0.5
    assert recording["interrupted"] is False
    assert hashlib.sha256(local.read_bytes()).hexdigest() == recording["sha256"]
    assert sha256_of(server_copy(tus, recording["sha256"])) == recording["sha256"]
    assert sha256_of(server_copy(tus, recording["ink_sha256"])) == recording["ink_sha256"]
    meta = tus.info(server_copy(tus, recording["sha256"]))["metadata"]
    assert meta["lesson"] == lesson_id
    assert meta["title"] == "Demo lesson"
    assert abs(float(meta["duration_s"]) - duration) < 0.5
    boards = [p for p in tus.uploads() if p.read_bytes()[:5] == b"%PDF-"]  # the lesson's board, beside it
    assert len(boards) == 1
    assert 'classbox_uploads_done{component="uploads"} 3.0' in metrics  # the recording, its ink log, its board


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_power_cut_mid_lesson_recovers_closed_segments_and_uploads(tmp_path: Path, tus: TusServer) -> None:
    config = write_config(tmp_path, tus, segment_seconds=1.0)
    state = tmp_path / "state"
    with DaemonProcess(state, "--config", str(config)) as daemon:
        daemon.wait_healthy(30)
        status, body = http_json(daemon.url + "/api/lessons", "POST", {"title": "Cut short"})
        assert status == 201, body
        lesson_id = body["id"]
        directory = state / "recordings" / lesson_id
        wait_for(lambda: len(closed_segments(directory)) >= 4, 30, 0.05, "four closed segments")
        daemon.kill()
    survivors = closed_segments(directory)
    recorded = sum(float(ffprobe(p)["format"]["duration"]) for p in survivors)
    assert not tus.uploads(), "nothing was finished before the power cut"

    with DaemonProcess(state, "--config", str(config), port=daemon.port) as daemon:
        daemon.wait_healthy(30)
        recording = wait_for(lambda: uploaded(daemon, lesson_id), 60, 0.2, "the recovered recording uploaded")
        status, lesson = http_json(daemon.url + "/api/lessons/current")
        local = download(daemon, recording, tmp_path / "recovered.mp4")
        assert daemon.terminate() == 0

    assert lesson["lesson"] is None, "the cut lesson is no longer live"
    assert recording["interrupted"] is True
    probe = ffprobe(local)
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["h264", "opus"]
    duration = float(probe["format"]["duration"])
    print(f"{len(survivors)} closed segments ({recorded:.2f} s) survived the cut; recovered {duration:.2f} s")
    assert duration >= 3.0
    # each MPEG-TS segment's own duration counts its audio tail and mux delay: up to ~0.2 s more per segment
    assert abs(duration - recorded) < 0.2 * len(survivors), (duration, recorded, len(survivors))
    assert sha256_of(server_copy(tus, recording["sha256"])) == recording["sha256"]
