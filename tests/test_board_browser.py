"""The board end to end: Chromium draws on `/board`, an aiortc student gets the strokes on its data
channel, Chromium on `/watch` draws them over the video, and a late joiner gets the page and its ink."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pypdfium2  # type: ignore[import-untyped]
import pytest
from playwright.async_api import Browser, Page

from edge.demo import prepare_demo_courseware
from edge.doors.web.i18n import LANGUAGE_COOKIE
from tests.stream_fixture import join, live_box, small_config, until
from tests.test_events import plain_client

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "docs" / "screenshots"
INKED = """() => {
  const c = document.querySelector("#%s canvas");
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
  return n;
}"""


async def draw(page: Page, points: list[tuple[float, float]]) -> None:
    """Drag the mouse over the board through `points` (0..1 of the board)."""
    box = await page.locator("#ink canvas").bounding_box()
    assert box is not None
    at = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    await page.mouse.move(*at[0])
    await page.mouse.down()
    for x, y in at[1:]:
        await page.mouse.move(x, y, steps=4)
    await page.mouse.up()


def of(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("type") == kind]


async def shoot(page: Page, name: str, language: str, width: int, height: int) -> None:
    await page.set_viewport_size({"width": width, "height": height})
    await page.wait_for_timeout(150)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}-{language}-{width}x{height}.png"))


@pytest.mark.slow
@pytest.mark.browser
async def test_ink_drawn_on_the_board_reaches_students_live_and_late(tmp_path: Path, browser: Browser) -> None:
    config = small_config(tmp_path)
    config.recording.enabled = True  # the board is exported from the recording's ink log
    await asyncio.to_thread(prepare_demo_courseware, config)
    async with live_box(config) as live, plain_client(live.base) as client:

        async def cached() -> bool:
            listing = await client.get("/api/courseware")
            items = [i for c in listing.json().get("courses", []) for i in c["items"]] if listing.is_success else []
            return len(items) == 3 and all(i["state"] == "cached" for i in items)

        for _ in range(300):
            if await cached():
                break
            await asyncio.sleep(0.1)
        opened = await client.post("/api/board/open", json={"course": "welcome", "path": "worksheet.pdf"})
        assert opened.status_code == 200, opened.text
        assert opened.json()["opened"]["pages"] == 2
        rendered = await client.get("/board/render/welcome/worksheet.pdf", params={"page": 1})
        assert rendered.status_code == 200
        assert rendered.content.startswith(b"\x89PNG")
        assert (await client.get("/board/render/welcome/worksheet.pdf", params={"page": 2})).status_code == 404
        lesson = await live.start_lesson("Board")
        student = await join(client, f"/whep/{lesson.join_code}")
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            await until(lambda: student.channel.readyState == "open", what="the student's data channel")
            await until(lambda: of(student.messages, "board.state"), what="the board's state on welcome")
            assert of(student.messages, "board.state")[0]["page"]["image"].endswith("worksheet.pdf?page=0")

            board = await context.new_page()
            await board.goto(f"{live.base}/board")
            await board.wait_for_function("window.classboxBoard && window.classboxBoard.ink.page")
            assert await board.locator("#page-number").text_content() == "Page 1 of 2"
            await board.click("button[data-colour='#d0021b']")
            await draw(board, [(0.1, 0.2), (0.3, 0.25), (0.5, 0.2), (0.5, 0.6)])
            await until(lambda: of(student.messages, "board.stroke.end"), what="the stroke's end on the data channel")
            (begin,) = of(student.messages, "board.stroke.begin")
            assert begin["color"] == "#d0021b"
            assert begin["tool"] == "pen"
            points = begin["points"] + [p for m in of(student.messages, "board.stroke.points") for p in m["points"]]
            assert 3 <= len(points) <= 16  # a polyline of four corners, simplified from what the mouse sent
            assert points[0][:2] == pytest.approx([0.1, 0.2], abs=0.01)
            assert points[-1][:2] == pytest.approx([0.5, 0.6], abs=0.01)

            watch = await context.new_page()  # a student who joins late: the page and its stroke at once
            await watch.goto(f"{live.base}/watch/{lesson.join_code}")
            await watch.wait_for_function("window.classboxWatch && window.classboxWatch.ink.strokes.size === 1")
            image = await watch.locator("#board img").get_attribute("src")
            assert image == "/board/render/welcome/worksheet.pdf?page=0"
            await watch.wait_for_function(f"({INKED % 'board'})() > 50")

            await draw(board, [(0.6, 0.7), (0.9, 0.7)])  # and live, while watching
            await watch.wait_for_function("window.classboxWatch.ink.strokes.size === 2")
            await board.click("#undo")
            await watch.wait_for_function("window.classboxWatch.ink.strokes.size === 1")
            await shoot(board, "board", "en", 1280, 800)
            await shoot(watch, "watch-board", "en", 390, 844)

            await board.click("#next")
            await watch.wait_for_function(
                "document.querySelector('#board img').getAttribute('src').endsWith('page=1')"
                " && window.classboxWatch.ink.strokes.size === 0"
            )
            assert await board.locator("#page-number").text_content() == "Page 2 of 2"
            await board.click("#previous")  # each page keeps its ink
            await watch.wait_for_function("window.classboxWatch.ink.strokes.size === 1")
            assert of(student.messages, "board.undo")
            assert len(of(student.messages, "board.page")) == 2

            refused = await client.post("/api/board/ink", json={"ops": [{"op": "points", "id": "nobody"}]})
            assert refused.status_code == 400
            assert "no stroke nobody" in refused.json()["detail"]
            await context.add_cookies([{"name": LANGUAGE_COOKIE, "value": "ar", "url": live.base}])
            await board.goto(f"{live.base}/board")
            await board.wait_for_function("window.classboxBoard && window.classboxBoard.ink.strokes.size === 1")
            assert await board.locator("html").get_attribute("dir") == "rtl"
            await shoot(board, "board", "ar", 800, 480)

            assert (await client.post("/api/lessons/current/stop")).status_code == 200

            async def recorded() -> dict[str, Any] | None:
                listed = (await client.get("/api/recordings")).json()["recordings"]
                return listed[0] if listed and listed[0]["state"] == "ready" else None

            for _ in range(300):
                if recording := await recorded():
                    break
                await asyncio.sleep(0.1)
            assert recording is not None
            exported = await client.get(recording["board"])
            assert exported.status_code == 200
            assert exported.headers["content-type"] == "application/pdf"
            pdf = pypdfium2.PdfDocument(exported.content)
            try:
                assert len(pdf) == 2  # the worksheet's two pages, as shown in the lesson
                kinds = [obj.type for obj in pdf[0].get_objects()]
                assert kinds.count(pypdfium2.raw.FPDF_PAGEOBJ_IMAGE) == 1
                assert kinds.count(pypdfium2.raw.FPDF_PAGEOBJ_PATH) == 1  # the red stroke; the undone one is gone
            finally:
                pdf.close()
            assert (await client.get("/api/recordings/nothing/board.pdf")).status_code == 404
        finally:
            await context.close()
            await student.close(client)
