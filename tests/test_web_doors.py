"""The shared web door: what anyone on the LAN may read, cross-origin refusals, body limits."""

from __future__ import annotations

from pathlib import Path

import httpx

from edge.box import hash_pin
from edge.config import BoxConfig
from tests.stream_fixture import live_box, small_config

PIN = "2468"
PIN_HASH = hash_pin(PIN)  # at import: argon2 would block the test's loop


def lan_config(tmp_path: Path) -> BoxConfig:
    """A box whose panel is elsewhere: this test's loopback client is just someone on the LAN."""
    config = small_config(tmp_path)
    config.web.panel_addresses = ["192.0.2.1/32"]
    config.web.teacher_pin_hash = PIN_HASH
    return config


async def test_anyone_reads_status_only_and_the_teacher_reads_the_details(tmp_path: Path) -> None:
    async with live_box(lan_config(tmp_path), with_devices=False) as live, httpx.AsyncClient(base_url=live.base) as c:
        lesson = await live.start_lesson("Algebra")
        teacher = {"X-Panel-Pin": PIN}
        for headers in ({}, {"X-Panel-Pin": "0000"}):  # no PIN, or a wrong one: the reduced answer, never a 401
            health = await c.get("/healthz", headers=headers)
            assert health.status_code == 200
            body = health.json()
            assert set(body) == {"status", "components"}
            assert body["components"]["web"] == {"status": "ok"}
            assert all(set(component) == {"status"} for component in body["components"].values())
            assert lesson.join_code not in health.text
            current = await c.get("/api/lessons/current", headers=headers)
            assert current.status_code == 200
            assert current.json() == {"lesson": {"state": "live", "title": "Algebra"}}
        full = (await c.get("/healthz", headers=teacher)).json()
        assert full["lesson"]["join_code"] == lesson.join_code
        assert full["components"]["web"]["detail"].startswith("listening on")
        current = (await c.get("/api/lessons/current", headers=teacher)).json()
        assert current["lesson"]["join_code"] == lesson.join_code
        assert current["lesson"]["started_by"] == "panel"
        await live.box.stop_lesson("panel")
        assert (await c.get("/api/lessons/current")).json() == {"lesson": None}
