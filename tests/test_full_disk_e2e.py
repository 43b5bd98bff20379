"""End to end: the daemon on a 64 MB tmpfs, filled mid-lesson by a filler file, then given room back.

The teacher's stop answers, the next lesson goes live unrecorded with the alarm, the first
recording holds what fit and plays, a courseware pull stops at its floor, and once the filler is
removed the next lesson records again, all without a restart.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Any

import av
import pytest

from edge.core.config import BoxConfig, VideoLayerConfig, dump_config
from edge.recording.recorder import DISK_FULL_LIVE, DISK_FULL_START
from edge.recording.segments import closed_segments
from sync.publish import publish
from tests.disk_fixture import MB, fill, free_bytes, small_disk, unfill
from tests.helpers import DaemonProcess, http_json, wait_for


def write_config(tmp_path: Path, repo: Path) -> Path:
    """A small box: 1 s segments at a high bitrate fill the disk in seconds; small reserve and floors."""
    config = BoxConfig()
    camera = config.cameras[0]
    camera.width, camera.height, camera.fps = 640, 360, 15
    config.stream.high = VideoLayerConfig(width=640, height=360, fps=15, kbps=3000)
    config.stream.low = VideoLayerConfig(width=320, height=180, fps=10, kbps=150)
    config.stream.keyframe_interval_s = 1.0
    config.recording.segment_seconds = 1.0
    config.recording.min_free_mb = 4
    config.box.reserve_mb = 4
    config.courseware.repo_url = str(repo)
    config.courseware.trusted_root = str(repo / "metadata" / "1.root.json")
    config.courseware.min_free_mb = 16
    config.courseware.pull_interval_s = 3600
    config.discovery.enabled = False
    path = tmp_path / "classbox.toml"
    path.write_text(dump_config(config))
    return path


def publish_course(tmp_path: Path, files: dict[str, bytes]) -> Path:
    src, repo = tmp_path / "courseware-src", tmp_path / "courseware-repo"
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    publish(src, repo, tmp_path / "courseware-keys")
    return repo


def call(daemon: DaemonProcess, path: str, method: str = "GET", body: Any = None) -> Any:
    status, answer = http_json(daemon.url + path, method, body)
    assert status in (200, 201, 202), (path, status, answer)
    return answer


def recording_of(daemon: DaemonProcess, lesson_id: str) -> dict[str, Any] | None:
    return next((r for r in call(daemon, "/api/recordings")["recordings"] if r["lesson_id"] == lesson_id), None)


def ready(daemon: DaemonProcess, lesson_id: str, kind: str) -> dict[str, Any] | None:
    recording = recording_of(daemon, lesson_id)
    return recording if recording and recording["state"] == "ready" and recording["format"] == kind else None


def decoded_frames(source: str) -> dict[str, int]:
    """Frames PyAV decodes from a file or URL, by stream type."""
    counts = {"video": 0, "audio": 0}
    with av.open(source) as container:
        for frame in container.decode(*container.streams.video, *container.streams.audio):
            kind = "video" if isinstance(frame, av.VideoFrame) else "audio"
            counts[kind] += 1
    return counts


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_full_disk_mid_lesson_stop_answers_next_lesson_is_live_unrecorded_and_room_brings_recording_back(
    tmp_path: Path,
) -> None:
    repo = publish_course(tmp_path, {"maths/index.html": b"<h1>Fractions</h1>"})
    config = write_config(tmp_path, repo)
    with small_disk(tmp_path / "state", 64) as state, DaemonProcess(state, "--config", str(config)) as daemon:
        daemon.wait_healthy(30)
        wait_for(lambda: call(daemon, "/api/courseware")["courses"], 20, 0.2, "the first courseware pull")
        first = call(daemon, "/api/lessons", "POST", {"title": "Fractions"})["id"]
        wait_for(lambda: len(closed_segments(state / "recordings" / first)) >= 2, 20, 0.2, "two closed segments")

        fill(state, leave_bytes=MB // 2)  # the filler: the recorder runs out of room in a few seconds
        wait_for(lambda: daemon.health()["alarms"].get("recording") == DISK_FULL_LIVE, 45, 0.2, "the disk-full alarm")
        assert call(daemon, "/api/lessons/current")["lesson"]["alarms"] == [DISK_FULL_LIVE]
        assert daemon.health()["components"]["media"]["status"] == "ok"  # the live lesson goes on
        assert not list((state / "recordings" / first).glob("*.part"))  # the unfinished segment gave its room back
        metrics = urllib.request.urlopen(daemon.url + "/metrics", timeout=5).read().decode()
        assert f'classbox_alarm{{alarm="recording",message="{DISK_FULL_LIVE}"}} 1.0' in metrics
        assert 'classbox_recording_disk_full{component="recorder"} 1.0' in metrics

        assert call(daemon, "/api/lessons/current/stop", "POST")["lesson"]["state"] == "ended"
        second = call(daemon, "/api/lessons", "POST", {"title": "Geometry"})["id"]
        lesson = call(daemon, "/api/lessons/current")["lesson"]
        assert (lesson["id"], lesson["state"], lesson["alarms"]) == (second, "live", [DISK_FULL_START])
        recorder = daemon.health()["components"]["recorder"]
        assert (recorder["status"], recorder["recording"], recorder["detail"]) == ("degraded", 0, DISK_FULL_START)

        kept = wait_for(lambda: ready(daemon, first, "hls"), 30, 0.2, "the first recording, kept as segments")
        assert kept["duration_s"] >= 2.0
        assert kept["playlist"]
        downloaded = tmp_path / "first.ts"
        with urllib.request.urlopen(daemon.url + kept["download"], timeout=30) as response:
            downloaded.write_bytes(response.read())
        frames = decoded_frames(str(downloaded))
        assert frames["video"] >= 15 * 2, frames  # 2 s or more of both
        assert frames["audio"] >= 50 * 2, frames
        assert decoded_frames(daemon.url + kept["playlist"]) == frames
        print(f"kept {kept['duration_s']:.1f} s ({kept['size']} bytes) as segments; decoded {frames}")

        publish_course(tmp_path, {"maths/film.bin": os.urandom(8 * MB)})
        call(daemon, "/api/courseware/pull", "POST")
        error = wait_for(lambda: call(daemon, "/api/courseware")["error"], 30, 0.2, "the pull stopped")
        assert "disk nearly full: courseware sync stopped" in error
        assert "disk nearly full" in daemon.health()["components"]["courseware"]["detail"]
        assert call(daemon, "/api/lessons/current/stop", "POST")["lesson"]["id"] == second

        unfill(state)  # room again: an admin freed space
        third = call(daemon, "/api/lessons", "POST", {"title": "Algebra"})["id"]
        assert call(daemon, "/api/lessons/current")["lesson"]["alarms"] == []
        wait_for(lambda: len(closed_segments(state / "recordings" / third)) >= 2, 20, 0.2, "recording again")
        call(daemon, "/api/lessons/current/stop", "POST")
        wait_for(lambda: ready(daemon, third, "mp4"), 30, 0.2, "the third recording as MP4")
        joined = wait_for(lambda: ready(daemon, first, "mp4"), 30, 0.2, "the first recording joined when room came")
        assert joined["duration_s"] == pytest.approx(kept["duration_s"], abs=0.5)
        assert daemon.health()["alarms"] == {}
        assert free_bytes(state) > 8 * MB
        assert daemon.terminate() == 0
