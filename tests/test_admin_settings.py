"""The admin page's settings and the metrics history without a browser: secrets, versions, pruning, the stand-in."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import edge.stream.viewers  # noqa: F401 (imported here, not on a test's loop: it loads aiortc)
from edge import wiring
from edge.box import Box
from edge.core.config import BoxConfig, IceServer, load_config, save_config
from edge.core.events import EventBus
from edge.doors.web.app import create_app
from edge.health.history import HistoryStore, Sample, cpu_percent, cpu_times
from edge.system.settings import GROUP_BY_NAME, SettingsRefused


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    config = BoxConfig()
    config.box.state_dir = tmp_path / "state"
    config.stream.ice_servers = [
        IceServer(urls=["turn:a.example:3478"], username="a", credential="secret-a"),
        IceServer(urls=["turn:b.example:3478"], username="b", credential="secret-b"),
    ]
    path = tmp_path / "classbox.toml"
    save_config(config, path)
    opened = Box(load_config(path), EventBus(), path)
    opened.open()
    yield opened
    opened.close()


def servers_on_disk(box: Box) -> list[dict[str, object]]:
    assert box.settings.path is not None
    servers: list[dict[str, object]] = tomllib.loads(box.settings.path.read_text())["stream"]["ice_servers"]
    return servers


def test_secrets_follow_their_server_when_the_list_is_reordered_and_a_new_server_gets_none(box: Box) -> None:
    group = GROUP_BY_NAME["streaming"]
    shown = box.settings.values(group)
    assert "secret-a" not in str(shown["values"])
    assert shown["secrets_set"] == ["stream.ice_servers.0.credential", "stream.ice_servers.1.credential"]
    first, second = shown["values"]["stream"]["ice_servers"]
    new = {"urls": ["stun:c.example"], "username": "", "credential": "", "auth_secret": "", "ttl_s": 3600}
    reordered = [{**second, "__origin__": 1}, new, {**first, "__origin__": 0}]
    box.settings.change(group, {"stream": {"ice_servers": reordered}}, "admin")
    assert [(s["username"], s["credential"]) for s in servers_on_disk(box)] == [
        ("b", "secret-b"),
        ("", ""),
        ("a", "secret-a"),
    ]


def test_a_refused_change_names_each_field_and_changes_nothing(box: Box) -> None:
    assert box.settings.path is not None
    before = box.settings.path.read_bytes()
    values = {"lesson": {"max_viewers": 0, "join_code_length": 99}, "box": {"name": "sneaky"}}
    with pytest.raises(SettingsRefused) as refused:
        box.settings.change(GROUP_BY_NAME["streaming"], values, "admin")
    assert refused.value.errors == [{"loc": "box", "msg": "not a setting of this page"}]
    with pytest.raises(SettingsRefused) as refused:
        box.settings.change(GROUP_BY_NAME["streaming"], {"lesson": values["lesson"]}, "admin")
    assert {e["loc"] for e in refused.value.errors} == {"lesson.max_viewers", "lesson.join_code_length"}
    assert box.settings.path.read_bytes() == before
    assert box.config.lesson.max_viewers == 60


def test_versions_record_who_changed_what_and_rollback_restores_an_old_one(box: Box) -> None:
    group = GROUP_BY_NAME["identity"]
    box.settings.change(group, {"box": {"name": "Room 7"}}, "alice")
    saved = box.settings.change(group, {"box": {"name": "Room 8", "room": "8"}}, "bob")
    assert saved["changed"] == ["box.name", "box.room"]
    assert not saved["restart_needed"]
    versions = box.settings.history.versions()
    assert [(v["version"], v["by"]) for v in versions] == [(3, "bob"), (2, "alice"), (1, "file")]
    rolled = box.settings.roll_back_to(2, "carol")
    assert rolled["version"] == 4
    assert box.config.box.name == "Room 7"
    assert box.settings.path is not None
    assert load_config(box.settings.path).box.name == "Room 7"
    assert box.settings.history.versions()[0]["note"] == "rollback:2"
    with pytest.raises(KeyError):
        box.settings.roll_back_to(99, "carol")


def test_a_device_change_needs_a_restart_and_says_so(box: Box) -> None:
    group = GROUP_BY_NAME["devices"]
    cameras = box.settings.values(group)["values"]["cameras"]
    saved = box.settings.change(group, {"cameras": [{**cameras[0], "fps": 15}]}, "admin")
    assert saved["restart_needed"]
    assert saved["restart_for"] == ["cameras.0.fps"]


def test_the_history_keeps_only_the_days_asked_for(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "metrics.db")
    try:
        for at in (1000.0, 2000.0, 3000.0):
            store.add(Sample(at, 1.0, 2.0, 3.0, None, None, 0.0, 0), keep_s=1500.0)
        assert [row["at"] for row in store.since(0)] == [2000.0, 3000.0]
        assert store.since(2500.0)[0]["cpu_pct"] == 1.0
    finally:
        store.close()


def test_cpu_use_is_measured_between_two_readings() -> None:
    assert cpu_percent((100, 1000), (150, 1100)) == 50.0
    assert cpu_percent(None, (150, 1100)) is None
    busy, total = cpu_times() or (0, 0)
    assert 0 <= busy <= total


async def test_the_sampler_stores_what_it_measures(box: Box) -> None:
    history = wiring.history(box.services, box.viewers, box.courseware)
    await history.start()
    try:
        sample = await history.sample()
        rows = await history.since(sample.at - 1)
    finally:
        await history.stop()
    assert len(rows) == 1
    assert rows[0]["at"] == sample.at
    assert rows[0]["disk_pct"] is not None
    assert rows[0]["viewers"] == 0


@pytest.mark.parametrize("path", ["/api/admin/dashboard", "/api/admin/settings/streaming", "/api/admin/diagnostics"])
async def test_the_admin_api_refuses_anyone_without_an_admin_session(box: Box, path: str) -> None:
    app = await asyncio.to_thread(create_app, box)
    outsider = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=outsider, base_url="http://box") as plain:
        assert (await plain.get(path)).status_code == 403  # admins only over HTTPS (or on the box itself)
    async with httpx.AsyncClient(transport=outsider, base_url="https://box") as client:
        assert (await client.get(path)).status_code == 401
        answer = await client.put("/api/admin/settings/identity", json={"values": {"box": {"name": "x"}}})
        assert answer.status_code == 401
        page = await client.get("/admin")
        assert page.status_code == 303
        assert page.headers["location"] == "/admin/login"
    assert box.config.box.name == "Classroom"


def test_every_setting_of_the_schema_is_on_a_page() -> None:
    covered = [path for group in GROUP_BY_NAME.values() for path in group.paths]
    on_pins_page = {"web.teacher_pin_hash", "console.tech_pin_hash"}
    for section, field in BoxConfig.model_fields.items():
        model = field.annotation
        names = getattr(model, "model_fields", None)
        paths = [f"{section}.{name}" for name in names] if names else [section]
        for path in paths:
            inside = any(path == p or path.startswith(p + ".") for p in covered)
            assert inside or path in on_pins_page, f"{path} is on no settings page"


def test_saving_what_is_already_there_makes_no_new_version(box: Box) -> None:
    group = GROUP_BY_NAME["identity"]
    box.settings.change(group, {"box": {"name": "Room 9"}}, "alice")
    again = box.settings.change(group, box.settings.values(group)["values"], "alice")
    assert again == {"version": 2, "changed": [], "restart_needed": False, "restart_for": []}
    assert len(box.settings.history.versions()) == 2
