"""The admin page in Debian's Chromium, driving the real daemon: settings forms, history, logs, diagnostics.

The daemon runs as `classbox demo` with a config file of its own (the history sampled every second so
the graphs fill in seconds); the browser is on loopback, which the admin stand-in takes for the admin.
"""

from __future__ import annotations

import asyncio
import io
import tomllib
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Dialog, Page, expect

from tests.helpers import REPO, DaemonProcess

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCREENSHOTS = REPO / "docs" / "screenshots"
UPLOAD_TOKEN = "tok-9f2c1d77e0a4"
TURN_PASSWORD = "turn-pass-51c0b3"
TEACHER_PIN = "482915"
CONFIG = f"""
[box]
name = "Grade 5, Room 12"
room = "12"

[metrics]
interval_s = 1

[upload]
token = "{UPLOAD_TOKEN}"

[[stream.ice_servers]]
urls = ["turn:turn.school.example:3478"]
username = "box"
credential = "{TURN_PASSWORD}"
"""


def _start(tmp: Path) -> DaemonProcess:
    config = tmp / "classbox.toml"
    if not config.exists():
        config.write_text(CONFIG)
    daemon = DaemonProcess(tmp / "state", "--config", str(config))
    daemon.wait_healthy(60)
    return daemon


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the tests that leave its settings as they found them."""
    daemon = _start(tmp_path_factory.mktemp("admin"))
    yield daemon
    daemon.terminate(15)


def config_of(daemon: DaemonProcess) -> dict[str, Any]:
    """The daemon's config file as it is on disk now."""
    return tomllib.loads((daemon.state_dir.parent / "classbox.toml").read_text())


ADMIN_USER, ADMIN_PASSWORD = "it", "correct horse battery staple"
SETUP_CODE = "admin-setup-code"  # where a box with admin accounts keeps its first-boot setup code


async def sign_in(context: BrowserContext, daemon: DaemonProcess) -> str:
    """Sign the browser in as the admin (the first one is made with the setup code); its CSRF token.

    Until admin accounts land the admin stand-in lets loopback in, there is nothing to sign in to
    and the token is "".
    """
    code = daemon.state_dir / SETUP_CODE
    if await asyncio.to_thread(code.exists):
        body = {
            "code": (await asyncio.to_thread(code.read_text)).strip(),
            "user": ADMIN_USER,
            "password": ADMIN_PASSWORD,
        }
        answer = await context.request.post(daemon.url + "/api/admin/setup", data=body)
    else:
        body = {"user": ADMIN_USER, "password": ADMIN_PASSWORD}
        answer = await context.request.post(daemon.url + "/api/admin/login", data=body)
    if answer.status == 404:  # no admin accounts on this box yet
        return ""
    assert answer.ok, await answer.text()
    token: str = (await answer.json())["csrf"]
    return token


class Admin:
    """A signed-in browser: its pages and the JSON API with the session's cookie and CSRF token."""

    def __init__(self, context: BrowserContext, daemon: DaemonProcess, csrf: str) -> None:
        self.context, self.daemon, self.csrf = context, daemon, csrf

    async def api(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        answer = await self.context.request.fetch(
            self.daemon.url + path, method=method, data=body, headers={"X-CSRF-Token": self.csrf}
        )
        return answer.status, await answer.json()

    async def open(self, path: str) -> Page:
        page = await self.context.new_page()
        page.on("dialog", accept)
        await page.goto(self.daemon.url + path)
        await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=15_000)
        return page


async def admin(browser: Browser, daemon: DaemonProcess, width: int = 1280, height: int = 800) -> Admin:
    context = await browser.new_context(viewport={"width": width, "height": height})
    return Admin(context, daemon, await sign_in(context, daemon))


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def until(predicate: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    """Wait (without blocking the loop) until `predicate()` is true."""
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.2)


def field(page: Page, path: str) -> Any:
    return page.locator(f'[data-path="{path}"]')


async def test_a_negative_max_viewers_is_refused_next_to_its_field_and_nothing_is_saved(
    browser: Browser, box: DaemonProcess
) -> None:
    before = (box.state_dir.parent / "classbox.toml").read_bytes()
    who = await admin(browser, box)
    page = await who.open("/admin/settings/streaming")
    await field(page, "lesson.max_viewers").locator("input").fill("-5")
    await field(page, "stream.high.kbps").locator("input").fill("1200")
    await page.click("#settings button[type=submit]")
    error = field(page, "lesson.max_viewers").locator(".error")
    await expect(error).to_have_text("Input should be greater than or equal to 1")
    await expect(field(page, "lesson.max_viewers").locator("input")).to_have_attribute("aria-invalid", "true")
    await expect(field(page, "stream.high.kbps").locator(".error")).to_have_text("")
    await expect(page.locator("#status")).to_contain_text("Not saved")
    assert (box.state_dir.parent / "classbox.toml").read_bytes() == before
    status, values = await who.api("/api/admin/settings/streaming")
    assert status == 200
    assert values["values"]["lesson"]["max_viewers"] == 60
    assert values["values"]["stream"]["high"]["kbps"] == 1500
    await page.close()


async def test_a_setting_rolls_back_from_the_history(browser: Browser, box: DaemonProcess) -> None:
    who = await admin(browser, box)
    page = await who.open("/admin/settings/streaming")
    await field(page, "lesson.max_viewers").locator("input").fill("25")
    await page.click("#settings button[type=submit]")
    await expect(page.locator("#status")).to_contain_text("Applied now")
    assert config_of(box)["lesson"]["max_viewers"] == 25
    saved = await page.evaluate("fetch('/api/admin/config/history').then((r) => r.json())")
    newest, before = saved[0], saved[1]
    assert newest["changed"] == ["lesson.max_viewers"]
    await page.goto(box.url + "/admin/maintenance")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await page.click(f'#history tr[data-version="{before["version"]}"] button.rollback')
    await expect(page.locator("#history-status")).to_contain_text(f"Version {before['version']} is the current")
    assert config_of(box)["lesson"]["max_viewers"] == 60
    status, values = await who.api("/api/admin/settings/streaming")
    assert values["values"]["lesson"]["max_viewers"] == 60
    await expect(page.locator("#history tbody tr").first).to_contain_text(f"Rollback to version {before['version']}")
    await page.close()


async def test_the_dashboard_draws_graphs_from_the_sampled_history(browser: Browser, box: DaemonProcess) -> None:
    who = await admin(browser, box)

    async def sampled() -> bool:
        status, body = await who.api("/api/admin/history?hours=24")
        return status == 200 and len(body["samples"]) >= 3

    await until(sampled, "three samples of the history")
    page = await who.open("/admin")
    graphs = page.locator("#graphs figure.graph")
    await expect(graphs).to_have_count(6)
    await expect(page.locator('[data-graph="mem_pct"] path.series')).to_have_count(1)
    points = await page.locator('[data-graph="mem_pct"] path.series').get_attribute("d")
    assert points is not None
    assert points.count("L") >= 2  # a line through three samples or more
    await expect(page.locator('[data-component="camera:teacher"]')).to_contain_text("Working")
    await expect(page.locator("#overall")).not_to_be_empty()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "admin-dashboard-en-1280x800.png"))
    phone = await (await admin(browser, box, 390, 844)).open("/admin")
    await expect(phone.locator("#graphs figure.graph")).to_have_count(6)
    await phone.screenshot(path=str(SCREENSHOTS / "admin-dashboard-en-390x844.png"))
    await phone.close()
    await page.close()


async def test_the_dashboard_in_arabic_is_right_to_left(browser: Browser, box: DaemonProcess) -> None:
    who = await admin(browser, box)
    status, answer = await who.api("/api/admin/settings/identity", "PUT", {"values": {"box": {"language": "ar"}}})
    assert status == 200, answer
    try:
        page = await who.open("/admin")
        assert await page.get_attribute("html", "dir") == "rtl"
        await expect(page.locator("#graphs figure.graph")).to_have_count(6)
        side = await page.locator("nav.side").bounding_box()
        main = await page.locator("main").bounding_box()
        assert side is not None
        assert main is not None
        assert side["x"] > main["x"]  # the page mirrors: the menu is at the start of the line, on the right
        await page.screenshot(path=str(SCREENSHOTS / "admin-dashboard-ar-1280x800.png"))
        await page.close()
    finally:
        status, answer = await who.api("/api/admin/settings/identity", "PUT", {"values": {"box": {"language": "en"}}})
        assert status == 200, answer


async def test_the_log_tail_filters_by_text_and_level(browser: Browser, box: DaemonProcess) -> None:
    who = await admin(browser, box)
    status, before = await who.api("/api/admin/settings/courseware")
    unreachable = {"courseware": {"repo_url": "http://127.0.0.1:9/classbox-repo"}}
    assert (await who.api("/api/admin/settings/courseware", "PUT", {"values": unreachable}))[0] == 200
    try:
        assert (await who.api("/api/courseware/pull", "POST"))[0] == 202
        await until(lambda: failed_pull_logged(who), "the failed pull in the log")
        page = await who.open("/admin/logs")
        rows = page.locator("#log tbody tr")
        await expect(rows.first).to_be_visible()
        await show_logs(page, contains="courseware")
        messages = await rows.all_inner_texts()
        assert messages
        assert all("courseware" in text.lower() for text in messages)
        assert any("courseware pull failed" in text for text in messages)
        await show_logs(page, level="warning")
        levels = await rows.evaluate_all("(rows) => rows.map((r) => r.dataset.level)")
        assert "error" in levels
        assert set(levels) <= {"warning", "error", "critical"}
        await page.close()
    finally:
        assert (await who.api("/api/admin/settings/courseware", "PUT", {"values": before["values"]}))[0] == 200


async def failed_pull_logged(who: Admin) -> bool:
    status, lines = await who.api("/api/admin/logs?level=error&contains=courseware")
    return status == 200 and any("courseware pull failed" in line["message"] for line in lines)


async def show_logs(page: Page, contains: str = "", level: str = "") -> None:
    """Filter the log tail and wait for the box's answer to be shown."""
    await page.fill("#log-contains", contains)
    await page.select_option("#log-level", level)
    await page.click("#log-filter button[type=submit]")
    shown = f"contains={contains}&level={level}&limit=500"
    await expect(page.locator("#log")).to_have_attribute("data-shown", shown)


async def test_the_diagnostics_bundle_downloads_without_a_secret(browser: Browser, box: DaemonProcess) -> None:
    page = await (await admin(browser, box)).open("/admin/pins")
    await page.fill("#teacher-pin", TEACHER_PIN)
    await page.click("#pin-teacher button[type=submit]")
    await expect(page.locator("#pin-teacher .status")).to_contain_text("Saved")
    pin_hash = config_of(box)["web"]["teacher_pin_hash"]
    assert pin_hash.startswith("$argon2")
    await page.goto(box.url + "/admin/maintenance")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    async with page.expect_download() as waiting:
        await page.click("#diagnostics")
    download = await waiting.value
    data = await asyncio.to_thread(Path(await download.path()).read_bytes)
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        names = set(bundle.namelist())
        texts = {name: bundle.read(name).decode() for name in names}
    assert {"config.toml", "health.json", "logs.txt", "versions.json"} <= names
    everything = "\n".join(texts.values())
    for secret in (UPLOAD_TOKEN, TURN_PASSWORD, TEACHER_PIN, pin_hash, pin_hash.split("$")[-1]):
        assert secret not in everything
    shown = tomllib.loads(texts["config.toml"])
    assert shown["upload"]["token"] == "(secret, not shown)"
    assert shown["box"]["name"] == "Grade 5, Room 12"
    assert "classbox ready" in texts["logs.txt"]
    await page.close()


async def test_secrets_are_never_sent_to_the_page_and_an_empty_one_is_kept(
    browser: Browser, box: DaemonProcess
) -> None:
    page = await (await admin(browser, box)).open("/admin/settings/streaming")
    secret = field(page, "stream.ice_servers.0.credential").locator("input")
    await expect(secret).to_have_attribute("type", "password")
    await expect(secret).to_have_value("")
    assert TURN_PASSWORD not in await page.content()
    await field(page, "stream.ice_servers.0.username").locator("input").fill("box2")
    await page.click("#settings button[type=submit]")
    await expect(page.locator("#status")).to_contain_text("Saved")
    server = config_of(box)["stream"]["ice_servers"][0]
    assert server == {**server, "username": "box2", "credential": TURN_PASSWORD}
    await page.close()


async def test_a_change_survives_a_restart_from_the_maintenance_page(tmp_path: Path, browser: Browser) -> None:
    daemon = await asyncio.to_thread(_start, tmp_path)
    try:
        first_pid = daemon.proc.pid
        who = await admin(browser, daemon)
        page = await who.open("/admin/settings/identity")
        await field(page, "box.name").locator("input").fill("Lycée Djibouti, salle 3")
        await page.click("#settings button[type=submit]")
        await expect(page.locator("#status")).to_contain_text("Applied now")
        await page.goto(daemon.url + "/admin/maintenance")
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        await page.click("#restart")
        await expect(page.locator("#restart-status")).to_have_text("The box is back.", timeout=60_000)
        assert daemon.proc.poll() is None
        assert daemon.proc.pid == first_pid  # restarted in place
        assert "classbox restarting" in daemon.log()
        assert daemon.log().count("classbox ready:") == 2
        who.csrf = await sign_in(who.context, daemon)  # a session may not outlive the daemon
        await page.goto(daemon.url + "/admin/settings/identity")
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        await expect(field(page, "box.name").locator("input")).to_have_value("Lycée Djibouti, salle 3")
        await expect(page.locator(".box-name")).to_have_text("Lycée Djibouti, salle 3")
        await page.close()
    finally:
        await asyncio.to_thread(daemon.terminate, 15)


async def test_the_device_test_shows_a_snapshot_and_a_level(browser: Browser, box: DaemonProcess) -> None:
    page = await (await admin(browser, box)).open("/admin/settings/devices")
    await expect(field(page, "cameras.0.device").locator("input")).to_have_attribute("list", "found-cameras")
    await page.click("#test-devices")
    picture = page.locator("#device-results img")
    await expect(picture).to_have_count(1)
    await page.wait_for_function("() => document.querySelector('#device-results img')?.naturalWidth > 0")
    assert await picture.evaluate("(img) => img.naturalWidth") == 1280  # the synthetic camera's picture
    level = await page.locator("#device-results meter").evaluate("(meter) => meter.value")
    assert level > -60  # the synthetic microphone's tone, well above silence
    await page.close()
