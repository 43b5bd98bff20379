"""The doctor: findings from facts (pure), `classbox doctor` on a box with known problems (an absent camera, a
nearly full small tmpfs, courseware never pulled), and the same findings on the admin dashboard."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from edge.core.component import ComponentHealth, Components, Status
from edge.core.config import BoxConfig
from edge.system.doctor import MB, Facts, findings
from tests.helpers import REPO, DaemonProcess
from tests.test_admin import SCREENSHOTS, admin

DAY = 24 * 3600.0


def reports(statuses: dict[str, Status]) -> Components:
    return Components({name: ComponentHealth(status=status) for name, status in statuses.items()})


def healthy(**changes: object) -> Facts:
    config = BoxConfig()
    config.courseware.repo_url = "https://courseware.example/repo"
    facts = Facts(
        config,
        components=reports({"clock": "ok", "camera:teacher": "ok", "courseware": "ok"}),
        disk_free=20_000 * MB,
        disk_total=32_000 * MB,
        addresses=[("eth0", "10.0.0.5/24")],
        last_pull_ok_at=time.time() - 3600,
    )
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


def keys(facts: Facts) -> list[str]:
    return [finding.key for finding in findings(facts)]


def test_a_healthy_box_has_nothing_wrong() -> None:
    assert findings(healthy()) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"device_problems": ["cameras.0.device (teacher): /dev/video9 does not exist"]}, ["device:0"]),
        ({"components": reports({"clock": "ok", "camera:teacher": "down"})}, ["camera:teacher"]),
        ({"disk_free": 300 * MB}, ["disk"]),
        ({"disk_free": 800 * MB}, ["disk"]),
        ({"synchronised": False}, ["clock"]),
        ({"addresses": []}, ["network"]),
        ({"default_route": False}, ["network"]),
        ({"last_pull_ok_at": None}, ["courseware"]),
        ({"last_pull_ok_at": time.time() - 3 * DAY}, ["courseware"]),
        ({"recordings": [{"upload_state": "failed", "started_at": time.time()}]}, ["uploads:failed"]),
        ({"recordings": [{"upload_state": "queued", "started_at": time.time() - 2 * DAY}]}, ["uploads:backlog"]),
        ({"recordings": [{"upload_state": "queued", "started_at": time.time() - 60}]}, []),
    ],
)
def test_each_problem_is_one_finding_with_its_fix(changes: dict[str, object], expected: list[str]) -> None:
    facts = healthy(**changes)
    assert keys(facts) == expected
    for finding in findings(facts):
        problem, fix = finding.words()
        assert "%(" not in problem
        assert fix


def test_disk_full_and_nearly_full_are_told_apart() -> None:
    full = findings(healthy(disk_free=300 * MB))[0].words()[0]
    nearly = findings(healthy(disk_free=800 * MB))[0].words()[0]
    assert full.startswith("Disk full: 300 MB free")
    assert nearly.startswith("Disk nearly full: 800 MB free")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs as the state folder, filled to within about 1.5 MB."""
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(state)], check=True)
    try:
        (state / "filler").write_bytes(b"\0" * (14 * MB + MB // 2))
        yield state
    finally:
        subprocess.run(["umount", str(state)], check=True)


@pytest.mark.slow
def test_classbox_doctor_says_what_is_wrong_and_exits_non_zero(tmp_path: Path, small_disk: Path) -> None:
    config = tmp_path / "classbox.toml"
    config.write_text(
        f'[box]\nstate_dir = "{small_disk}"\n\n[recording]\nmin_free_mb = 1\n\n'
        '[courseware]\nrepo_url = "http://127.0.0.1:9/repo"\n\n'
        '[[cameras]]\nname = "teacher"\nsource = "opencv"\ndevice = "9"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "edge", "doctor", "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "[devices] Device missing: cameras.0.device (teacher): no camera at index 9" in out
    assert re.search(r"^\[disk\] Disk nearly full: 1 MB free of 16 MB$", out, re.MULTILINE), out
    assert "[courseware] Courseware has never been updated from the repository" in out
    assert out.count("    fix: ") == len([line for line in out.splitlines() if line.startswith("[")])


@pytest.fixture(scope="module")
def ailing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A daemon whose camera is absent."""
    root = tmp_path_factory.mktemp("doctor")
    config = root / "classbox.toml"
    config.write_text('[box]\nname = "Room 4"\n\n[[cameras]]\nname = "teacher"\nsource = "opencv"\ndevice = "9"\n')
    daemon = DaemonProcess(root / "state", "--config", str(config))
    daemon.wait_healthy(60)
    yield daemon
    daemon.terminate(15)


@pytest.mark.slow
@pytest.mark.browser
async def test_the_dashboard_shows_the_same_findings(browser: Browser, ailing: DaemonProcess) -> None:
    who = await admin(browser, ailing)
    status, found = await who.api("/api/admin/doctor")
    assert status == 200, found
    assert "camera:teacher" in [f["key"] for f in found]
    page = await who.open("/admin")
    item = page.locator('#doctor-findings li[data-key="camera:teacher"]')
    await expect(item).to_contain_text("Camera teacher is not delivering pictures")
    await expect(item.locator(".fix")).to_contain_text("USB cable")
    await page.screenshot(path=str(SCREENSHOTS / "admin-doctor-en-1280x800.png"), full_page=False)
    for width, height in ((800, 480), (390, 844)):
        await page.set_viewport_size({"width": width, "height": height})
        await item.scroll_into_view_if_needed()
        await page.screenshot(path=str(SCREENSHOTS / f"admin-doctor-en-{width}x{height}.png"))
    await page.context.add_cookies([{"name": "classbox_lang", "value": "ar", "url": ailing.url}])
    await page.reload()
    await expect(page.locator('#doctor-findings li[data-key="camera:teacher"]')).to_be_visible()
    assert await page.get_attribute("html", "dir") == "rtl"
    await page.locator("#doctor-findings").scroll_into_view_if_needed()
    await page.screenshot(path=str(SCREENSHOTS / "admin-doctor-ar-390x844.png"))
    await who.context.close()
