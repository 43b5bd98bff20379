"""Misbehaving LAN peers (real HTTP servers on loopback): every read is bounded, each bad peer is asked once."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from sync.publish import publish
from sync.pull import Puller
from sync.store import Store
from tests.helpers import free_port
from tests.nginx_server import Nginx
from tests.test_courseware import make_course, sha

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QUICK = aiohttp.ClientTimeout(total=3.0, sock_connect=1.0, sock_read=0.5)


class Peer:
    """An aiohttp server of the test's own answering `/api/chunks/{digest}` its way; counts requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.asked: Counter[str] = Counter()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.asked[request.match_info["digest"]] += 1
        return await self.handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/chunks/{digest}", self._answer)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Peers:
    """The bad peers of the test (endless body, wrong bytes, a stall) and a good one, all serving `repo`."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.release = asyncio.Event()  # lets the stalled handler end at teardown
        self.endless_sent = 0
        self.endless_done = asyncio.Event()
        self.endless = Peer(self._endless)
        self.wrong = Peer(self._wrong)
        self.stall = Peer(self._stall)
        self.good = Peer(self._good)

    def chunk(self, request: web.Request) -> bytes:
        digest = request.match_info["digest"]
        return (self.repo / "chunks" / digest[:2] / digest).read_bytes()

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length
        await response.prepare(request)
        block = b"x" * 65536
        try:
            while True:
                await response.write(block)
                self.endless_sent += len(block)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            return response
        finally:
            self.endless_done.set()

    async def _wrong(self, request: web.Request) -> web.StreamResponse:
        right = self.chunk(request)
        return web.Response(body=bytes(b ^ 0xFF for b in right))  # the right length, the wrong bytes

    async def _stall(self, request: web.Request) -> web.StreamResponse:
        right = self.chunk(request)
        response = web.StreamResponse()
        response.content_length = len(right)
        await response.prepare(request)
        await response.write(right[: len(right) // 2])
        with contextlib.suppress(asyncio.CancelledError):
            await self.release.wait()
        return response

    async def _good(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.chunk(request))

    @property
    def bad(self) -> list[Peer]:
        return [self.endless, self.wrong, self.stall]


@pytest.fixture
async def peers(tmp_path: Path) -> AsyncIterator[Peers]:
    make_course(tmp_path / "src", video_mb=1.0)
    await asyncio.to_thread(publish, tmp_path / "src", tmp_path / "repo", tmp_path / "keys")
    found = Peers(tmp_path / "repo")
    for peer in [*found.bad, found.good]:
        await peer.start()
    yield found
    found.release.set()
    for peer in [*found.bad, found.good]:
        await peer.stop()


@pytest.mark.parametrize("with_good_peer", [True, False], ids=["a-good-peer-too", "only-the-cloud"])
async def test_bad_peers_are_asked_once_and_the_pull_finishes_from_the_cloud_or_a_good_peer(
    tmp_path: Path, peers: Peers, with_good_peer: bool
) -> None:
    cloud = await asyncio.to_thread(Nginx, tmp_path / "nginx", peers.repo)
    store = Store(tmp_path / "cw.db")
    listed = [p.url for p in peers.bad] + ([peers.good.url] if with_good_peer else [])
    root = (peers.repo / "metadata" / "1.root.json").read_bytes()
    try:
        puller = Puller(store, cloud.url, tmp_path / "tuf", root, peers=lambda: listed, peer_timeout=QUICK)
        report = await puller.pull()
        chunks = sum(1 for p in (peers.repo / "chunks").rglob("*") if p.is_file())
        assert report.items_complete == 4
        for name in ("math/lesson-1/video.mp4", "math/lesson-1/slides.pdf", "math/index.html", "art/exercise.txt"):
            course, path = name.split("/", 1)
            data = b"".join(store.read(store.item(course, path)))
            assert sha(data) == sha((tmp_path / "src" / name).read_bytes()), name
        for bad in peers.bad:
            assert sum(bad.asked.values()) == 1, bad.url  # asked once in the whole pull, then dropped
        assert set(report.peers_dropped) == {p.url for p in peers.bad}
        assert "more than" in report.peers_dropped[peers.endless.url]
        assert "does not match its sha256" in report.peers_dropped[peers.wrong.url]
        assert "timed out" in report.peers_dropped[peers.stall.url]
        if with_good_peer:
            assert (report.chunks_from_peers, report.chunks_from_origin) == (chunks, 0)
            assert sum(peers.good.asked.values()) == chunks
        else:
            assert (report.chunks_from_peers, report.chunks_from_origin) == (0, chunks)
        await asyncio.wait_for(peers.endless_done.wait(), 5)  # the box hung up on the endless body
        assert peers.endless_sent < 16 * 1024 * 1024  # what loopback socket buffers hold, not an unbounded read
    finally:
        store.close()
        await asyncio.to_thread(cloud.stop)
