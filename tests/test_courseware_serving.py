"""Serving courseware while the cache changes: 503 while the component restarts, a read item outlives eviction."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path

import httpx

from edge import wiring
from edge.box import Box
from edge.core.events import EventBus
from sync.chunks import ItemIndex
from sync.publish import publish
from tests.helpers import free_port
from tests.nginx_server import Nginx
from tests.stream_fixture import until
from tests.test_courseware import _index_bytes, box_config, make_course, running_box, sha

MB = 1024 * 1024


def routes(chunk: str) -> list[tuple[str, str, dict[str, str]]]:
    """Every courseware route: (method, path, headers)."""
    return [
        ("GET", "/api/courseware", {}),
        ("POST", "/api/courseware/pull", {}),
        ("GET", f"/api/chunks/{chunk}", {}),
        ("GET", "/courseware/math/index.html", {}),
        ("HEAD", "/courseware/math/lesson-1/slides.pdf", {}),
        ("GET", "/courseware/math/lesson-1/video.mp4", {"Range": "bytes=1000-2000"}),
    ]


async def test_every_courseware_route_answers_503_with_retry_after_while_the_component_restarts(
    tmp_path: Path,
) -> None:
    src, out = tmp_path / "src", tmp_path / "repo"
    make_course(src, video_mb=0.3)
    await asyncio.to_thread(publish, src, out, tmp_path / "keys")
    nginx = await asyncio.to_thread(Nginx, tmp_path / "nginx", out)
    config = box_config(tmp_path / "box", nginx.url, out / "metadata" / "1.root.json")
    chunk = ItemIndex.from_bytes(_index_bytes(out, "math", "index.html")).chunks[0][0]
    try:
        async with running_box(config) as (cw, _):
            await cw.pull_once()  # the cache has every item before the restarts
        # The supervisor's fault drill fails the real component once, 0.5 s after it started; it restarts 1.5 s later.
        async with running_box(config, fault="courseware", backoff_s=1.5) as (cw, client):
            seen: Counter[tuple[str, int]] = Counter()
            stop = asyncio.Event()

            async def hammer() -> None:
                while not stop.is_set():
                    for method, path, headers in routes(chunk):
                        response = await client.request(method, path, headers=headers)
                        seen[(path, response.status_code)] += 1
                        if response.status_code == 503:
                            assert response.headers["retry-after"] == "2", path
                        else:
                            assert response.status_code in (200, 202, 206), (path, response.status_code)

            async def component_is(status: str) -> None:
                for _ in range(200):
                    health = (await client.get("/healthz")).json()
                    if health["components"]["courseware"]["status"] == status:
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"the courseware component never became {status}")

            task = asyncio.create_task(hammer(), name="test:hammer")
            try:
                await component_is("down")
                await until(lambda: cw.store is None, 5, "the component stopped")  # its stop follows the report
                for method, path, headers in routes(chunk):
                    response = await client.request(method, path, headers=headers)
                    assert response.status_code == 503, path
                    assert response.headers["retry-after"] == "2", path
                    assert method == "HEAD" or "restarting" in response.json()["detail"], path
                await component_is("ok")
                await until(lambda: all(seen[(p, 503)] and seen[(p, 200)] for _, p, _ in routes(chunk)[:1]), 5)
            finally:
                stop.set()
                await task
            for method, path, headers in routes(chunk):
                response = await client.request(method, path, headers=headers)
                assert response.status_code in (200, 202, 206), path
    finally:
        await asyncio.to_thread(nginx.stop)


def _write_course(src: Path, course: str, name: str, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    (src / course).mkdir(parents=True, exist_ok=True)
    (src / course / "course.json").write_text(json.dumps({"title": course}))
    (src / course / name).write_bytes(data)
    return data


async def test_an_item_evicted_while_a_slow_reader_streams_it_completes_and_is_freed_after(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "repo"
    video = await asyncio.to_thread(_write_course, src, "math", "film.mp4", 12 * MB, 1)
    await asyncio.to_thread(_write_course, src, "math", "notes.txt", 20_000, 2)
    await asyncio.to_thread(publish, src, out, tmp_path / "keys")
    nginx = await asyncio.to_thread(Nginx, tmp_path / "nginx", out)
    config = box_config(tmp_path / "box", nginx.url, out / "metadata" / "1.root.json")
    config.web.host, config.web.port = "127.0.0.1", free_port()
    config.courseware.quota_mb = 14
    film_chunks = [h for h, _ in ItemIndex.from_bytes(_index_bytes(out, "math", "film.mp4")).chunks]
    try:
        async with running_box(config, http=True) as (cw, client):
            store = cw.store
            assert store is not None
            assert (await cw.pull_once()) is not None
            await asyncio.to_thread(
                _write_course, src, "art", "clip.mp4", 6 * MB, 3
            )  # a new course that only fits if the film goes
            await asyncio.to_thread(publish, src, out, tmp_path / "keys")
            url = f"http://127.0.0.1:{config.web.port}/courseware/math/film.mp4"
            http = await asyncio.to_thread(httpx.AsyncClient, timeout=30)  # its TLS set-up is slow: not on the loop
            async with http, http.stream("GET", url) as response:
                assert response.status_code == 200
                body = response.aiter_raw(64 * 1024)
                received = [await anext(body)]  # the slow reader has begun, and stalls
                report = await cw.pull_once()
                assert report is not None
                assert report.chunks_from_origin > 0
                assert cw.last_error == ""
                states = {i["path"]: i["state"] for c in (await cw.listing())["courses"] for i in c["items"]}
                assert states["film.mp4"] == "missing"  # evicted: new requests no longer get it
                assert states["clip.mp4"] == "cached"
                held = await asyncio.to_thread(lambda: [store.has_chunk(h) for h in film_chunks])
                assert all(held)  # ...but its bytes wait for the reader
                received += [piece async for piece in body]
            assert sha(b"".join(received)) == sha(video)
            await until(lambda: not any(store.has_chunk(h) for h in film_chunks), 5, "the film's chunks freed")
            assert store.used_bytes <= store.quota_bytes
            assert (await client.get("/courseware/math/film.mp4")).status_code == 404

            # A reader that hangs up mid-body lets go too: evicted afterwards, the clip's bytes go at once.
            clip_chunks = [h for h, _ in ItemIndex.from_bytes(_index_bytes(out, "art", "clip.mp4")).chunks]
            http = await asyncio.to_thread(httpx.AsyncClient, timeout=30)
            async with http, http.stream("GET", url.replace("math/film", "art/clip")) as response:
                await anext(response.aiter_raw(64 * 1024))
            await asyncio.to_thread(store.evict, "art", "clip.mp4")
            await until(lambda: not any(store.has_chunk(h) for h in clip_chunks), 5, "the clip's chunks freed")
    finally:
        await asyncio.to_thread(nginx.stop)


async def test_stopping_the_component_while_a_pull_is_asked_for_ends_its_loop(tmp_path: Path) -> None:
    config = box_config(tmp_path / "box", "", tmp_path / "root.json")  # no repository: the loop only waits
    box = Box(config, EventBus())
    box.open()
    cw = wiring.courseware(box.services)
    await cw.start()
    loop = asyncio.create_task(cw.run(), name="test:courseware-run")
    try:
        await asyncio.sleep(0.1)  # the loop waits for a wake-up
        cw.pull_now()  # a pull asked for in the same moment the supervisor cancels the loop
        loop.cancel()
        done, _ = await asyncio.wait({loop}, timeout=3)
        assert loop in done  # the cancel was not lost
        assert loop.cancelled()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await cw.stop()
        box.close()
