"""An origin that fails says why in words (refused, DNS, TLS, timeout, HTTP status), and the cache keeps serving."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.errors import FetchError
from sync.publish import publish
from sync.repo import TrustedRepo
from tests.nginx_server import Nginx
from tests.test_courseware import box_config, make_course, running_box, sha


@pytest.fixture
def published(tmp_path: Path) -> tuple[dict[str, bytes], Path]:
    """(item -> bytes, repo folder) of a course published once."""
    files = make_course(tmp_path / "src", video_mb=0.3)
    publish(tmp_path / "src", tmp_path / "repo", tmp_path / "keys")
    return files, tmp_path / "repo"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


async def test_an_origin_gone_after_a_good_pull_is_named_and_every_cached_item_still_served(
    tmp_path: Path, published: tuple[dict[str, bytes], Path], caplog: pytest.LogCaptureFixture
) -> None:
    files, out = published
    nginx = Nginx(tmp_path / "nginx", out)
    config = box_config(tmp_path / "box", nginx.url, out / "metadata" / "1.root.json")
    try:
        async with running_box(config) as (cw, client):
            assert await cw.pull_once() is not None
            assert cw.last_error == ""
            nginx.stop()  # the origin goes away
            with caplog.at_level(logging.ERROR):
                await cw.pull_once()
            assert f"repository {nginx.url} unreachable: connection refused" in cw.last_error
            assert "courseware pull failed" in caplog.text
            assert "unreachable: connection refused" in caplog.text
            assert cw.health().status == "degraded"
            assert "connection refused" in cw.health().detail
            health = (await client.get("/healthz")).json()
            assert "connection refused" in health["components"]["courseware"]["detail"]
            last = (await client.get("/api/courseware")).json()["last_pull"]
            assert last["ok"] is False
            assert "connection refused" in last["error"]
            assert last["items_complete"] == 4  # the good pull's report is kept beside the failure
            for name, data in files.items():
                response = await client.get(f"/courseware/{name}")
                assert response.status_code == 200, name
                assert sha(response.content) == sha(data), name
    finally:
        nginx.stop()


def _refresh_error(location: str, tmp_path: Path, out: Path) -> str:
    root = (out / "metadata" / "1.root.json").read_bytes()
    with pytest.raises(FetchError) as caught:
        TrustedRepo(location, tmp_path / "tuf", root, timeout_s=0.5).refresh()
    return str(caught.value)


def test_each_kind_of_fetch_failure_is_said_in_words(
    tmp_path: Path, published: tuple[dict[str, bytes], Path], silent_port: int
) -> None:
    _, out = published
    empty = tmp_path / "empty"
    empty.mkdir()
    nginx = Nginx(tmp_path / "nginx", empty)  # answers, but has no repository: 404
    try:
        closed = Nginx(tmp_path / "closed", empty)
        closed.stop()
        found = {
            "refused": _refresh_error(closed.url, tmp_path, out),
            "dns": _refresh_error("http://no-such-box.invalid", tmp_path, out),
            "tls": _refresh_error(nginx.url.replace("http://", "https://"), tmp_path, out),
            "status": _refresh_error(nginx.url, tmp_path, out),
            "timeout": _refresh_error(f"http://127.0.0.1:{silent_port}", tmp_path, out),
            "folder": _refresh_error(str(tmp_path / "no-such-folder"), tmp_path, out),
        }
    finally:
        nginx.stop()
    assert found["refused"].endswith("unreachable: connection refused")
    assert "unreachable: DNS " in found["dns"]  # "DNS name not found" (or "DNS lookup failed" offline)
    assert "unreachable: TLS error (" in found["tls"]
    assert found["status"].endswith("unreachable: HTTP 404")
    assert found["timeout"].endswith("unreachable: timed out")
    assert found["folder"].endswith("unreachable: no such file")
