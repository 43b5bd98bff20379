"""The recordings catalogue, its HTTP door, the disk policy and the uploads component (real tus server)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from edge import wiring
from edge.box import Box
from edge.core.config import BoxConfig
from edge.core.events import EventBus
from edge.doors.web.app import create_app
from edge.recording.catalogue import Catalogue, Recording
from edge.recording.storage import DiskPolicy
from sync.push import file_sha256
from tests.tus_fixture import TusServer, require_tus_server, sha256_of


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    config = BoxConfig()
    config.box.state_dir = tmp_path / "state"
    box = Box(config, EventBus())
    box.open()
    yield box
    box.close()


@pytest.fixture
async def tus(tmp_path: Path) -> AsyncIterator[TusServer]:
    require_tus_server()
    server = TusServer(tmp_path / "tus")
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


def finished_recording(box: Box, name: str, size: int, started_at: float, uploaded: bool = False) -> Recording:
    """A ready recording with a real MP4-named file and ink log on disk."""
    catalogue = Catalogue(box.services.database())
    directory = box.config.box.state_dir / "recordings" / name
    directory.mkdir(parents=True)
    video, ink = directory / "lesson.mp4", directory / "ink.jsonl"
    video.write_bytes(os.urandom(size))
    ink.write_text('{"at": 1.0, "topic": "lesson.started"}\n')
    catalogue.begin(name, name, f"Lesson {name}", started_at, directory)
    catalogue.update(name, ink_path=str(ink), ink_size=ink.stat().st_size, ink_sha256=file_sha256(ink))
    recording = catalogue.finished(
        name, path=video, size=size, sha256=file_sha256(video), duration_s=30.0, ended_at=started_at + 30
    )
    if uploaded:
        recording = catalogue.update(name, upload_state="uploaded")
    return recording


async def test_disk_policy_deletes_only_confirmed_recordings_oldest_first(box: Box) -> None:
    finished_recording(box, "oldest-sent", 1000, 100.0, uploaded=True)
    finished_recording(box, "unsent", 1000, 200.0)
    finished_recording(box, "newer-sent", 1000, 300.0, uploaded=True)
    root = box.config.box.state_dir / "recordings"
    policy = DiskPolicy(lambda: Catalogue(box.services.database()), root, quota_bytes=2200, min_free_bytes=0)

    report = await policy.enforce()

    assert report.deleted == ["oldest-sent"]
    assert not report.low
    assert not (root / "oldest-sent").exists()
    assert (root / "unsent" / "lesson.mp4").exists()
    assert Catalogue(box.services.database()).require("oldest-sent").state == "deleted"

    policy.quota_bytes = 500
    report = await policy.enforce()
    assert report.deleted == ["newer-sent"]
    assert report.low, "only an unsent recording is left and it does not fit"
    assert "1 recordings" in report.detail
    assert "not uploaded yet" in report.detail
    assert (root / "unsent" / "lesson.mp4").exists()
    assert Catalogue(box.services.database()).require("unsent").state == "ready"


async def test_disk_policy_free_space_floor_raises_the_alarm(box: Box) -> None:
    finished_recording(box, "unsent", 1000, 100.0)
    root = box.config.box.state_dir / "recordings"
    policy = DiskPolicy(
        lambda: Catalogue(box.services.database()), root, 10**9, min_free_bytes=10**6, free_bytes=lambda _: 10**5
    )
    report = await policy.enforce()
    assert report.low
    assert report.deleted == []
    assert (root / "unsent" / "lesson.mp4").exists()


async def test_recordings_api_lists_and_serves_ranges(box: Box) -> None:
    recording = finished_recording(box, "abc123", 5000, time.time())
    data = await asyncio.to_thread(Path(recording.path or "").read_bytes)
    app = await asyncio.to_thread(create_app, box)  # first build imports the stream stack
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://box") as client:
        listing = (await client.get("/api/recordings")).json()
        [item] = listing["recordings"]
        assert item["id"] == "abc123"
        assert item["state"] == "ready"
        assert item["upload_state"] == "local"
        assert item["sha256"] == recording.sha256
        assert "path" not in item
        whole = await client.get(item["download"])
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.content == data
        part = await client.get(item["download"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == data[100:200]
        ink = await client.get(item["ink"])
        assert ink.status_code == 200
        assert b"lesson.started" in ink.content
        assert (await client.get("/api/recordings/nope/download")).status_code == 404
        escaped = await client.get("/api/recordings/..%2Fx/download")  # %2F is a slash to the router: no such route
        assert (escaped.status_code, escaped.json()["detail"]) == (404, "Not Found")
        dotted = await client.get("/api/recordings/a.b/download")  # one segment, but not a recording id
        assert (dotted.status_code, dotted.json()["detail"]) == (400, "not a recording id")


async def test_recordings_api_is_for_the_panel_only(box: Box) -> None:
    finished_recording(box, "abc123", 100, time.time())
    app = await asyncio.to_thread(create_app, box)  # first build imports the stream stack
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://box") as client:
        assert (await client.get("/api/recordings")).status_code == 401
        assert (await client.get("/api/recordings/abc123/download")).status_code == 401


async def test_uploads_component_delivers_recording_and_ink_then_confirms(box: Box, tus: TusServer) -> None:
    recording = finished_recording(box, "abc123", 300_000, time.time())
    box.config.upload.tus_url = tus.url
    box.config.upload.chunk_size_kb = 64
    events = box.bus.subscribe("upload.")
    uploaded = box.bus.subscribe("recording.uploaded")
    uploads = wiring.uploads(box.services)
    await uploads.start()
    runner = asyncio.create_task(uploads.run(), name="test:uploads")
    try:
        event = await asyncio.wait_for(uploaded.get(), 20)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await uploads.stop()
    assert event.data["recording"] == "abc123"
    done = Catalogue(box.services.database()).require("abc123")
    assert done.upload_state == "uploaded"
    assert done.uploaded_bytes == recording.size
    stored = {sha256_of(path) for path in tus.uploads()}
    assert stored == {recording.sha256, recording.ink_sha256}
    metas = [tus.info(path)["metadata"] for path in tus.uploads()]
    assert {m["kind"] for m in metas} == {"recording", "ink"}
    assert all(m["lesson"] == "abc123" and m["box"] == box.id and m["duration_s"] == "30.000" for m in metas)
    topics = []
    while not events._queue.empty():
        topics.append((await events.get()).topic)
    assert topics.count("upload.progress") >= 5
    assert topics.count("upload.done") == 2
    health = uploads.health()
    assert health.metrics["uploads_done"] == 2
    assert health.metrics["upload_queue"] == 0


async def test_recorder_raises_the_low_disk_alarm_and_keeps_unsent_recordings(box: Box) -> None:
    unsent = finished_recording(box, "unsent", 1000, 100.0)
    alarms = box.bus.subscribe("storage.")
    recorder = wiring.recorder(box.services, free_bytes=lambda _: 10 * 1024 * 1024)  # 10 MB free, the floor is 500 MB
    await recorder.start()
    await recorder.stop()
    health = recorder.health()
    assert health.status == "degraded"
    assert "storage low" in health.detail
    assert "not uploaded yet" in health.detail
    assert health.metrics["storage_low"] == 1
    assert health.metrics["recordings_unsent"] == 1
    event = await asyncio.wait_for(alarms.get(), 1)
    assert event.topic == "storage.low"
    assert await asyncio.to_thread(Path(unsent.path or "").exists)
    assert Catalogue(box.services.database()).require("unsent").state == "ready"


def kept_as_segments(box: Box, name: str, sizes: list[int]) -> tuple[Recording, list[bytes]]:
    """A ready recording that is its segments plus an HLS playlist (the disk had no room to join them)."""
    catalogue = Catalogue(box.services.database())
    directory = box.config.box.state_dir / "recordings" / name
    directory.mkdir(parents=True)
    parts = [os.urandom(size) for size in sizes]
    for seq, data in enumerate(parts, start=1):
        (directory / f"seg-{seq:05d}.ts").write_bytes(data)
    playlist = directory / "lesson.m3u8"
    entries = "".join(f"#EXTINF:1.000,\nseg-{seq:05d}.ts\n" for seq in range(1, len(parts) + 1))
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n{entries}#EXT-X-ENDLIST\n")
    (directory / "ink.jsonl").write_text("{}\n")
    catalogue.begin(name, name, f"Lesson {name}", 100.0, directory)
    size = sum(sizes) + playlist.stat().st_size
    recording = catalogue.finished(name, path=playlist, size=size, sha256=None, duration_s=3.0, ended_at=103.0)
    return recording, parts


async def test_a_recording_kept_as_segments_is_offered_as_a_playlist_its_segments_and_one_download(box: Box) -> None:
    recording, parts = kept_as_segments(box, "kept", [3000, 2000, 1000])
    finished_recording(box, "joined", 100, time.time())
    app = await asyncio.to_thread(create_app, box)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://box") as client:
        listing = {r["id"]: r for r in (await client.get("/api/recordings")).json()["recordings"]}
        item = listing["kept"]
        assert (item["format"], item["playlist"]) == ("hls", "/api/recordings/kept/playlist.m3u8")
        assert (listing["joined"]["format"], listing["joined"]["playlist"]) == ("mp4", None)
        playlist = await client.get(item["playlist"])
        assert playlist.status_code == 200
        assert playlist.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert playlist.text.splitlines()[3] == "seg-00001.ts"
        segment = await client.get("/api/recordings/kept/seg-00002.ts", headers={"Range": "bytes=10-19"})
        assert segment.status_code == 206
        assert segment.content == parts[1][10:20]
        whole = await client.get(item["download"])
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "video/mp2t"
        assert whole.headers["content-disposition"].endswith('.ts"')
        assert whole.content == b"".join(parts)
        for path in ("kept/seg-00004.ts", "kept/ink.jsonl", "kept/lesson.m3u8", "kept/..%2F..%2Fbox.db"):
            assert (await client.get(f"/api/recordings/{path}")).status_code == 404, path
        assert (await client.get("/api/recordings/joined/playlist.m3u8")).status_code == 404
        assert (await client.get("/api/recordings/joined/seg-00001.ts")).status_code == 404
    outsider = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=outsider, base_url="http://box") as client:
        assert (await client.get("/api/recordings/kept/playlist.m3u8")).status_code == 401
        assert (await client.get("/api/recordings/kept/seg-00001.ts")).status_code == 401
