"""Courseware: publish a signed repository, pull it through real nginx on loopback, serve it from the store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from edge import wiring
from edge.box import Box
from edge.core.config import BoxConfig
from edge.core.events import EventBus
from edge.courseware.cache import CoursewareComponent
from edge.daemon import Supervisor
from edge.doors.web.app import create_app
from edge.doors.web.server import WebDoor
from edge.services import Parts, Services
from sync.chunks import ItemIndex
from sync.errors import TrustError
from sync.publish import publish
from sync.pull import Puller
from sync.store import Store
from tests.helpers import REPO, free_port, wait_for
from tests.nginx_server import Nginx


def make_course(src: Path, seed: int = 1, video_mb: float = 1.0) -> dict[str, bytes]:
    """A folder of two courses; returns item -> bytes."""
    rng = random.Random(seed)
    files = {
        "math/course.json": json.dumps({"title": "Mathematics 7"}).encode(),
        "math/lesson-1/video.mp4": rng.randbytes(int(video_mb * 1024 * 1024)),
        "math/lesson-1/slides.pdf": b"%PDF-1.4\n" + rng.randbytes(150_000),
        "math/index.html": b"<!doctype html><title>Fractions</title><h1>Fractions</h1>",
        "art/exercise.txt": b"Draw a tree.\n" * 100,
    }
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    del files["math/course.json"]
    return files


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[Path, Path, Nginx]]:
    """(src, repo) published once, and nginx serving the repo."""
    src, out = tmp_path / "src", tmp_path / "repo"
    make_course(src)
    publish(src, out, tmp_path / "keys")
    server = Nginx(tmp_path / "nginx", out)
    yield src, out, server
    server.stop()


def box_config(state: Path, repo_url: str, root: Path) -> BoxConfig:
    config = BoxConfig()
    config.box.state_dir = state
    config.courseware.repo_url = repo_url
    config.courseware.trusted_root = str(root)
    config.courseware.pull_interval_s = 3600
    config.discovery.enabled = False
    return config


@asynccontextmanager
async def running_box(
    config: BoxConfig, *, http: bool = False, fault: str | None = None, backoff_s: float = 0.5
) -> AsyncIterator[tuple[CoursewareComponent, httpx.AsyncClient]]:
    """A box with its courseware component supervised and its web app reachable in-process (and on its port).

    `fault` and `backoff_s` go to the supervisor (its fault drill makes that component fail once).
    """
    bus = EventBus()
    services = Services(config, bus)
    services.open()
    supervisor = Supervisor(bus, fault, backoff_s)
    lan = wiring.discovery(services) if config.discovery.enabled else None
    if lan is not None:
        supervisor.add(lan)
    component = wiring.courseware(services, lan)
    supervisor.add(component)
    parts = Parts(discovery=lan, courseware=component)
    box = Box(config, bus, services=services, parts=parts, supervisor=supervisor)
    app = await asyncio.to_thread(create_app, box)  # first imports of the doors are slow: not on the loop
    if config.discovery.enabled or http:  # a peer must really answer HTTP on loopback
        supervisor.add(WebDoor(box, app))
    await supervisor.start_all()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://box") as client:
            yield component, client
    finally:
        await supervisor.stop_all()
        box.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_publish_pull_serve_gives_back_the_source_bytes(tmp_path: Path, repo: tuple[Path, Path, Nginx]) -> None:
    src, out, nginx = repo
    files = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    config = box_config(tmp_path / "box", nginx.url, out / "metadata" / "1.root.json")
    async with running_box(config) as (cw, client):
        report = await cw.pull_once()
        assert report is not None
        assert report.items == 4
        assert report.items_complete == 4
        assert cw.last_error == ""
        for name, data in files.items():
            if name.endswith("course.json"):
                continue
            response = await client.get(f"/courseware/{name}")
            assert response.status_code == 200, name
            assert sha(response.content) == sha(data), name
            assert response.headers["etag"] == f'"{sha(data)}"'
        video = await client.get("/courseware/math/lesson-1/video.mp4")
        assert video.headers["content-type"] == "video/mp4"
        pdf = await client.head("/courseware/math/lesson-1/slides.pdf")
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["accept-ranges"] == "bytes"

        data = files["math/lesson-1/video.mp4"]
        part = await client.get("/courseware/math/lesson-1/video.mp4", headers={"Range": "bytes=100000-300000"})
        assert part.status_code == 206
        assert part.content == data[100000:300001]
        assert part.headers["content-range"] == f"bytes 100000-300000/{len(data)}"
        tail = await client.get("/courseware/math/lesson-1/video.mp4", headers={"Range": "bytes=-10"})
        assert tail.content == data[-10:]
        bad = await client.get("/courseware/math/lesson-1/video.mp4", headers={"Range": f"bytes={len(data)}-"})
        assert bad.status_code == 416
        cached = await client.get(
            "/courseware/math/index.html", headers={"If-None-Match": f'"{sha(files["math/index.html"])}"'}
        )
        assert cached.status_code == 304

        assert (await client.get("/courseware/math/nope.pdf")).status_code == 404
        assert (await client.get("/courseware/math/..%2F..%2Fetc%2Fpasswd")).status_code in (400, 404)

        listing = (await client.get("/api/courseware")).json()
        math = next(c for c in listing["courses"] if c["id"] == "math")
        assert math["title"] == "Mathematics 7"
        assert {i["path"]: i["state"] for i in math["items"]}["lesson-1/video.mp4"] == "cached"

        chunk_hash = ItemIndex.from_bytes(_index_bytes(out, "math", "index.html")).chunks[0][0]
        chunk = await client.get(f"/api/chunks/{chunk_hash}")
        assert chunk.status_code == 200
        assert sha(chunk.content) == chunk_hash
        assert (await client.get("/api/chunks/" + "0" * 64)).status_code == 404
        assert (await client.get("/api/chunks/not-a-hash")).status_code == 400


def _index_bytes(out: Path, course: str, path: str) -> bytes:
    """The chunk index the repository's current signed targets name for an item."""
    version = json.loads((out / "metadata" / "timestamp.json").read_text())["signed"]["meta"]["snapshot.json"][
        "version"
    ]
    targets = json.loads((out / "metadata" / f"{version}.targets.json").read_text())["signed"]["targets"]
    target = f"index/{course}/{path}.json"
    head, _, tail = target.rpartition("/")
    return (out / "targets" / head / f"{targets[target]['hashes']['sha256']}.{tail}").read_bytes()


async def test_one_percent_change_moves_only_the_changed_chunks(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "repo"
    make_course(src, video_mb=6)
    await asyncio.to_thread(publish, src, out, tmp_path / "keys")
    nginx = Nginx(tmp_path / "nginx", out)
    store = Store(tmp_path / "box" / "courseware.db")
    root = (out / "metadata" / "1.root.json").read_bytes()
    try:
        await Puller(store, nginx.url, tmp_path / "box" / "tuf", root).pull()
        old = ItemIndex.from_bytes(_index_bytes(out, "math", "lesson-1/video.mp4"))
        video = src / "math/lesson-1/video.mp4"
        data = bytearray(video.read_bytes())
        middle = len(data) // 2
        data[middle : middle + len(data) // 100] = random.Random(9).randbytes(len(data) // 100)
        video.write_bytes(bytes(data))
        republished = await asyncio.to_thread(publish, src, out, tmp_path / "keys")
        new = ItemIndex.from_bytes(_index_bytes(out, "math", "lesson-1/video.mp4"))
        changed = {h: n for h, n in new.chunks if h not in {o for o, _ in old.chunks}}
        changed_bytes = sum(changed.values())
        assert republished.chunks_written == len(changed)  # re-publishing adds only the new chunks
        assert republished.changed_items == ["math/lesson-1/video.mp4"]
        assert 0 < changed_bytes < len(data) * 0.1

        mark = nginx.mark()
        report = await Puller(store, nginx.url, tmp_path / "box" / "tuf", root).pull()
        hits = nginx.hits_since(mark)
        chunk_bytes = sum(h.bytes for h in hits if h.uri.startswith("/chunks/"))
        meta_bytes = sum(h.bytes for h in hits if not h.uri.startswith("/chunks/"))
        assert report.chunks_from_origin == len(changed)
        assert chunk_bytes + meta_bytes <= 1.1 * changed_bytes + meta_bytes
        assert chunk_bytes <= 1.1 * changed_bytes
        assert meta_bytes < 20_000  # timestamp, snapshot, targets, catalog, one changed index
        item = store.item("math", "lesson-1/video.mp4")
        assert sha(b"".join(store.read(item))) == sha(bytes(data))
    finally:
        store.close()
        nginx.stop()


def _pull_cmd(store: Path, url: str, root: Path, trust: Path) -> list[str]:
    return [sys.executable, "-m", "sync.pull", "--store", str(store), "--repo", url, "--root", str(root)] + [
        "--trust-dir",
        str(trust),
        "--concurrency",
        "1",
    ]


@pytest.mark.slow
def test_sigkill_during_a_pull_resumes_with_at_most_one_chunk_fetched_twice(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "repo"
    make_course(src, video_mb=0.5)
    publish(src, out, tmp_path / "keys")
    # nginx's limit_rate lets each response burst one second's worth: at 48k a ~70 KB chunk takes ~1 s.
    slow = Nginx(tmp_path / "slow", out, limit_rate="48k")
    fast = Nginx(tmp_path / "fast", out)
    root, db, trust = out / "metadata" / "1.root.json", tmp_path / "box" / "courseware.db", tmp_path / "box" / "tuf"
    every = {f"/chunks/{p.parent.name}/{p.name}" for p in (out / "chunks").rglob("*") if p.is_file()}
    try:
        proc = subprocess.Popen(_pull_cmd(db, slow.url, root, trust), cwd=REPO, stderr=subprocess.DEVNULL)
        wait_for(lambda: sum(h.uri.startswith("/chunks/") for h in slow.hits()) >= 3, 30, what="3 chunks")
        proc.kill()
        proc.wait()
        assert proc.returncode < 0  # really killed mid-way
        finished = subprocess.run(_pull_cmd(db, fast.url, root, trust), cwd=REPO, capture_output=True, timeout=60)
        assert finished.returncode == 0, finished.stderr.decode()
        before = [h.uri for h in slow.hits() if h.uri.startswith("/chunks/")]
        after = [h.uri for h in fast.hits() if h.uri.startswith("/chunks/")]
    finally:
        slow.stop()
        fast.stop()
    assert 3 <= len(set(before)) < len(every)
    uris = before + after
    assert set(uris) == every
    assert len(uris) - len(set(uris)) <= 1  # at most the one chunk in flight at the kill is fetched twice
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    store = Store(db)
    try:
        item = store.item("math", "lesson-1/video.mp4")
        assert sha(b"".join(store.read(item))) == sha((src / "math/lesson-1/video.mp4").read_bytes())
    finally:
        store.close()


async def _served(client: httpx.AsyncClient, name: str) -> str:
    response = await client.get(f"/courseware/{name}")
    assert response.status_code == 200
    return sha(response.content)


def _change_video(src: Path) -> bytes:
    video = src / "math/lesson-1/video.mp4"
    data = video.read_bytes()[:-50_000] + random.Random(5).randbytes(120_000)
    video.write_bytes(data)
    return data


async def test_tampered_chunk_is_refused_and_the_old_version_kept(
    tmp_path: Path, repo: tuple[Path, Path, Nginx], caplog: pytest.LogCaptureFixture
) -> None:
    src, out, nginx = repo
    old = sha((src / "math/lesson-1/video.mp4").read_bytes())
    config = box_config(tmp_path / "box", nginx.url, out / "metadata" / "1.root.json")
    async with running_box(config) as (cw, client):
        await cw.pull_once()
        _change_video(src)
        before = {p for p in (out / "chunks").rglob("*") if p.is_file()}
        await asyncio.to_thread(publish, src, out, tmp_path / "keys")
        added = sorted({p for p in (out / "chunks").rglob("*") if p.is_file()} - before)
        added[0].write_bytes(b"evil" + added[0].read_bytes()[4:])
        with caplog.at_level(logging.ERROR):
            report = await cw.pull_once()
        assert report is not None
        assert any("does not match its sha256, refused" in line for line in report.refused)
        assert "does not match its sha256, refused" in caplog.text
        assert await _served(client, "math/lesson-1/video.mp4") == old
        assert await cw.chunk(added[0].name) is None


async def test_tampered_metadata_is_refused_and_the_old_version_kept(
    tmp_path: Path, repo: tuple[Path, Path, Nginx], caplog: pytest.LogCaptureFixture
) -> None:
    src, out, nginx = repo
    old = sha((src / "math/lesson-1/video.mp4").read_bytes())
    config = box_config(tmp_path / "box", nginx.url, out / "metadata" / "1.root.json")
    async with running_box(config) as (cw, client):
        await cw.pull_once()
        _change_video(src)
        await asyncio.to_thread(publish, src, out, tmp_path / "keys")
        targets = out / "metadata" / "2.targets.json"
        signed = json.loads(targets.read_text())
        signed["signed"]["expires"] = "2099-01-01T00:00:00Z"  # any change breaks the signature
        targets.write_text(json.dumps(signed))
        with caplog.at_level(logging.ERROR):
            await cw.pull_once()
        assert "bad or missing signature" in cw.last_error
        assert "courseware pull refused" in caplog.text
        assert cw.health().status == "degraded"
        assert await _served(client, "math/lesson-1/video.mp4") == old


async def test_replayed_older_metadata_is_refused(tmp_path: Path, repo: tuple[Path, Path, Nginx]) -> None:
    src, out, nginx = repo
    saved = tmp_path / "v1-metadata"
    shutil.copytree(out / "metadata", saved)
    config = box_config(tmp_path / "box", nginx.url, out / "metadata" / "1.root.json")
    async with running_box(config) as (cw, client):
        new = _change_video(src)
        await asyncio.to_thread(publish, src, out, tmp_path / "keys")
        await cw.pull_once()
        assert await _served(client, "math/lesson-1/video.mp4") == sha(new)
        shutil.copy(saved / "timestamp.json", out / "metadata" / "timestamp.json")  # an attacker replays v1
        await cw.pull_once()
        assert "rolled back" in cw.last_error
        assert await _served(client, "math/lesson-1/video.mp4") == sha(new)


async def test_expired_metadata_is_refused(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "repo"
    make_course(src, video_mb=0.1)
    await asyncio.to_thread(
        publish, src, out, tmp_path / "keys", now=datetime.now(UTC) - timedelta(days=10), timestamp_days=3
    )
    store = Store(tmp_path / "courseware.db")
    try:
        with pytest.raises(TrustError, match="expired"):
            await Puller(store, str(out), tmp_path / "tuf", (out / "metadata" / "1.root.json").read_bytes()).pull()
        assert store.courses() == []
    finally:
        store.close()


def lan_box(state: Path, box_id: str, repo_url: str, root: Path) -> BoxConfig:
    config = box_config(state, repo_url, root)
    config.box.id = box_id
    config.web.host = "127.0.0.1"
    config.web.port = free_port()
    config.discovery.enabled = True
    config.discovery.interfaces = ["127.0.0.1"]
    return config


async def test_a_second_box_gets_every_chunk_from_its_lan_peer_and_none_from_the_cloud(
    tmp_path: Path, repo: tuple[Path, Path, Nginx]
) -> None:
    src, out, cloud = repo
    root = out / "metadata" / "1.root.json"
    first = lan_box(tmp_path / "a", "box-a", "", root)  # no pulls of their own: the test says when
    second = lan_box(tmp_path / "b", "box-b", "", root)
    async with running_box(first) as (cw_a, _), running_box(second) as (cw_b, client_b):
        first.courseware.repo_url = second.courseware.repo_url = cloud.url
        report_a = await cw_a.pull_once()
        assert report_a is not None
        assert report_a.chunks_from_origin > 0
        for _ in range(100):
            # `in`, not `==`: another box on this machine (a developer's demo) is a legitimate peer too.
            if cw_b.peers and f"http://127.0.0.1:{first.web.port}" in cw_b.peers.urls():
                break
            await asyncio.sleep(0.05)
        assert cw_b.peers is not None
        assert f"http://127.0.0.1:{first.web.port}" in cw_b.peers.urls()
        mark = cloud.mark()
        report_b = await cw_b.pull_once()
        assert report_b is not None
        cloud_hits = cloud.hits_since(mark)
        assert [h for h in cloud_hits if h.uri.startswith("/chunks/")] == []
        assert all(h.uri.startswith(("/metadata/", "/targets/")) for h in cloud_hits)  # signed metadata, indexes
        assert sum(h.bytes for h in cloud_hits) < 20_000
        assert report_b.chunks_from_origin == 0
        assert report_b.chunks_from_peers == report_a.chunks_from_origin
        assert report_b.items_complete == 4
        video = (src / "math/lesson-1/video.mp4").read_bytes()
        assert await _served(client_b, "math/lesson-1/video.mp4") == sha(video)


async def test_a_lying_peer_is_ignored_and_the_cloud_supplies_the_chunks(
    tmp_path: Path, repo: tuple[Path, Path, Nginx], caplog: pytest.LogCaptureFixture
) -> None:
    src, out, cloud = repo

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 1000)

    app = web.Application()
    app.router.add_get("/api/chunks/{digest}", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    store = Store(tmp_path / "cw.db")
    try:
        root = (out / "metadata" / "1.root.json").read_bytes()
        puller = Puller(store, cloud.url, tmp_path / "tuf", root, peers=lambda: [f"http://127.0.0.1:{port}"])
        report = await puller.pull()
        assert report.chunks_from_peers == 0
        assert report.items_complete == 4
        assert "declared 1000 bytes for a chunk of" in report.peers_dropped[f"http://127.0.0.1:{port}"]
        assert "not asked again in this pull" in caplog.text
        item = store.item("math", "lesson-1/video.mp4")
        assert sha(b"".join(store.read(item))) == sha((src / "math/lesson-1/video.mp4").read_bytes())
    finally:
        store.close()
        await runner.cleanup()
