"""A course page in Chromium, on the panel's own (teacher) address: it renders, but its scripts cannot use the API."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from playwright.async_api import Browser

from edge.courseware.cache import CoursewareComponent
from sync.publish import publish
from tests.stream_fixture import live_box, small_config, until

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Fractions</title></head><body>
<h1 id="title">Fractions</h1>
<img id="pic" src="pic.png" alt="a picture">
<video id="clip" src="clip.webm" muted preload="auto"></video>
<pre id="out">running</pre>
<script>
const out = {};
const show = () => { document.getElementById('out').textContent = JSON.stringify(out); };
fetch('/api/lessons/current/stop', {method: 'POST'})
  .then(r => { out.stop = 'answered ' + r.status; }, e => { out.stop = 'failed: ' + e.name; }).finally(show);
fetch('/api/recordings')
  .then(r => r.text()).then(t => { out.recordings = 'read: ' + t; }, e => { out.recordings = 'failed: ' + e.name; })
  .finally(show);
</script></body></html>
"""


def write_course(src: Path) -> None:
    """A course with a page that attacks the API, a picture, a video clip and a PDF."""
    course = src / "math"
    course.mkdir(parents=True)
    (course / "course.json").write_text(json.dumps({"title": "Mathematics 7"}))
    (course / "index.html").write_text(PAGE)
    picture = np.zeros((60, 80, 3), dtype=np.uint8)
    picture[:, :40] = (0, 160, 40)
    (course / "pic.png").write_bytes(cv2.imencode(".png", picture)[1].tobytes())
    (course / "slides.pdf").write_bytes(
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "1"]
        + ["-c:v", "libvpx", "-b:v", "200k", str(course / "clip.webm")],
        check=True,
        timeout=60,
    )


async def test_a_course_page_renders_but_its_scripts_cannot_stop_the_lesson_or_read_recordings(
    tmp_path: Path, browser: Browser
) -> None:
    await asyncio.to_thread(write_course, tmp_path / "src")
    await asyncio.to_thread(publish, tmp_path / "src", tmp_path / "repo", tmp_path / "keys")
    config = small_config(tmp_path)
    config.courseware.repo_url = str(tmp_path / "repo")
    config.courseware.trusted_root = str(tmp_path / "repo" / "metadata" / "1.root.json")
    async with live_box(config) as live:
        cw = live.box.courseware
        assert isinstance(cw, CoursewareComponent)
        await until(lambda: cw is not None and cw.health().status == "ok" and "version 1" in cw.health().detail)
        lesson = await live.start_lesson()
        page = await browser.new_page()  # on loopback: the panel's address, which acts as the teacher
        try:
            await page.goto(f"{live.base}/courseware/math/index.html")
            await page.wait_for_function("document.getElementById('out').textContent.includes('recordings')")
            await page.wait_for_function("document.getElementById('out').textContent.includes('stop')")
            results = json.loads(await page.text_content("#out") or "{}")
            assert results["stop"].startswith("failed"), results
            assert results["recordings"].startswith("failed"), results
            assert await page.text_content("#title") == "Fractions"  # the page still renders
            await page.wait_for_function("document.getElementById('pic').complete")
            assert await page.evaluate("document.getElementById('pic').naturalWidth") == 80
            await page.wait_for_function("document.getElementById('clip').readyState >= 1", timeout=10_000)
            assert await page.evaluate("document.getElementById('clip').videoWidth") == 160
        finally:
            await page.close()
        current = live.box.current_lesson()
        assert current is not None
        assert (current.id, current.state) == (lesson.id, "live")  # the lesson stays live
        client = await asyncio.to_thread(httpx.AsyncClient, base_url=live.base)  # TLS set-up is slow: not on the loop
        async with client:
            pdf = await client.get("/courseware/math/slides.pdf")
            page_response = await client.get("/courseware/math/index.html")
        assert pdf.status_code == 200
        assert "content-security-policy" not in pdf.headers  # the board's PDF viewer stays usable
        assert pdf.headers["x-content-type-options"] == "nosniff"
        policy = page_response.headers["content-security-policy"]
        assert "sandbox" in policy
        assert "allow-same-origin" not in policy
