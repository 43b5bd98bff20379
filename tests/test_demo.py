"""`classbox demo`: synthetic devices and a sample course pulled through the real signed-repository path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.demo import SAMPLE_PAGE, SAMPLE_TITLE
from tests.helpers import DaemonProcess, http_json, wait_for


@pytest.mark.slow
def test_demo_runs_on_synthetic_devices_with_local_courseware(tmp_path: Path) -> None:
    with DaemonProcess(tmp_path / "state") as daemon:
        health = daemon.wait_healthy()
        assert health["components"]["camera:teacher"]["status"] in ("ok", "starting")
        assert health["components"]["mic:room"]["status"] in ("ok", "starting")

        def cached() -> dict[str, Any] | None:
            status, body = http_json(daemon.url + "/api/courseware")
            courses = body.get("courses", []) if status == 200 else []
            items = courses[0]["items"] if courses else []  # a course is listed before its items are
            done = "index.html" in {item["path"] for item in items} and all(item["state"] == "cached" for item in items)
            return body if done else None

        listing = wait_for(cached, 20, 0.2, "the sample course to be cached")
        assert listing["courses"][0]["title"] == SAMPLE_TITLE
        status, page = http_json(daemon.url + "/courseware/welcome/index.html")
        assert status == 200
        assert page == SAMPLE_PAGE
        assert daemon.terminate() == 0
