"""The student page in headless Chromium: plays video and audio, raises a hand, data saver, lesson end."""

from __future__ import annotations

import asyncio
import http.client
import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.stream_fixture import live_box, small_config, until

INBOUND = """async () => {
  const pc = window.classboxWatch && window.classboxWatch.pc;
  if (!pc) return {};
  const out = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp') out[s.kind] = {
      frames: s.framesDecoded || 0, width: s.frameWidth || 0, samples: s.totalSamplesReceived || 0,
      packets: s.packetsReceived || 0 };
  });
  return out;
}"""


# What the English page says (the msgids of static/watch.js; other languages: tests/test_languages.py).
TEXT = {
    "not_started": "This lesson has not started yet. This page will start playing as soon as it does.",
    "connected": "Live",
    "lower_hand": "Lower hand",
    "hand_acknowledged": "The teacher has seen your hand.",
    "ended": "This lesson has ended. Thank you for watching.",
}


async def inbound(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(INBOUND)
    return result


async def wait_inbound(page: Page, ok: Any, within: float = 20.0) -> dict[str, Any]:
    stats: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal stats
        stats = await inbound(page)
        return bool(ok(stats))

    for _ in range(int(within / 0.25)):
        if await check():
            return stats
        await page.wait_for_timeout(250)
    shown = await page.evaluate(
        "[document.getElementById('state').textContent, document.getElementById('message').textContent]"
    )
    raise AssertionError(f"no media in the browser: {stats}; the page shows {shown}")


@pytest.mark.slow
@pytest.mark.browser
async def test_student_page_plays_the_lesson_and_talks_to_the_box(tmp_path: Path, browser: Browser) -> None:
    text = TEXT
    async with live_box(small_config(tmp_path)) as live:
        page = await browser.new_page()
        code = "abcdef"
        await page.goto(f"{live.base}/watch/{code}")
        await page.wait_for_selector(f"text={text['not_started']}")

        lesson = await live.start_lesson("Fractions")
        await page.goto(f"{live.base}/watch/{lesson.join_code}")
        assert await page.text_content("#title") == "Fractions"
        live.hub.monitor_interval_s = 0.3
        await wait_inbound(
            page, lambda s: s.get("video", {}).get("frames", 0) > 5 and s.get("audio", {}).get("samples", 0) > 0
        )
        await page.wait_for_selector(f"#state:has-text('{text['connected']}')")
        # Chromium negotiates transport-cc: it starts on the lowest layer and its transport feedback (not REMB)
        # gives the box the estimate its probes climb by, to the high layer on an open link.
        await until(lambda: live.hub.viewers()[0]["estimate_kbps"] is not None, 15.0, "Chromium's transport feedback")
        await until(lambda: live.hub.viewers()[0]["layer"] == "high", 20.0, "the climb to the high layer")
        await wait_inbound(page, lambda s: s.get("video", {}).get("width") == 640)
        viewer = live.hub.viewer(live.hub.viewers()[0]["id"])
        assert viewer is not None
        climbed = viewer.switches_total
        await asyncio.sleep(1.5)  # several checks on an open link: none steps the viewer down
        assert viewer.layer == "high"
        assert viewer.switches_total == climbed

        await page.click("#hand")
        await until(lambda: live.hub.viewers() and live.hub.viewers()[0]["hand_raised"], what="hand raised")
        await page.wait_for_selector(f"#hand:has-text('{text['lower_hand']}')")
        live.hub.acknowledge_hand(live.hub.viewers()[0]["id"])
        await page.wait_for_selector(f"text={text['hand_acknowledged']}")

        await page.check("#data-saver")
        await until(lambda: live.hub.viewers()[0]["layer"] == "low", what="data saver layer")
        await wait_inbound(page, lambda s: s.get("video", {}).get("width") == 320)

        first_pc = await page.evaluate_handle("window.classboxWatch.pc")
        live.media.fanout.close()  # as a restart of the media component would
        await live.hub.check_viewers()
        await page.wait_for_function("pc => window.classboxWatch.pc && window.classboxWatch.pc !== pc", arg=first_pc)
        await wait_inbound(page, lambda s: s.get("video", {}).get("frames", 0) > 3)
        assert live.hub.count == 1

        await live.box.stop_lesson("panel")
        await page.wait_for_selector(f"text={text['ended']}")
        assert live.hub.count == 0
        await page.close()


@pytest.mark.slow
@pytest.mark.browser
async def test_phone_sized_touch_screen_plays_with_controls_in_reach(tmp_path: Path, browser: Browser) -> None:
    async with live_box(small_config(tmp_path)) as live:
        phone = await browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2
        )
        try:
            page = await phone.new_page()
            lesson = await live.start_lesson("Biology")
            await page.goto(f"{live.base}/watch/{lesson.join_code}")
            await wait_inbound(page, lambda s: s.get("video", {}).get("frames", 0) > 3)
            for selector in ("video", "#hand", "#data-saver"):
                box = await page.locator(selector).bounding_box()
                assert box is not None
                assert box["x"] >= 0
                assert box["x"] + box["width"] <= 390
                assert box["y"] + box["height"] <= 844
            await page.wait_for_selector("#hand:not([disabled])")
            await page.tap("#hand")
            await until(lambda: live.hub.viewers() and live.hub.viewers()[0]["hand_raised"], what="hand raised")
        finally:
            await phone.close()


def raw_get(port: int, path: str) -> tuple[int, str]:
    """(status, body) for GET `path` sent exactly as written: no client normalises the dots away."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


async def test_paths_that_climb_out_of_watch_reach_no_page_and_no_file(tmp_path: Path) -> None:
    async with live_box(small_config(tmp_path), with_devices=False) as live:
        port = live.box.config.web.port
        answers = {
            "/watch/../etc": "Not Found",  # two segments: no route has that shape
            "/watch/..%2Fetc%2Fpasswd": "Not Found",  # the router decodes %2F into a slash first
            "/watch/..": "not a join code",  # one segment: the join-code check refuses it
            "/watch/%2e%2e": "not a join code",
            "/watch/abc%00def": "not a join code",
        }
        for path, detail in answers.items():
            status, body = await asyncio.to_thread(raw_get, port, path)
            assert (status, json.loads(body)["detail"]) == (404, detail), path
        status, body = await asyncio.to_thread(raw_get, port, "/watch/abcdef")  # a well-formed code: the page
        assert status == 200
        assert "<video" in body
