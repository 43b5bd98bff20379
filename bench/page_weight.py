"""The bytes a student's page costs in each language: HTML, CSS, scripts, catalog and fonts, as Chromium fetched them.

    python bench/page_weight.py

Starts `classbox demo` on loopback and opens a join page (a lesson not started yet, so no media
flows) once per language in a fresh Chromium context (an empty cache, as a student's first visit).
Prints one row per language: bytes on the wire by kind, and the font files fetched.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from _webrtc import REPO, classbox

sys.path.insert(0, str(REPO))  # before bench/: its sync.py would shadow the sync package

from edge.doors.web.i18n import LANGUAGE_COOKIE, LANGUAGES  # noqa: E402
from tests.browser import chromium  # noqa: E402

KINDS = {"Document": "html", "Stylesheet": "css", "Script": "js", "Font": "fonts", "Fetch": "catalog"}


async def weigh(browser: Any, base: str, language: str) -> tuple[dict[str, int], list[str]]:
    """Bytes on the wire by kind for one first visit of the join page in `language`, and the fonts fetched."""
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    await context.add_cookies([{"name": LANGUAGE_COOKIE, "value": language, "url": base}])
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    requests: dict[str, tuple[str, str]] = {}
    sizes: dict[str, int] = dict.fromkeys(KINDS.values(), 0)
    fonts: list[str] = []

    def received(event: dict[str, Any]) -> None:
        requests[event["requestId"]] = (event["type"], event["response"]["url"])

    def finished(event: dict[str, Any]) -> None:
        kind, url = requests.get(event["requestId"], ("", ""))
        if kind == "Fetch" and "/i18n/" not in url:
            return  # the page asking whether the lesson is live: not what the language costs
        if kind in KINDS:
            sizes[KINDS[kind]] += int(event["encodedDataLength"])
        if kind == "Font":
            fonts.append(url.rsplit("/", 1)[-1])

    cdp.on("Network.responseReceived", received)
    cdp.on("Network.loadingFinished", finished)
    await cdp.send("Network.enable")
    await page.goto(f"{base}/watch/abcdef", wait_until="networkidle")
    await page.evaluate("document.fonts.ready.then(() => true)")
    await page.wait_for_timeout(500)
    await context.close()
    return sizes, fonts


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-weight-") as folder, classbox(Path(folder) / "box.log") as (_, whep):
        base = whep.split("/whep/")[0]
        async with chromium() as browser:
            print("language    html    css     js catalog   fonts   total  fonts fetched")
            for language in LANGUAGES:
                sizes, fonts = await weigh(browser, base, language)
                total = sum(sizes.values())
                print(
                    f"{language:9} {sizes['html']:6} {sizes['css']:6} {sizes['js']:6} {sizes['catalog']:7} "
                    f"{sizes['fonts']:7} {total:7}  {', '.join(fonts) or '-'}"
                )


if __name__ == "__main__":
    asyncio.run(main())
