"""The pages' static files: one mount serves every file of `static/` at the URL of its path, and nothing else."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from edge.box import Box
from edge.core.config import BoxConfig
from edge.core.events import EventBus
from edge.doors.web.app import create_app
from edge.doors.web.i18n import WEB
from edge.doors.web.static_files import FOLDER, TYPES, URL, StaticFolder, allowed

STATIC_URL = re.compile(r"""["'(](/static/[^"')\s]+)""")
WEEK = "public, max-age=604800"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client of the whole web door (its routes and its mount), in this process."""
    app = await asyncio.to_thread(create_app, Box(BoxConfig(), EventBus()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://box") as client:
        yield client


def files_of(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


async def test_every_file_of_the_folder_is_served_at_its_path_with_its_type(client: httpx.AsyncClient) -> None:
    files = files_of(FOLDER)
    assert len(files) > 20
    for path in files:
        name = path.relative_to(FOLDER).as_posix()
        assert allowed(name), f"static/{name} is of a type the mount does not serve"
        answer = await client.get(f"{URL}/{name}")
        assert answer.status_code == 200, name
        assert answer.content == path.read_bytes(), name
        media_type, cache = TYPES[path.suffix]
        assert answer.headers["content-type"] == media_type, name
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["etag"]
        assert answer.headers["cache-control"] == (WEEK if name.startswith("fonts") else "no-cache"), name
        again = await client.get(f"{URL}/{name}", headers={"If-None-Match": answer.headers["etag"]})
        assert again.status_code == 304, name


def test_every_static_url_of_the_pages_and_scripts_names_a_file_of_the_folder() -> None:
    sources = [*files_of(WEB / "templates"), *FOLDER.rglob("*.js"), *FOLDER.rglob("*.css")]
    urls = {url for source in sources for url in STATIC_URL.findall(source.read_text())}
    assert "/static/panel/pin.js" in urls
    for url in urls:
        assert (FOLDER / url.removeprefix("/static/")).is_file(), url


@pytest.mark.parametrize(
    "path",
    [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/static/panel/../../app.py",
        "/static/%2e%2e/locales/ar/LC_MESSAGES/classbox.po",
        "/static/%2e%2e/templates/_page.html",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        f"/static/{FOLDER}/panel.js",
        "/static/",
        "/static/panel/",
        "/static/fonts",
        "/static/no-such-file.js",
        "/static/panel.js.map",
    ],
)
async def test_the_mount_refuses_what_is_outside_the_folder_a_folder_or_a_missing_file(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path)
    assert answer.status_code == 404, path
    assert "from __future__" not in answer.text


async def test_the_mount_refuses_types_it_does_not_know_and_hidden_files(tmp_path: Path) -> None:
    for name in ("notes.txt", "page.html", "tool.py", "panel.js~", ".hidden.js", ".git/config.js", "sub/.env.css"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("secret")
    (tmp_path / "sub" / "ok.css").write_text("body {}")
    app = FastAPI()
    app.mount(URL, StaticFolder(tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://box") as client:
        for name in ("notes.txt", "page.html", "tool.py", "panel.js~", ".hidden.js", ".git/config.js", "sub/.env.css"):
            answer = await client.get(f"{URL}/{name}")
            assert answer.status_code == 404, name
            assert "secret" not in answer.text
        served = await client.get(f"{URL}/sub/ok.css")
        assert served.status_code == 200
        assert served.headers["content-type"] == "text/css; charset=utf-8"
        assert (await client.post(f"{URL}/sub/ok.css")).status_code == 405
