"""URL credentials never leave the box: camera and repository URLs with user:password@ in health, API, log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from edge.core.component import Component
from edge.core.config import parse_config
from edge.core.errors import ConfigError
from edge.core.events import EventBus
from edge.core.logs import redact
from edge.daemon import Supervisor
from sync.publish import publish
from tests.helpers import DaemonProcess, free_port, http_json, wait_for
from tests.nginx_server import Nginx
from tests.test_courseware import box_config, make_course, running_box

SECRETS = ("S3cretPw", "An0therPw", "RepoPw9")


def _config(tmp_path: Path, refused: int) -> Path:
    (tmp_path / "src" / "c").mkdir(parents=True)
    (tmp_path / "src" / "c" / "a.txt").write_text("a")
    publish(tmp_path / "src", tmp_path / "repo", tmp_path / "keys")  # for a root to trust; the URL never answers
    cameras = [
        ("door", f"rtsp://admin:S3cretPw@127.0.0.1:{refused}/stream"),
        ("yard", f"http://viewer:An0therPw@127.0.0.1:{refused}/video.mjpg"),
    ]
    text = "".join(
        f'[[cameras]]\nname = "{name}"\nsource = "opencv"\ndevice = "{url}"\nwidth = 320\nheight = 240\nfps = 10\n'
        for name, url in cameras
    )
    text += (
        f'[courseware]\nrepo_url = "http://cw:RepoPw9@127.0.0.1:{refused}/repo"\n'
        f'trusted_root = "{tmp_path / "repo" / "metadata" / "1.root.json"}"\n'
        "[discovery]\nenabled = false\n"
    )
    path = tmp_path / "box.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_failing_cameras_with_credentials_in_their_urls_leak_no_password(tmp_path: Path) -> None:
    refused = free_port()  # nothing listens: the cameras and the repository refuse
    config = _config(tmp_path, refused)
    with DaemonProcess(tmp_path / "state", "--config", str(config)) as daemon:
        daemon.wait_healthy()

        def all_down() -> dict[str, object] | None:
            health = daemon.health()
            parts = health["components"] if health else {}
            cameras = [str(parts.get(n, {}).get("detail", "")) for n in ("camera:door", "camera:yard")]
            pulled = "unreachable" in str(parts.get("courseware", {}).get("detail", ""))
            return health if pulled and all("camera offline: cannot open" in c for c in cameras) else None

        health = wait_for(all_down, timeout=30, what="both cameras down and the courseware pull failed")
        components = health["components"]
        assert f"cannot open rtsp://***@127.0.0.1:{refused}/stream" in components["camera:door"]["detail"]
        assert f"cannot open http://***@127.0.0.1:{refused}/video.mjpg" in components["camera:yard"]["detail"]
        assert (
            f"http://***@127.0.0.1:{refused}/repo unreachable: connection refused" in components["courseware"]["detail"]
        )
        status, devices = http_json(daemon.url + "/api/devices")
        assert status == 200
        assert devices["configured"]["cameras"][0]["device"] == f"rtsp://***@127.0.0.1:{refused}/stream"
        status, courseware = http_json(daemon.url + "/api/courseware")
        assert status == 200
        shown = json.dumps(daemon.health()) + json.dumps(devices) + json.dumps(courseware)
        daemon.terminate()
        log = daemon.log()
    assert "camera:door is down" in log
    assert f"rtsp://***@127.0.0.1:{refused}/stream" in log
    for secret in SECRETS:
        assert secret not in shown
        assert secret not in log


@pytest.mark.parametrize(
    "line",
    [
        "cannot open rtsp://admin:S3cretPw@10.0.0.7:554/h264",
        "pull from https://box:S3cretPw@cdn.example/repo failed",
        "camera 'http://S3cretPw@cam.local/mjpg' stalled",
        "odd password with an @: rtsp://u:S3cret@Pw@cam/stream",
    ],
)
def test_the_log_redactor_drops_url_user_info(line: str) -> None:
    out = redact(line)
    assert "S3cret" not in out
    assert "***@" in out


def test_a_refused_camera_url_is_not_echoed_with_its_password() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({"cameras": [{"name": "door", "source": "opencv", "device": "ftp://admin:S3cretPw@cam/x"}]})
    assert refused.value.problems  # the refusal is reported ...
    assert "S3cretPw" not in str(refused.value)  # ... without the password


async def test_a_repository_url_with_credentials_is_redacted_in_the_pull_report(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "repo"
    make_course(src, video_mb=0.2)
    await asyncio.to_thread(publish, src, out, tmp_path / "keys")
    next(p for p in (out / "chunks").rglob("*") if p.is_file()).unlink()  # the origin has lost one chunk
    nginx = await asyncio.to_thread(Nginx, tmp_path / "nginx", out)  # answers whatever the user-info says
    url = nginx.url.replace("http://", "http://teacher:S3cretPw@")
    try:
        async with running_box(box_config(tmp_path / "box", url, out / "metadata" / "1.root.json")) as (cw, client):
            await cw.pull_once()
            listing = (await client.get("/api/courseware")).json()
            health = (await client.get("/healthz")).json()
    finally:
        await asyncio.to_thread(nginx.stop)
    assert "HTTP 404" in listing["last_pull"]["refused"][0]  # the chunk the origin lost
    assert "http://***@127.0.0.1" in listing["last_pull"]["refused"][0]
    assert "S3cretPw" not in json.dumps(listing) + json.dumps(health)


async def test_a_component_failure_naming_a_url_shows_no_password_in_health() -> None:
    class Failing(Component):
        name = "camera:door"

        async def start(self) -> None:
            raise RuntimeError("cannot reach rtsp://admin:S3cretPw@10.0.0.9/stream")

    supervisor = Supervisor(EventBus(), backoff_first_s=30)
    supervisor.add(Failing())
    await supervisor.start_all()
    try:
        report = supervisor.report()["camera:door"]
    finally:
        await supervisor.stop_all()
    assert report["last_error"] == "RuntimeError: cannot reach rtsp://***@10.0.0.9/stream"
