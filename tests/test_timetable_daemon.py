"""The timetable in a real daemon: a feed served on loopback drives auto start and stop with recordings,
the box follows its stored timetable with the feed down, resumes a lesson after a restart, fetches
tomorrow's courseware from a repository on nginx, and the teacher extends and stops early in Chromium.

Time is injected through the box's own clock (its wall clock set by the test); nothing sleeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page

from edge.box import Box
from edge.core.config import BoxConfig
from edge.courseware import service as courseware_service
from sync.clock import Clock
from sync.publish import publish
from tests.helpers import free_port, http_json
from tests.nginx_server import Nginx
from tests.stream_fixture import LiveBox, live_box, small_config, until
from tests.test_courseware import make_course
from tests.test_panel import SCREENSHOTS
from tests.test_timetable import BACK_TO_BACK, HOSTILE, at, ics, lesson


class FeedServer:
    """An iCalendar feed on loopback (aiohttp): strong ETag, 304 on If-None-Match; counts what it answered."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.port = free_port()
        self.answers: list[int] = []
        self.asked_since: list[str] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/school/room-12.ics"

    async def _feed(self, request: web.Request) -> web.Response:
        etag = f'"{hash(self.body) & 0xFFFFFFFF:x}"'
        status = 304 if request.headers.get("If-None-Match") == etag else 200
        self.answers.append(status)
        self.asked_since.append(request.headers.get("If-Modified-Since", ""))
        body = b"" if status == 304 else self.body
        headers = {"ETag": etag, "Last-Modified": "Mon, 04 Jan 2027 06:00:00 GMT", "Content-Type": "text/calendar"}
        return web.Response(status=status, body=body, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/school/room-12.ics", self._feed)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class SetClock:
    """The box's wall clock, set by the test; the monotonic clock stays real (as when NTP steps)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.synchronised = True

    def set(self, wall: float) -> None:
        self.offset = wall - time.time()

    def clock(self) -> Clock:
        return Clock(lambda: time.time() + self.offset, time.monotonic, lambda: self.synchronised)


@pytest.fixture
async def feed() -> AsyncIterator[FeedServer]:
    server = FeedServer(BACK_TO_BACK)
    await server.start()
    yield server
    await server.stop()


def timetable_config(tmp_path: Path, feed_url: str = "", record: bool = True) -> BoxConfig:
    config = small_config(tmp_path)
    config.box.time_zone = "Europe/Berlin"
    config.timetable.feed_url = feed_url
    config.recording.enabled = record
    config.recording.segment_seconds = 1.0
    config.stream.keyframe_interval_s = 1.0
    return config


def source(box: Box, name: str = "feed") -> dict[str, Any]:
    return dict(box.timetable_status()["sources"].get(name, {}))


def live_title(box: Box) -> str:
    lesson = box.current_lesson()
    return lesson.title if lesson else ""


def recording_of(box: Box, lesson_id: str) -> dict[str, Any]:
    found = [r for r in box.recordings()["recordings"] if r["lesson_id"] == lesson_id]
    return found[0] if found else {}


async def on_clock(live: LiveBox, clock: SetClock) -> None:
    """Give the running box the test's clock and wait until its timetable is read."""
    live.box.clock = clock.clock()
    await until(lambda: source(live.box).get("stored"), 15, "the feed accepted")


@pytest.mark.slow
async def test_a_recurring_feed_starts_and_stops_lessons_and_survives_a_bad_feed_and_the_feed_down(
    tmp_path: Path, feed: FeedServer
) -> None:
    clock = SetClock()
    clock.set(at("2027-01-04 08:59"))
    async with live_box(timetable_config(tmp_path, feed.url)) as live:
        await on_clock(live, clock)
        box = live.box
        upcoming = box.next_scheduled_lesson()
        assert upcoming is not None
        assert upcoming["join_url"].endswith(f"/watch/{upcoming['join_code']}"), "the link is ready ahead"
        clock.set(at("2027-01-04 09:00"))
        await until(lambda: live_title(box) == "Maths", 10, "the first lesson starts by itself")
        maths = box.current_lesson()
        assert maths is not None
        assert maths.join_code == upcoming["join_code"]
        await until(lambda: len(list((tmp_path / "state" / "recordings" / maths.id).glob("*"))) >= 3, 20, "segments")
        clock.set(at("2027-01-04 09:45"))
        await until(lambda: live_title(box) == "Art", 10, "the second lesson follows")
        art = box.current_lesson()
        assert art is not None
        await until(lambda: len(list((tmp_path / "state" / "recordings" / art.id).glob("*"))) >= 3, 20, "segments")
        clock.set(at("2027-01-04 10:30"))
        await until(lambda: box.current_lesson() is None, 10, "the last lesson stops at its end")
        for lesson_id in (maths.id, art.id):
            await until(lambda i=lesson_id: recording_of(box, i).get("state") == "ready", 30, "a complete recording")
            recorded = recording_of(box, lesson_id)
            assert recorded["duration_s"] > 1.0
            assert not recorded["interrupted"]
        first, second = box.services.lessons.get(maths.id), box.services.lessons.get(art.id)
        assert first is not None
        assert second is not None
        assert first.ended_at is not None
        assert first.ended_at <= second.started_at, "no overlap"

        box.refresh_timetable()
        await until(lambda: 304 in feed.answers, 10, "a conditional request answered 304")
        assert feed.asked_since[-1] == "Mon, 04 Jan 2027 06:00:00 GMT"
        budget = courseware_service.budget(box.courseware)
        assert budget is not None
        assert budget.used_bytes >= len(BACK_TO_BACK), "the feed's bytes went through the WAN budget"

        feed.body = HOSTILE["never ends"][0]
        box.refresh_timetable()
        await until(lambda: "repeats" in source(box).get("error", ""), 10, "the hostile feed refused")
        assert [lesson["title"] for lesson in box.timetable_today()] == ["Maths", "Art"], "the old timetable kept"

        await feed.stop()
        box.refresh_timetable()
        await until(lambda: "unreachable" in source(box).get("error", ""), 15, "the feed down")
        clock.set(at("2027-01-05 09:00"))
        await until(lambda: live_title(box) == "Maths", 10, "the stored timetable still runs")
        await box.stop_lesson_early()


@pytest.mark.slow
async def test_a_restart_in_the_middle_of_a_lesson_resumes_it_from_the_stored_timetable(
    tmp_path: Path, feed: FeedServer
) -> None:
    clock = SetClock()
    clock.set(at("2027-01-04 09:10"))
    config = timetable_config(tmp_path, feed.url, record=False)
    async with live_box(config) as live:
        await on_clock(live, clock)
        await until(lambda: live_title(live.box) == "Maths", 10, "the lesson due at boot starts at once")
        before = live.box.current_lesson()
        assert before is not None
    await feed.stop()  # the box comes back with no network
    async with live_box(config) as live:
        live.box.clock = clock.clock()
        await until(lambda: live_title(live.box) == "Maths", 10, "it resumes after the restart")
        again = live.box.current_lesson()
        assert again is not None
        assert again.id != before.id
        cut = live.box.services.lessons.get(before.id)
        assert cut is not None
        assert cut.state == "interrupted"


@pytest.mark.slow
async def test_prefetch_pins_and_pulls_tomorrows_course_from_a_repository_on_loopback(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "repo"
    out.mkdir()
    server = Nginx(tmp_path / "nginx", out)
    try:
        config = timetable_config(tmp_path, record=False)
        config.courseware.repo_url = server.url
        config.courseware.pull_interval_s = 3600.0
        config.courseware.trusted_root = str(tmp_path / "root.json")
        await asyncio.to_thread(make_course, src, 1, 0.2)
        await asyncio.to_thread(publish, src, tmp_path / "staging", tmp_path / "keys")  # the keys and root first
        (tmp_path / "root.json").write_bytes((tmp_path / "staging" / "metadata" / "1.root.json").read_bytes())
        clock = SetClock()
        clock.set(at("2027-01-04 15:00"))
        async with live_box(config) as live:
            box = live.box
            box.clock = clock.clock()
            assert box.courseware is not None
            await until(lambda: box.courseware is not None and box.courseware.last_attempt_at, 15, "a first pull")
            assert await box.timetable_missing(1) == []
            await asyncio.to_thread(publish, src, out, tmp_path / "keys")  # the repository appears
            box.add_timetable_lesson("Fractions", dt.datetime(2027, 1, 5, 9, 0), 45, course="math")
            missing = await box.timetable_missing(1)
            assert [m["course"] for m in missing] == ["math"], "the admin page shows what tomorrow lacks"

            async def here() -> bool:
                return await box.timetable_missing(1) == []

            for _ in range(300):
                if await here():
                    break
                await asyncio.sleep(0.1)
            assert await here(), "tomorrow's course was pulled ahead"
            assert box.courseware.store is not None
            assert "math" in box.courseware.store.pinned()
    finally:
        server.stop()


async def admin_sign_in(context: BrowserContext, box: Box, base: str) -> None:
    """Make the first admin with the box's setup code; the browser keeps the session cookie."""
    code = box.setup_code()
    assert code
    body = {"code": code, "user": "it", "password": "correct horse battery staple"}
    answer = await context.request.post(base + "/api/admin/setup", data=body)
    assert answer.ok, await answer.text()


async def shots(page: Page, name: str, selector: str, sizes: tuple[tuple[int, int], ...]) -> None:
    """`docs/screenshots/<name>-<w>x<h>.png` with `selector` in view; the page fits its width at each size."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in sizes:
        await page.set_viewport_size({"width": width, "height": height})
        await page.locator(selector).scroll_into_view_if_needed()
        assert await page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}x{height}.png"))
    await page.set_viewport_size({"width": sizes[0][0], "height": sizes[0][1]})


SIZES = ((1280, 800), (800, 480), (390, 844))


async def in_language(page: Page, base: str, language: str, ready: str) -> None:
    """Switch the page to `language` (the language switch's cookie) and wait until `ready` shows."""
    await page.context.add_cookies([{"name": "classbox_lang", "value": language, "url": base}])
    await page.reload()
    await page.wait_for_selector(ready)


@pytest.mark.slow
@pytest.mark.browser
async def test_the_teacher_extends_and_stops_a_scheduled_lesson_early_from_the_panel(
    tmp_path: Path, feed: FeedServer, browser: Browser
) -> None:
    feed.body = ics(lesson("p", "20270104T090000", "20270104T094500", "Fractions", "RRULE:FREQ=DAILY"))
    clock = SetClock()
    clock.set(at("2027-01-04 08:56"))
    async with live_box(timetable_config(tmp_path, feed.url, record=False)) as live:
        await on_clock(live, clock)
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=True)
        try:
            page = await context.new_page()
            await page.goto(f"{live.base}/panel")
            await page.wait_for_selector("#tt-next:not([hidden])")
            upcoming = live.box.next_scheduled_lesson()
            assert upcoming is not None
            assert await page.text_content("#tt-next-link") == upcoming["join_url"], "the link to share ahead"
            assert "Starting in 4 min" in (await page.text_content("#tt-next-when") or "")
            await shots(page, "panel-timetable-next-en", "#timetable-card", SIZES[:1])
            clock.set(at("2027-01-04 09:20"))
            await page.wait_for_selector("#tt-live:not([hidden])")  # started by itself, the card follows
            await page.wait_for_selector(".tt-lesson.live")
            live_lesson = live.box.current_lesson()
            assert live_lesson is not None
            assert live_lesson.join_code == upcoming["join_code"]
            await in_language(page, live.base, "ar", "#tt-live:not([hidden])")
            assert await page.get_attribute("html", "dir") == "rtl"
            await page.tap("#tt-extend-10")
            await until(lambda: live.box.timetable_today()[0]["extended_min"] == 10, 10, "extended by 10 min")
            await page.wait_for_function("document.querySelector('#tt-live-end').textContent.includes('09:55')")
            await shots(page, "panel-timetable-ar", "#timetable-card", SIZES)
            await in_language(page, live.base, "en", "#tt-live:not([hidden])")
            await shots(page, "panel-timetable-en", "#timetable-card", SIZES)
            await page.tap("#tt-stop")
            await until(lambda: live.box.current_lesson() is None, 10, "stopped early")
            await page.wait_for_selector(".tt-lesson.ended")
            assert await live.box.timetable.tick() == "", "the lesson stopped early does not start again"
            status, body = await asyncio.to_thread(http_json, f"{live.base}/api/timetable/today")
            assert status == 200
            assert [lesson["state"] for lesson in body["lessons"]] == ["ended"]

            await admin_sign_in(context, live.box, live.base)
            admin = await context.new_page()
            await admin.goto(f"{live.base}/admin/timetable")
            await admin.wait_for_selector("#tt-sources li.ok")
            await admin.fill("#tt-title", "Science")
            await admin.fill("#tt-start", "2027-01-05T11:00")
            await admin.fill("#tt-minutes", "40")
            await admin.fill("#tt-course", "science")
            await admin.click("#tt-add button[type=submit]")
            await admin.wait_for_selector("#tt-days td:text('Science')")
            assert [lesson["title"] for lesson in live.box.timetable_today(1)] == ["Fractions", "Science"]
            await admin.wait_for_selector("#tt-missing li.degraded")  # the science course is not on the box
            await shots(admin, "admin-timetable-en", "h1", ((1280, 800), (390, 844)))
            await in_language(admin, live.base, "ar", "#tt-missing li.degraded")
            await shots(admin, "admin-timetable-ar", "h1", ((1280, 800),))
        finally:
            await context.close()
