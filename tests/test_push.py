"""The outbox against the official tus server on loopback: resume, retries, 409, checksum, SIGKILL."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from sync.push import Outbox, OutboxItem, file_sha256
from tests.tus_fixture import TusServer, require_tus_server, sha256_of

CHUNK = 64 * 1024
ROOT = Path(__file__).parent.parent


@pytest.fixture
async def tus(tmp_path: Path) -> AsyncIterator[TusServer]:
    require_tus_server()
    server = TusServer(tmp_path / "tus")
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


@pytest.fixture
def tus_sync(tmp_path: Path) -> Iterator[TusServer]:
    require_tus_server()
    server = TusServer(tmp_path / "tus")
    server.start()
    yield server
    server.stop()


def make_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


class HookBudget:
    """A budget that runs a test's hook before the n-th chunk (1-based) and counts what it let through."""

    def __init__(self, at: int, hook: Callable[[], Awaitable[None]]) -> None:
        self.at = at
        self.hook = hook
        self.chunks = 0
        self.taken = 0

    async def take(self, nbytes: int) -> None:
        self.chunks += 1
        self.taken += nbytes
        if self.chunks == self.at:
            await self.hook()


class Crash(Exception):
    """Stands for the process dying mid-upload."""


def outbox_for(tmp_path: Path, tus: TusServer, **kwargs: object) -> Outbox:
    return Outbox(tmp_path / "outbox.db", tus.url, chunk_size=CHUNK, retry_first_s=0.05, retry_max_s=0.2, **kwargs)  # type: ignore[arg-type]


def queue(outbox: Outbox, path: Path, ref: str = "rec-1") -> OutboxItem:
    meta = {"box": "box-test", "lesson": "lesson-1", "title": "Fractions ✓", "started_at": "1700000000.0"}
    return outbox.add(path, ref=ref, kind="recording", sha256=file_sha256(path), metadata=meta)


async def test_uploads_a_file_whole_with_metadata_and_progress(tmp_path: Path, tus: TusServer) -> None:
    path = make_file(tmp_path / "lesson.mp4", 5 * CHUNK + 123)
    outbox = outbox_for(tmp_path, tus)
    events: list[tuple[str, int]] = []
    outbox.listen(lambda event, item: events.append((event, item.offset)))
    queue(outbox, path)
    await outbox.drain()
    item = outbox.items()[0]
    outbox.close()

    [upload] = tus.uploads()
    assert sha256_of(upload) == sha256_of(path)
    meta = tus.info(upload)["metadata"]
    assert meta["sha256"] == sha256_of(path)
    assert meta["title"] == "Fractions ✓"
    assert meta["lesson"] == "lesson-1"
    assert item.state == "done"
    assert item.offset == item.size == path.stat().st_size
    assert [e for e, _ in events].count("progress") == 6
    assert events[-1] == ("done", item.size)
    patches = [r for r in tus.requests() if r.get("method") == "PATCH"]
    assert all(r["status"] == 204 for r in patches)
    assert sum(r["length"] for r in patches) == item.size


async def test_queueing_twice_keeps_one_row(tmp_path: Path, tus: TusServer) -> None:
    path = make_file(tmp_path / "lesson.mp4", 1000)
    outbox = outbox_for(tmp_path, tus)
    first = queue(outbox, path)
    second = queue(outbox, path)
    outbox.close()
    assert first.id == second.id


async def test_restart_resumes_from_the_servers_offset(tmp_path: Path, tus: TusServer) -> None:
    path = make_file(tmp_path / "lesson.mp4", 10 * CHUNK)

    async def crash() -> None:
        raise Crash

    outbox = outbox_for(tmp_path, tus, budget=HookBudget(4, crash))
    queue(outbox, path)
    with pytest.raises(Crash):
        await outbox.drain()
    url_before = outbox.items()[0].upload_url
    outbox.close()
    assert tus.patched_bytes() == 3 * CHUNK
    mark = len(tus.requests())

    outbox = outbox_for(tmp_path, tus)
    await outbox.drain()
    item = outbox.items()[0]
    outbox.close()
    later = tus.requests()[mark:]
    assert not [r for r in later if r.get("method") == "POST"], "resumed, not created anew"
    assert item.upload_url == url_before
    assert tus.patched_bytes(mark) == 7 * CHUNK
    assert sha256_of(tus.uploads()[0]) == sha256_of(path)


async def test_expired_upload_is_created_anew(tmp_path: Path, tus: TusServer) -> None:
    path = make_file(tmp_path / "lesson.mp4", 4 * CHUNK)

    async def crash() -> None:
        raise Crash

    outbox = outbox_for(tmp_path, tus, budget=HookBudget(2, crash))
    queue(outbox, path)
    with pytest.raises(Crash):
        await outbox.drain()
    outbox.close()
    for stored in tus.directory.iterdir():
        stored.unlink()  # the server expired it

    outbox = outbox_for(tmp_path, tus)
    await outbox.drain()
    assert outbox.items()[0].state == "done"
    outbox.close()
    assert [r["status"] for r in tus.requests() if r.get("method") == "HEAD"] == [200, 404, 200]
    assert len([r for r in tus.requests() if r.get("method") == "POST"]) == 2
    assert sha256_of(tus.uploads()[0]) == sha256_of(path)


async def test_server_down_retries_then_succeeds_when_it_returns(tmp_path: Path, tus: TusServer) -> None:
    path = make_file(tmp_path / "lesson.mp4", 6 * CHUNK)

    async def server_goes_down() -> None:
        await asyncio.to_thread(tus.stop)

    outbox = outbox_for(tmp_path, tus, budget=HookBudget(3, server_goes_down))
    retries: list[str] = []
    retried_thrice = asyncio.Event()

    def on_event(event: str, item: OutboxItem) -> None:
        if event == "retry":
            retries.append(item.error)
            if len(retries) == 3:
                retried_thrice.set()

    outbox.listen(on_event)
    queue(outbox, path)
    delivery = asyncio.create_task(outbox.drain(), name="test:drain")
    await asyncio.wait_for(retried_thrice.wait(), 10)
    assert not delivery.done()
    await asyncio.to_thread(tus.start)
    await asyncio.wait_for(delivery, 20)
    item = outbox.items()[0]
    outbox.close()
    assert item.state == "done"
    assert item.attempts >= 3
    assert any("ClientConnectorError" in error or "Connect" in error for error in retries)
    assert sha256_of(tus.uploads()[0]) == sha256_of(path)


async def test_offset_mismatch_409_asks_the_server_and_continues(tmp_path: Path, tus: TusServer) -> None:
    path = make_file(tmp_path / "lesson.mp4", 4 * CHUNK)
    data = path.read_bytes()
    outbox: Outbox

    async def someone_else_sends_the_first_chunk() -> None:
        url = outbox.items()[0].upload_url
        assert url is not None
        headers = {"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        async with aiohttp.ClientSession() as session, session.patch(url, data=data[:CHUNK], headers=headers) as r:
            assert r.status == 204

    outbox = outbox_for(tmp_path, tus, budget=HookBudget(1, someone_else_sends_the_first_chunk))
    queue(outbox, path)
    await outbox.drain()
    sent = outbox.bytes_sent
    outbox.close()
    statuses = [r["status"] for r in tus.requests() if r.get("method") == "PATCH"]
    assert 409 in statuses
    assert sent == 3 * CHUNK
    assert sha256_of(tus.uploads()[0]) == sha256_of(path)


async def test_checksum_failure_starts_the_upload_over(tmp_path: Path, tus: TusServer) -> None:
    path = make_file(tmp_path / "lesson.mp4", 4 * CHUNK)

    async def corrupt_what_the_server_stored() -> None:
        [stored] = tus.uploads()
        with stored.open("r+b") as handle:
            first = handle.read(1)
            handle.seek(0)
            handle.write(bytes([first[0] ^ 0xFF]))

    outbox = outbox_for(tmp_path, tus, budget=HookBudget(3, corrupt_what_the_server_stored))
    queue(outbox, path)
    await outbox.drain()
    item = outbox.items()[0]
    outbox.close()
    finishes = [r["ok"] for r in tus.requests() if r.get("event") == "finish"]
    assert finishes == [False, True]
    assert [r["status"] for r in tus.requests() if r.get("method") == "PATCH"].count(460) == 1
    assert len([r for r in tus.requests() if r.get("method") == "POST"]) == 2
    assert item.state == "done"
    [upload] = tus.uploads()
    assert sha256_of(upload) == sha256_of(path)


async def test_a_file_changed_after_queueing_is_refused_not_looped(tmp_path: Path, tus: TusServer) -> None:
    path = make_file(tmp_path / "lesson.mp4", 2 * CHUNK)
    outbox = outbox_for(tmp_path, tus)
    failed: list[OutboxItem] = []
    outbox.listen(lambda event, item: failed.append(item) if event == "failed" else None)
    queue(outbox, path)
    make_file(path, 2 * CHUNK)  # same size, other bytes: the server's sha256 check fails
    await outbox.drain()
    outbox.close()
    assert [item.state for item in failed] == ["failed"]
    assert "changed since it was queued" in failed[0].error
    assert tus.uploads() == []


async def test_bearer_token_is_sent_and_never_logged(
    tmp_path: Path, tus: TusServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = make_file(tmp_path / "lesson.mp4", 1000)
    outbox = outbox_for(tmp_path, tus, token="s3cret-token")
    queue(outbox, path)
    await outbox.drain()
    rows = repr(outbox.items())
    outbox.close()
    assert {r["auth"] for r in tus.requests() if "method" in r} == {"Bearer"}
    assert "s3cret-token" not in caplog.text
    assert "s3cret-token" not in rows


def settled_offset(tus: TusServer, upload: Path) -> int:
    """The server's offset of `upload` by HEAD, which waits for the upload's lock (held by a PATCH still writing)."""
    request = urllib.request.Request(f"{tus.url}/{upload.name}", method="HEAD", headers={"Tus-Resumable": "1.0.0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.headers["Upload-Offset"])


@pytest.mark.slow
def test_sigkill_mid_upload_resumes_from_the_servers_offset(tmp_path: Path, tus_sync: TusServer) -> None:
    tus = tus_sync
    chunk = 32 * 1024
    path = make_file(tmp_path / "lesson.mp4", 48 * chunk)
    size = path.stat().st_size
    worker = [sys.executable, str(ROOT / "tests" / "push_worker.py"), str(tmp_path / "outbox.db"), tus.url, str(path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([*worker, str(chunk), "0.05"], env=env)
    deadline = time.monotonic() + 30
    while tus.patched_bytes() < 12 * chunk and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    [stored] = tus.uploads()
    offset = settled_offset(tus, stored)
    mark = len(tus.requests())
    assert stored.stat().st_size == offset  # the file store's offset is the stored file's length
    left = size - offset
    assert 0 < left < size - 10 * chunk

    subprocess.run([*worker, str(chunk), "0"], env=env, check=True, timeout=60)
    sent_after = tus.patched_bytes(mark)
    print(f"bytes left at SIGKILL: {left}, bytes sent after restart: {sent_after}")
    assert sent_after < 1.1 * left
    assert not [r for r in tus.requests()[mark:] if r.get("method") == "POST"]
    assert tus.uploads() == [stored]
    assert sha256_of(stored) == sha256_of(path)


async def test_every_chunk_goes_through_the_wan_budget_and_its_cap(tmp_path: Path, tus: TusServer) -> None:
    from sync.budget import Budget

    path = make_file(tmp_path / "lesson.mp4", 3 * CHUNK + 10)
    budget = Budget(tmp_path / "wan-budget.json", monthly_cap_bytes=2 * CHUNK)
    outbox = outbox_for(tmp_path, tus, budget=budget)
    retried = asyncio.Event()
    outbox.listen(lambda event, item: retried.set() if event == "retry" and "cap" in item.error else None)
    queue(outbox, path)
    delivery = asyncio.create_task(outbox.drain(), name="test:drain")
    await asyncio.wait_for(retried.wait(), 10)
    assert not delivery.done(), "the cap holds the upload back; it is not given up"
    assert tus.patched_bytes() == 2 * CHUNK
    budget.configure([], monthly_cap_bytes=0)  # the admin lifts the cap
    await asyncio.wait_for(delivery, 10)
    outbox.close()
    assert budget.used_bytes == path.stat().st_size
    assert sha256_of(tus.uploads()[0]) == sha256_of(path)
