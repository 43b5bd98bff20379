"""The web door in headless Chromium: pages from another origin cannot act as the teacher; the home page."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from playwright.async_api import Browser

from tests.helpers import free_port
from tests.stream_fixture import live_box, small_config, until

pytestmark = [pytest.mark.slow, pytest.mark.browser]

anyio.open_file  # noqa: B018 (its lazy first import would otherwise run on the test's loop, serving a file)

ATTACK_PAGE = """<!doctype html>
<html><body>
<form id="stop" method="post" action="{box}/api/lessons/current/stop"><button>Stop</button></form>
<script>
  window.noCors = () => fetch("{box}/api/lessons/current/stop", {{method: "POST", mode: "no-cors"}})
    .then(() => "sent", (err) => String(err));
  window.noCorsJson = () => fetch("{box}/api/lessons", {{method: "POST", mode: "no-cors",
    headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{title: "Forged"}})}})
    .then(() => "sent", (err) => String(err));
</script>
</body></html>"""


@contextlib.asynccontextmanager
async def other_origin(page_html: str) -> AsyncIterator[str]:
    """A second web server on another port of 127.0.0.1 that serves one page; yields its URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            body = page_html.encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_page_from_another_origin_cannot_stop_the_lesson_from_the_panels_browser(
    tmp_path: Path, browser: Browser
) -> None:
    async with live_box(small_config(tmp_path), with_devices=False) as live:
        lesson = await live.start_lesson("History")
        page = await browser.new_page()  # the kiosk: a panel address, so the box takes it for the teacher
        async with other_origin(ATTACK_PAGE.format(box=live.base)) as evil:
            await page.goto(evil)
            assert await page.evaluate("window.noCors()") == "sent"
            assert await page.evaluate("window.noCorsJson()") == "sent"
            async with page.expect_navigation():
                await page.click("#stop button")
            assert "must come from the box's own pages" in (await page.content())
        current = live.box.current_lesson()
        assert current is not None
        assert current.id == lesson.id
        await page.goto(f"{live.base}/healthz")  # the box's own origin
        status = await page.evaluate("fetch('/api/lessons/current/stop', {method: 'POST'}).then((r) => r.status)")
        assert status == 200
        await until(lambda: live.box.current_lesson() is None, what="the lesson to stop")
        started = await page.evaluate(
            """fetch('/api/lessons', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                      body: JSON.stringify({title: 'Own page'})}).then((r) => r.status)"""
        )
        assert started == 201
        await page.close()


async def test_home_page_names_the_box_and_links_its_doors(tmp_path: Path, browser: Browser) -> None:
    config = small_config(tmp_path)
    config.box.name = "Room 12 <Science>"
    async with live_box(config, with_devices=False) as live:
        lesson = await live.start_lesson("Photosynthesis")
        await until(lambda: live.box.health()["components"]["courseware"]["status"] != "starting", what="courseware")
        for width, height in ((1280, 800), (390, 844)):
            context = await browser.new_context(viewport={"width": width, "height": height})
            page = await context.new_page()
            await page.goto(f"{live.base}/")  # from the panel's own browser: the teacher
            assert await page.text_content("h1") == "Room 12 <Science>"
            assert await page.get_attribute("html", "lang") == "en"
            assert await page.get_attribute("html", "dir") == "ltr"
            assert "A lesson is live: Photosynthesis" in await page.text_content("#lesson")
            assert await page.evaluate("document.documentElement.scrollWidth") <= width
            await page.screenshot(path=str(tmp_path / f"home-{width}x{height}.png"), full_page=True)
            for door in ("#health", "#courseware"):
                target = await page.get_attribute(door, "href")
                answer = await page.request.get(f"{live.base}{target}")
                assert answer.status == 200, (door, answer.status)
            await page.click("#join")
            await page.wait_for_url(f"{live.base}/watch/{lesson.join_code}")
            assert await page.text_content("#title") == "Photosynthesis"
            await context.close()
        live.box.config.web.panel_addresses = ["192.0.2.1/32"]  # now this browser is anyone on the LAN
        page = await browser.new_page()
        await page.goto(f"{live.base}/")
        assert await page.locator("#join").count() == 0
        assert lesson.join_code not in await page.content()
        assert await page.locator("#health").count() == 1
        live.box.config.box.language = "ar"
        await page.reload()
        assert await page.get_attribute("html", "dir") == "rtl"
        await page.close()
