"""The WAN budget: windows, data cap, live-lesson priority (fake clocks), and a real rate through nginx."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime
from pathlib import Path

import pytest

from sync.budget import Budget, Window
from sync.errors import BudgetExhausted
from sync.publish import publish
from sync.pull import Puller
from sync.store import Store
from tests.nginx_server import Nginx
from tests.test_courseware import box_config, make_course, running_box


class FakeTime:
    """A wall clock, a monotonic clock and a sleep that only moves them."""

    def __init__(self, start: datetime) -> None:
        self.wall = start
        self.mono = 0.0
        self.slept = 0.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        self.mono += seconds
        self.slept += seconds


DAY = [Window("08:00", "16:00", 256), Window("16:00", "22:00", 1000)]


def budget_at(path: Path, clock: FakeTime, windows: list[Window] = DAY, cap: int = 0) -> Budget:
    return Budget(path, windows, cap, now=clock.now, monotonic=clock.monotonic, sleep=clock.sleep)


def test_windows_set_the_rate_and_nights_are_unlimited(tmp_path: Path) -> None:
    clock = FakeTime(datetime(2026, 11, 23, 9, 30))
    budget = budget_at(tmp_path / "c.json", clock)
    assert budget.rate() == 32_000  # 256 kbit/s in bytes/s
    clock.wall = datetime(2026, 11, 23, 17, 0)
    assert budget.rate() == 125_000
    clock.wall = datetime(2026, 11, 23, 23, 0)
    assert budget.rate() is None
    wrap = Window("22:00", "06:00", 64)
    assert wrap.contains(datetime(2026, 1, 1, 23, 59))
    assert wrap.contains(datetime(2026, 1, 1, 5, 0))
    assert not wrap.contains(datetime(2026, 1, 1, 12, 0))


async def test_take_keeps_the_window_rate_on_a_fake_clock(tmp_path: Path) -> None:
    clock = FakeTime(datetime(2026, 11, 23, 9, 30))
    budget = budget_at(tmp_path / "c.json", clock)
    for _ in range(64):
        await budget.take(16_000)
    assert clock.mono == pytest.approx(64 * 16_000 / 32_000, rel=0.02)
    assert budget.used_bytes == 64 * 16_000


async def test_a_live_lesson_leaves_sync_only_what_the_stream_does_not_use(tmp_path: Path) -> None:
    clock = FakeTime(datetime(2026, 11, 23, 23, 0))  # night: unlimited
    budget = Budget(
        tmp_path / "c.json", DAY, link_kbps=2000, now=clock.now, monotonic=clock.monotonic, sleep=clock.sleep
    )
    assert budget.rate() is None
    budget.set_live_reservation(1500)
    assert budget.rate() == 500 * 125
    budget.observe(1_000_000, 1.0)  # throttled transfers do not move the estimate
    assert budget.status()["link_estimate_kbps"] == 2000
    budget.set_live_reservation(1990)
    assert budget.rate() == 16 * 125  # never starves completely
    budget.set_live_reservation(0)
    assert budget.rate() is None


async def test_the_data_cap_stops_transfers_persists_and_resets_monthly(tmp_path: Path) -> None:
    clock = FakeTime(datetime(2026, 11, 30, 23, 0))
    budget = budget_at(tmp_path / "c.json", clock, cap=100_000)
    for _ in range(6):
        await budget.take(16_000)
    budget.record(10_000)
    assert budget.exhausted()
    with pytest.raises(BudgetExhausted, match="cap"):
        await budget.take(1)
    assert budget.status()["exhausted"] is True
    budget.flush()
    again = budget_at(tmp_path / "c.json", clock, cap=100_000)
    assert again.used_bytes == 106_000
    clock.wall = datetime(2026, 12, 1, 0, 1)
    assert again.used_bytes == 0
    assert not again.exhausted()


async def test_windows_and_the_monthly_counter_follow_the_clock_across_steps(tmp_path: Path) -> None:
    clock = FakeTime(datetime(2026, 11, 29, 12, 0))  # an offline box booted with an old saved time
    budget = budget_at(tmp_path / "c.json", clock, cap=1_000_000)
    await budget.take(300_000)
    assert budget.rate() == 32_000  # 12:00 is in the day window
    clock.wall = datetime(2026, 12, 2, 23, 0)  # NTP answers: +3 days 11 hours, into a new month, at night
    assert budget.rate() is None
    assert budget.status()["month"] == "2026-12"
    assert budget.used_bytes == 0
    await budget.take(200_000)
    budget.flush()
    # The step was wrong (a bad time server) and is taken back: November keeps what it had counted,
    # plus what was counted under the wrong December; the cap cannot be dodged by a clock step.
    again = budget_at(tmp_path / "c.json", clock, cap=1_000_000)
    clock.wall = datetime(2026, 11, 30, 9, 0)
    assert again.used_bytes == 500_000
    assert again.status()["month"] == "2026-11"
    assert again.rate() == 32_000
    clock.wall = datetime(2026, 12, 1, 0, 0)
    assert again.used_bytes == 0


@pytest.mark.slow
async def test_a_pull_at_256_kbit_stays_within_ten_percent_of_it(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "repo"
    (src / "reading").mkdir(parents=True)
    (src / "reading" / "book.pdf").write_bytes(random.Random(3).randbytes(170_000))
    await asyncio.to_thread(publish, src, out, tmp_path / "keys")
    nginx = Nginx(tmp_path / "nginx", out)
    store = Store(tmp_path / "box" / "courseware.db")
    budget = Budget(tmp_path / "box" / "wan.json", [Window("00:00", "24:00", 256)])
    try:
        began = time.monotonic()
        report = await Puller(
            store, nginx.url, tmp_path / "box" / "tuf", (out / "metadata" / "1.root.json").read_bytes(), budget=budget
        ).pull()
        elapsed = time.monotonic() - began
    finally:
        store.close()
        nginx.stop()
    assert report.bytes_from_origin > 150_000
    rate = report.bytes_from_origin / elapsed
    assert rate == pytest.approx(32_000, rel=0.10)
    assert budget.used_bytes == report.bytes_from_origin + report.metadata_bytes


async def test_at_the_data_cap_pulling_stops_and_the_admin_listing_says_so(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "repo"
    make_course(src, video_mb=1.0)
    await asyncio.to_thread(publish, src, out, tmp_path / "keys")
    nginx = Nginx(tmp_path / "nginx", out)
    config = box_config(tmp_path / "box", nginx.url, out / "metadata" / "1.root.json")
    config.budget.monthly_cap_mb = 1  # 1 MB: less than the course
    try:
        async with running_box(config) as (cw, client):
            await cw.pull_once()
            assert "cap" in cw.last_error
            chunk_bytes = sum(h.bytes for h in nginx.hits() if h.uri.startswith("/chunks/"))
            assert 900_000 < chunk_bytes < 1_000_000 + 4 * 256 * 1024  # at most the pieces in flight past the cap
            mark = nginx.mark()
            await cw.pull_once()
            assert nginx.hits_since(mark) == []  # nothing crosses the WAN at the cap
            listing = (await client.get("/api/courseware")).json()
            assert listing["budget"]["exhausted"] is True
            assert cw.health().status == "degraded"
            assert "cap" in cw.health().detail
    finally:
        nginx.stop()
    assert (tmp_path / "box" / "wan-budget.json").exists()
