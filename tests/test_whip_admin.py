"""The admin page's "Live to cloud" settings against a real SFU: a wrong token is said plainly, the right one works.

The daemon is `classbox demo` on loopback; Janus and simple-whip-server run in a namespace of their
own (tests/servers/janus_sfu.py) that the daemon reaches over a veth pair.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.helpers import REPO, DaemonProcess, http_json
from tests.servers.janus_sfu import Sfu, available, running_sfu
from tests.test_admin import admin, config_of, field

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(bool(available()), reason=available() or "ok"),
]

SCREENSHOTS = REPO / "docs" / "screenshots"
TOKEN, WRONG = "right-token-7d1e", "wrong-token-0000"


@pytest.fixture(scope="module")
def sfu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sfu]:
    with running_sfu(tmp_path_factory.mktemp("whip-admin-sfu")) as server:
        server.create_endpoint("room12", TOKEN, label="room12")
        yield server


@pytest.fixture
def daemon(tmp_path: Path, sfu: Sfu) -> Iterator[DaemonProcess]:
    """The box with the cloud server set up, but the wrong token."""
    tmp, token = tmp_path, WRONG
    config = tmp / "classbox.toml"
    config.write_text(
        f'[uplink]\nmode = "both"\nwhip_url = "{sfu.endpoint_url("room12")}"\ntoken = "{token}"\n'
        'player_url = "https://watch.example.org/{join_code}"\n\n'
        "[stream.high]\nwidth = 640\nheight = 360\nfps = 15\nkbps = 600\n\n"
        '[[cameras]]\nname = "front"\nwidth = 640\nheight = 360\nfps = 15\n'
    )
    daemon = DaemonProcess(tmp / "state", "--config", str(config))
    try:
        daemon.wait_healthy(60)
        yield daemon
    finally:
        daemon.terminate(15)


async def shoot(page: Page, name: str) -> None:
    await page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


async def test_a_wrong_token_is_said_plainly_on_the_admin_page_and_the_right_one_publishes(
    browser: Browser, daemon: DaemonProcess
) -> None:
    status, started = await asyncio.to_thread(http_json, daemon.url + "/api/lessons", "POST", {"title": "Maps"})
    assert status == 201, started
    who = await admin(browser, daemon)
    page = await who.open("/admin/settings/cloud")
    await expect(page.locator("#cloud-state")).to_have_attribute("data-state", "refused", timeout=15_000)
    await expect(page.locator("#cloud-state")).to_contain_text("refused the token")
    await expect(page.locator("#cloud-error")).to_contain_text("HTTP 403")
    assert WRONG not in await page.content()  # the secret is never sent back to the page
    await page.click("#cloud-check")
    await expect(page.locator("#cloud-check-result")).to_contain_text("It does not work: the cloud server refused")
    for width, height in ((1280, 800), (390, 844)):
        await page.set_viewport_size({"width": width, "height": height})
        await shoot(page, f"admin-cloud-en-{width}x{height}.png")

    await field(page, "uplink.token").locator("input").fill(TOKEN)
    await page.click("#settings button[type=submit]")
    await expect(page.locator("#status")).to_contain_text("Saved")
    assert config_of(daemon)["uplink"]["token"] == TOKEN
    await expect(page.locator("#cloud-state")).to_have_attribute("data-state", "publishing", timeout=30_000)
    await expect(page.locator("#cloud-error")).to_have_text("")
    await page.click("#cloud-check")
    await expect(page.locator("#cloud-check-result")).to_contain_text("It works")
    await page.close()

    panel = await who.context.new_page()  # the browser is on loopback: a panel address, the teacher
    await panel.goto(daemon.url + "/panel")
    await expect(panel.locator("#status")).to_contain_text("Live to cloud", timeout=15_000)
    await expect(panel.locator("main.board")).to_contain_text(
        "https://watch.example.org/"
    )  # the join link: the SFU's player
    await panel.screenshot(path=str(SCREENSHOTS / "panel-cloud-en-1280x800.png"))
    await panel.close()

    status, health = await asyncio.to_thread(http_json, daemon.url + "/healthz")
    assert health["components"]["uplink"]["uplink_publishing"] == 1
    status, lesson = await asyncio.to_thread(http_json, daemon.url + "/api/lessons/current")
    assert status == 200

    answer = await who.api("/api/admin/settings/identity", "PUT", {"values": {"box": {"language": "ar"}}})
    assert answer[0] == 200, answer
    arabic = await who.open("/admin/settings/cloud")
    assert await arabic.get_attribute("html", "dir") == "rtl"
    await expect(arabic.locator("#cloud-state")).to_have_attribute("data-state", "publishing", timeout=15_000)
    for width, height in ((1280, 800), (800, 480), (390, 844)):
        await arabic.set_viewport_size({"width": width, "height": height})
        await shoot(arabic, f"admin-cloud-ar-{width}x{height}.png")
    await arabic.close()
