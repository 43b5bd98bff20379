#!/usr/bin/env python3
"""Courseware sync benchmarks: pull throughput vs the link, serving from the store vs nginx, chunking speed.

Each figure is printed with a baseline measured in the same run (the machines are shared and noisy):
- pull: a courseware pull through nginx `limit_rate` vs one plain download of the same bytes at that rate;
- serving: GET of a large item from the box's store (uvicorn + SQLite) vs nginx serving the file from disk;
- chunking: FastCDC + sha256 per chunk vs sha256 alone over the same buffer.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.box import Box  # noqa: E402
from edge.core.config import BoxConfig  # noqa: E402
from edge.core.events import EventBus  # noqa: E402
from edge.daemon import Supervisor  # noqa: E402
from edge.doors.web.server import WebDoor  # noqa: E402
from edge.services import Parts, Services  # noqa: E402
from edge.wiring import courseware  # noqa: E402
from sync.chunks import cut  # noqa: E402
from sync.publish import publish  # noqa: E402
from sync.pull import Puller  # noqa: E402
from sync.store import Store  # noqa: E402
from tests.helpers import free_port  # noqa: E402
from tests.nginx_server import Nginx  # noqa: E402

LINK = "48k"  # nginx limit_rate (per request, with a 1 s burst: the baseline shows what it really gives)
PULL_MB = 0.5
SERVE_MB = 64
CHUNK_MB = 128


def download(url: str) -> int:
    with urllib.request.urlopen(url, timeout=60) as response:
        total = 0
        while piece := response.read(1 << 20):
            total += len(piece)
    return total


def bench_chunking() -> None:
    data = random.Random(1).randbytes(CHUNK_MB * 1024 * 1024)
    began = time.perf_counter()
    count = sum(1 for _ in cut(data))
    cdc = time.perf_counter() - began
    began = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    sha = time.perf_counter() - began
    print(f"chunking: FastCDC+sha256 {CHUNK_MB / cdc:7.0f} MB/s ({count} chunks, mean {len(data) // count} B)")
    print(f"          baseline sha256 alone {CHUNK_MB / sha:7.0f} MB/s -> ratio {sha / cdc:.2f}")


async def fetch_all(urls: list[str], concurrency: int) -> int:
    """The baseline: plain parallel GETs of the same chunk files (no verification, no store)."""
    queue = list(urls)
    total = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal total
        while queue:
            async with session.get(queue.pop()) as response:
                total += len(await response.read())

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return total


async def bench_pull(work: Path) -> None:
    src, repo = work / "src", work / "repo"
    (src / "physics").mkdir(parents=True)
    (src / "physics" / "lecture.mp4").write_bytes(random.Random(2).randbytes(int(PULL_MB * 1024 * 1024)))
    publish(src, repo, work / "keys")
    nginx = Nginx(work / "nginx-slow", repo, limit_rate=LINK)
    urls = [f"{nginx.url}/chunks/{p.parent.name}/{p.name}" for p in (repo / "chunks").rglob("*") if p.is_file()]
    try:
        for concurrency in (1,):  # nginx limits per request: more connections would mean a wider link
            began = time.perf_counter()
            size = await fetch_all(urls, concurrency)
            baseline = size / (time.perf_counter() - began)
            store = Store(work / f"pull-{concurrency}.db")
            root = (repo / "metadata" / "1.root.json").read_bytes()
            puller = Puller(store, nginx.url, work / f"tuf-{concurrency}", root, concurrency=concurrency)
            began = time.perf_counter()
            report = await puller.pull()
            rate = report.bytes_from_origin / (time.perf_counter() - began)
            store.close()
            print(
                f"pull, {concurrency} connection(s), nginx limit_rate {LINK}: {rate / 1e3:7.1f} kB/s; baseline plain "
                f"GETs of the same chunks {baseline / 1e3:7.1f} kB/s -> pull = {rate / baseline:5.1%} of the link"
            )
    finally:
        nginx.stop()


async def bench_serving(work: Path) -> None:
    src, repo = work / "serve-src", work / "serve-repo"
    (src / "history").mkdir(parents=True)
    (src / "history" / "film.mp4").write_bytes(random.Random(3).randbytes(SERVE_MB * 1024 * 1024))
    publish(src, repo, work / "serve-keys")
    nginx = Nginx(work / "nginx-disk", src)
    config = BoxConfig()
    config.box.state_dir = work / "box"
    config.courseware.repo_url = str(repo)
    config.courseware.trusted_root = str(repo / "metadata" / "1.root.json")
    config.courseware.pull_interval_s = 3600
    config.discovery.enabled = False
    config.web.host, config.web.port = "127.0.0.1", free_port()
    bus = EventBus()
    services = Services(config, bus)
    services.open()
    supervisor = Supervisor(bus)
    component = courseware(services)
    box = Box(config, bus, services=services, parts=Parts(courseware=component), supervisor=supervisor)
    supervisor.add(component)
    supervisor.add(WebDoor(box))
    await supervisor.start_all()
    try:
        await component.pull_once()
        store_url = f"http://127.0.0.1:{config.web.port}/courseware/history/film.mp4"
        disk_url = nginx.url + "/history/film.mp4"
        for url in (store_url, disk_url):
            await asyncio.to_thread(download, url)  # warm
        timings = {}
        for label, url in (("store", store_url), ("nginx", disk_url)):
            began = time.perf_counter()
            for _ in range(3):
                await asyncio.to_thread(download, url)
            timings[label] = 3 * SERVE_MB / (time.perf_counter() - began)
        print(
            f"serving: from the store {timings['store']:7.0f} MB/s; "
            f"baseline nginx from disk {timings['nginx']:7.0f} MB/s -> ratio {timings['store'] / timings['nginx']:.2f}"
        )
    finally:
        await supervisor.stop_all()
        box.close()
        nginx.stop()


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        work = Path(tmp)
        bench_chunking()
        await bench_pull(work)
        await bench_serving(work)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main())
