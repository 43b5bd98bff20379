"""The teacher's panel in Debian's Chromium against the real demo daemon, as the teacher and a student use it.

The tests also take the README's screenshots (`docs/screenshots/`): the panel idle and live in
English and Arabic at the panel's sizes and on a phone, and the home page.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from edge.core.texts import N_
from edge.system.accounts import hash_pin
from tests.helpers import REPO, DaemonProcess, http_json
from tests.stream_fixture import live_box, small_config, until
from tests.test_watch_page import TEXT

SCREENSHOTS = REPO / "docs" / "screenshots"
SIZES = ((1280, 800), (800, 480), (390, 844))
PIN = "2468"
PIN_HASH = hash_pin(PIN)  # at import: argon2 would block the test's loop
DECODED = """(pc) => pc ? pc.getStats().then((stats) => {
  let frames = 0;
  stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0; });
  return frames;
}) : 0"""


def demo_config(tmp_path: Path) -> Path:
    """The demo with small layers (the machine is shared)."""
    path = tmp_path / "box.toml"
    path.write_text(
        """
[box]
name = "Room 12"
[[cameras]]
name = "teacher"
width = 640
height = 360
fps = 15
[stream.high]
width = 640
height = 360
fps = 15
kbps = 600
[stream.low]
width = 320
height = 180
fps = 10
kbps = 150
[stream.lowest]
enabled = false
[discovery]
enabled = false
"""
    )
    return path


@contextlib.asynccontextmanager
async def demo(tmp_path: Path) -> AsyncIterator[DaemonProcess]:
    """`classbox demo` as a subprocess, healthy and with its sample course cached."""
    daemon = DaemonProcess(tmp_path / "state", "--config", str(demo_config(tmp_path)))
    try:
        await asyncio.to_thread(daemon.wait_healthy, 30.0)
        yield daemon
        assert await asyncio.to_thread(daemon.terminate) == 0
    finally:
        await asyncio.to_thread(daemon.__exit__)


async def screenshot(page: Page, name: str, sizes: tuple[tuple[int, int], ...] = SIZES) -> None:
    """`docs/screenshots/<name>-<w>x<h>.png` at each size; the page must fit its width at every one."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in sizes:
        await page.set_viewport_size({"width": width, "height": height})
        await page.wait_for_timeout(150)  # one layout and a frame of the preview at the new size
        assert await page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}x{height}.png"))
    await page.set_viewport_size({"width": sizes[0][0], "height": sizes[0][1]})


def decode_qr(png: bytes) -> str:
    """The text of the QR code in a screenshot (OpenCV's detector, as a phone's camera app would read it)."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    text, _, _ = cv2.QRCodeDetector().detectAndDecode(image)
    return str(text)


async def decoded_frames(page: Page, handle: str) -> int:
    return int(await page.evaluate(f"() => ({DECODED})({handle})"))


async def wait_frames(page: Page, handle: str, at_least: int = 5, within: float = 30.0) -> None:
    for _ in range(int(within / 0.25)):
        if await decoded_frames(page, handle) >= at_least:
            return
        await page.wait_for_timeout(250)
    raise AssertionError(f"fewer than {at_least} video frames decoded by {handle}")


async def panel_page(context: BrowserContext, base: str) -> Page:
    """The panel, open and following the box (its first `state` from /api/events applied)."""
    page = await context.new_page()
    await page.goto(f"{base}/panel")
    await page.wait_for_function("window.classboxPanel && window.classboxPanel.events.readyState === 1")
    return page


async def current_lesson(base: str) -> Any:
    status, body = await asyncio.to_thread(http_json, f"{base}/api/lessons/current")
    assert status == 200
    return body["lesson"]


@pytest.mark.slow
@pytest.mark.browser
async def test_the_teacher_runs_a_lesson_from_the_panel_and_a_student_watches_it(
    tmp_path: Path, browser: Browser
) -> None:
    async with demo(tmp_path) as daemon:
        teacher = await browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=True)
        student = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        try:
            home = await teacher.new_page()
            await home.goto(f"{daemon.url}/")
            await home.wait_for_function("window.classboxHome && window.classboxHome.events.readyState === 1")
            panel = await panel_page(teacher, daemon.url)
            assert await panel.get_attribute("html", "dir") == "ltr"
            await panel.wait_for_selector("#items button.open")  # the cache's courseware, no network needed
            assert await panel.locator("#course option").count() >= 2
            await screenshot(panel, "panel-idle-en")

            await panel.fill("#title", "Fractions")
            await panel.select_option("#course", "welcome/index.html")
            await panel.tap("#start")  # one touch
            await panel.wait_for_selector("#on-air:not([hidden])")
            code = (await panel.text_content("#join-code") or "").strip()
            link = (await panel.text_content("#join-link") or "").strip()
            assert link == f"{daemon.url}/watch/{code}"
            assert await panel.text_content("#live-title") == "Fractions"
            await home.wait_for_selector("#lesson.live >> text=Fractions")  # the home page, without a reload
            assert await home.get_attribute("#join", "href") == f"/watch/{code}"
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await home.screenshot(path=str(SCREENSHOTS / "home-en-1280x800.png"))

            await panel.wait_for_selector("#qr[src]")
            await panel.wait_for_function("document.getElementById('qr').naturalWidth > 0")
            assert await asyncio.to_thread(decode_qr, await panel.locator("#qr").screenshot()) == link
            await panel.tap("#qr-open")  # full screen, for the back of the room
            await panel.wait_for_selector("#qr-dialog[open]")
            large = await panel.locator("#qr-large").bounding_box()
            assert large is not None
            assert large["height"] >= 540  # most of the panel's 800 px
            assert await asyncio.to_thread(decode_qr, await panel.locator("#qr-large").screenshot()) == link
            await panel.tap("#qr-close")
            await wait_frames(panel, "window.classboxPanel.preview && window.classboxPanel.preview.pc")

            watch = await student.new_page()
            await watch.goto(link)
            await wait_frames(watch, "window.classboxWatch.pc")
            await panel.wait_for_selector("#watching >> text=Students watching: 1")  # the preview is no student
            await watch.wait_for_selector("#hand:not([disabled])")
            await watch.tap("#hand")
            hand = panel.locator("#hands .hand")
            await hand.wait_for()
            assert "raised a hand" in (await hand.text_content() or "")
            await screenshot(panel, "panel-live-en")

            await panel.tap("#hands .hand .speak")
            await watch.wait_for_selector(f"text={TEXT['hand_acknowledged']}")
            await panel.wait_for_selector("#hands .hand", state="detached")

            await panel.tap("#mute")
            await panel.wait_for_selector('#mute[aria-pressed="true"]')
            assert (await asyncio.to_thread(http_json, f"{daemon.url}/api/microphone"))[1]["muted"] is True
            await panel.wait_for_function("document.getElementById('level').style.inlineSize === '0%'")
            await panel.tap("#mute")
            await panel.wait_for_selector('#mute[aria-pressed="false"]')
            assert (await asyncio.to_thread(http_json, f"{daemon.url}/api/microphone"))[1]["muted"] is False

            await panel.tap("#stop")
            await panel.wait_for_selector("#confirm-stop[open]")
            assert (await current_lesson(daemon.url))["state"] == "live"  # asked, not yet stopped
            await panel.tap("#stop-cancel")
            assert (await current_lesson(daemon.url))["state"] == "live"
            await panel.tap("#stop")
            await panel.tap("#stop-confirm")
            await panel.wait_for_selector("#on-air", state="hidden")
            await panel.wait_for_selector("#start-card:not([hidden])")
            await watch.wait_for_selector(f"text={TEXT['ended']}")
            assert await current_lesson(daemon.url) is None
            await home.wait_for_selector("#lesson:not(.live)")
            await panel.wait_for_selector("#recordings li[data-recording]")  # today's recording, with its state
        finally:
            await student.close()
            await teacher.close()


@pytest.mark.slow
@pytest.mark.browser
async def test_the_panel_in_khmer_reads_in_khmer_with_the_boxs_font_and_runs_a_lesson(
    tmp_path: Path, browser: Browser
) -> None:
    async with demo(tmp_path) as daemon:
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=True)
        await context.add_cookies([{"name": "classbox_lang", "value": "km", "url": daemon.url}])
        try:
            panel = await panel_page(context, daemon.url)
            assert await panel.get_attribute("html", "lang") == "km"
            assert await panel.get_attribute("html", "dir") == "ltr"
            await panel.wait_for_selector("#items button.open")
            start_words = await panel.locator("#start").inner_text()
            assert re.search("[\u1780-\u17ff]", start_words), start_words  # Khmer letters, not the English msgid
            khmer_face = "[...document.fonts].some(f => f.status === 'loaded' && f.unicodeRange.includes('1780'))"
            await panel.wait_for_function(khmer_face)  # the box's own Khmer font: a school PC may have none
            await screenshot(panel, "panel-idle-km", ((1280, 800),))
            await panel.tap("#start")
            await panel.wait_for_selector("#on-air:not([hidden])")
            await wait_frames(panel, "window.classboxPanel.preview && window.classboxPanel.preview.pc", 2)
            await screenshot(panel, "panel-live-km", ((1280, 800),))
            await panel.tap("#stop")
            await panel.tap("#stop-confirm")
            await panel.wait_for_selector("#start-card:not([hidden])")
            assert await current_lesson(daemon.url) is None
        finally:
            await context.close()


@pytest.mark.slow
@pytest.mark.browser
async def test_the_panel_in_arabic_is_right_to_left_and_starts_and_stops_the_lesson(
    tmp_path: Path, browser: Browser
) -> None:
    async with demo(tmp_path) as daemon:
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=True)
        await context.add_cookies([{"name": "classbox_lang", "value": "ar", "url": daemon.url}])  # the switch's choice
        try:
            panel = await panel_page(context, daemon.url)
            assert await panel.get_attribute("html", "dir") == "rtl"
            assert await panel.get_attribute("html", "lang") == "ar"
            await panel.wait_for_selector("#items button.open")
            start = await panel.locator("#start").bounding_box()
            title = await panel.locator("#title").bounding_box()
            assert start is not None
            assert title is not None
            assert start["height"] >= 48
            await screenshot(panel, "panel-idle-ar")
            await panel.tap("#start")
            await panel.wait_for_selector("#on-air:not([hidden])")
            await wait_frames(panel, "window.classboxPanel.preview && window.classboxPanel.preview.pc", 2)
            on_air = await panel.locator("#on-air").bounding_box()
            name = await panel.locator(".top .box-name").bounding_box()
            assert on_air is not None
            assert name is not None
            assert on_air["x"] < name["x"]  # mirrored: the box's name on the right, ON AIR to its left
            await screenshot(panel, "panel-live-ar")
            await panel.tap("#stop")
            await panel.tap("#stop-confirm")
            await panel.wait_for_selector("#start-card:not([hidden])")
            assert await current_lesson(daemon.url) is None
        finally:
            await context.close()


@pytest.mark.browser
async def test_a_browser_elsewhere_shows_the_pin_once_and_sees_the_signal_checks_before_the_lesson(
    tmp_path: Path, browser: Browser
) -> None:
    config = small_config(tmp_path)
    config.web.panel_addresses = ["192.0.2.1/32"]  # this browser is a tablet on the LAN, not the panel
    config.web.teacher_pin_hash = PIN_HASH
    async with live_box(config, with_devices=False) as live:
        # Raised as the signal check would (the box's own check sees the synthetic tone and would clear its own).
        live.box.services.alarms.raise_alarm("drill.microphone-silent", N_("Microphone is silent: is it muted?"))
        context = await browser.new_context(viewport={"width": 800, "height": 480}, has_touch=True)
        try:
            page = await context.new_page()
            await page.goto(f"{live.base}/panel")
            await page.wait_for_selector("#pin-form")
            assert await page.locator("#start").count() == 0
            await page.fill("#pin", "1111")
            await page.tap("#pin-submit")
            await page.wait_for_selector("#pin-error:not([hidden])")
            await page.fill("#pin", PIN)
            await page.tap("#pin-submit")
            await page.wait_for_selector("#start")
            await page.wait_for_selector("#status li.warning >> text=Microphone is silent: is it muted?")
            cookies = await context.cookies()
            session = next(c for c in cookies if c["name"] == "classbox_teacher")
            assert session["httpOnly"] is True
            assert session["sameSite"] == "Strict"
            assert session["expires"] == -1  # gone with the browser session
            assert await page.evaluate("document.cookie") == ""  # no script can read it

            other = await context.new_page()  # the same browser session: no second PIN
            await other.goto(f"{live.base}/panel")
            await other.wait_for_selector("#start")
            live.box.services.alarms.clear_alarm("drill.microphone-silent")
            await other.wait_for_selector('#status li[data-key="drill.microphone-silent"]', state="detached")
            await other.tap("#start")
            await until(lambda: live.box.current_lesson() is not None, what="the lesson started with the session")
            lesson = live.box.current_lesson()
            assert lesson is not None
            assert lesson.started_by.startswith("teacher@")
            await other.wait_for_selector("#on-air:not([hidden])")
        finally:
            await context.close()
        async with httpx.AsyncClient(base_url=live.base, verify=False) as client:
            assert (await client.post("/api/lessons/current/stop")).status_code == 401
