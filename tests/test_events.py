"""The live event stream `/api/events` read by a real HTTP client, and the panel's API beside it.

Filtered by who listens (anyone: lesson state and title; the teacher: everything the panel shows),
kept alive, freed when the client goes away; the panel's PIN session, preview, hands and board.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from edge.box import Box
from edge.core.config import BoxConfig
from edge.core.events import Event, EventBus, SubscriptionGroup
from edge.core.texts import N_
from edge.demo import prepare_demo_courseware
from edge.doors.web.routes import events as events_door
from edge.doors.web.routes.events import Listener, visible
from edge.system.accounts import hash_pin
from tests.stream_fixture import join, live_box, offer_sdp, small_config, until

PIN = "2468"
PIN_HASH = hash_pin(PIN)  # at import: argon2 would block the test's loop
NEW_PIN_HASH = hash_pin("13579")


def lan_config(tmp_path: Path) -> BoxConfig:
    """A box whose panel is elsewhere: this test's loopback client is someone on the LAN."""
    config = small_config(tmp_path)
    config.web.panel_addresses = ["192.0.2.1/32"]
    config.web.teacher_pin_hash = PIN_HASH
    return config


@dataclass
class Stream:
    """One open `/api/events` stream: its events as they arrive, its raw text and its comment lines."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    comments: int = 0

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.events]

    def of(self, topic: str) -> list[Any]:
        return [data for name, data in self.events if name == topic]

    async def read(self, response: httpx.Response) -> None:
        topic, data = "message", ""
        async for line in response.aiter_lines():
            self.raw.append(line)
            if line.startswith(":"):
                self.comments += 1
            elif line.startswith("event: "):
                topic = line[len("event: ") :]
            elif line.startswith("data: "):
                data += line[len("data: ") :]
            elif not line and data:
                self.events.append((topic, json.loads(data)))
                topic, data = "message", ""


@contextlib.asynccontextmanager
async def listen(client: httpx.AsyncClient, **kwargs: Any) -> AsyncIterator[Stream]:
    """Read `/api/events` in the background while the block runs."""
    stream = Stream()
    async with client.stream("GET", "/api/events", timeout=None, **kwargs) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reading = asyncio.create_task(stream.read(response), name="test:sse-reader")
        try:
            await until(lambda: stream.of("state"), what="the stream's first state")
            yield stream
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)


def plain_client(base: str, **kwargs: Any) -> httpx.AsyncClient:
    """A client for the box's plain HTTP (no CA bundle to load: that alone can block the loop half a second)."""
    return httpx.AsyncClient(base_url=base, verify=False, **kwargs)


async def teacher_session(client: httpx.AsyncClient, pin: str = PIN) -> httpx.Response:
    return await client.post("/api/panel/session", json={"pin": pin})


async def test_anyone_sees_only_lesson_state_and_title_while_the_teacher_sees_the_class(tmp_path: Path) -> None:
    async with (
        live_box(lan_config(tmp_path)) as live,
        plain_client(live.base) as anyone,
        plain_client(live.base) as teacher,
    ):
        answer = await teacher_session(teacher)
        assert answer.status_code == 200
        async with listen(anyone) as public, listen(teacher) as private:
            assert public.of("state") == [{"teacher": False, "lesson": None}]
            assert private.of("state")[0]["teacher"] is True
            lesson = await live.start_lesson("Geometry")
            student = await join(anyone, f"/whep/{lesson.join_code}")
            try:
                await until(lambda: student.channel.readyState == "open", what="the student's data channel")
                student.send("hand", raised=True)
                await until(lambda: private.of("hand.raised"), what="the raised hand on the teacher's stream")
                await until(lambda: private.of("audio.level"), what="the microphone level")
                live.box.services.alarms.raise_alarm(
                    "drill.microphone-silent", N_("Microphone is silent: is it muted?")
                )
                await until(
                    lambda: any(a["name"] == "drill.microphone-silent" for a in private.of("alarm.raised")),
                    what="the alarm",
                )
                await until(
                    lambda: any(
                        "Microphone is silent" in line["text"] for s in private.of("status") for line in s["lines"]
                    ),
                    what="the alarm in the status strip",
                )
            finally:
                await student.close(anyone)
            await live.box.stop_lesson("panel")
            await until(lambda: public.of("lesson.ended") and private.of("lesson.ended"), what="the lesson's end")
        assert public.of("lesson.started") == [{"state": "live", "title": "Geometry"}]
        assert public.of("lesson.ended") == [{"state": "ended", "title": "Geometry"}]
        assert set(public.topics()) == {"state", "lesson.started", "lesson.ended"}
        assert lesson.join_code not in "\n".join(public.raw)
        assert private.of("viewer.joined")[0]["viewer"]["hand_raised"] is False
        assert private.of("hand.raised")[0]["viewer"] == private.of("viewer.joined")[0]["viewer"]["id"]
        assert private.of("lesson.started")[0]["lesson"]["join_code"] == lesson.join_code
        drill = next(a for a in private.of("alarm.raised") if a["name"] == "drill.microphone-silent")
        assert drill["text"] == "Microphone is silent: is it muted?"
        live_state = next(s for s in private.of("state") if s["lesson"])
        assert live_state["join_url"] == f"{live.base}/watch/{lesson.join_code}"


async def test_a_stream_keeps_alive_and_a_client_that_goes_away_frees_its_subscription(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_door, "KEEPALIVE_S", 0.3)
    monkeypatch.setattr(events_door, "TICK_S", 0.1)
    async with live_box(lan_config(tmp_path), with_devices=False) as live:
        streams = live.daemon.supervisor.get("web").app.state.event_streams  # type: ignore[union-attr]
        subscribers = len(live.box.bus._subscriptions)
        async with plain_client(live.base) as client:
            for _ in range(2):
                async with listen(client) as stream:
                    assert len(streams) == 1
                    await until(lambda: stream.comments >= 2, what="keep-alive comments")
                await until(lambda: len(streams) == 0, what="the stream's subscription to be freed")
                assert len(live.box.bus._subscriptions) == subscribers


async def test_the_pin_session_is_a_strict_http_only_cookie_under_the_pin_lock_out(tmp_path: Path) -> None:
    async with live_box(lan_config(tmp_path), with_devices=False) as live, plain_client(live.base) as c:
        assert (await c.post("/api/lessons", json={"title": "x"})).status_code == 401
        wrong = await teacher_session(c, "1111")
        assert wrong.status_code == 403
        assert "set-cookie" not in wrong.headers
        assert (await c.post("/api/panel/session", json={"pin": "12ab"})).status_code == 422
        answer = await teacher_session(c)
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("classbox_teacher=")
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Max-Age" not in cookie  # a browser session, not a year
        started = await c.post("/api/lessons", json={"title": "With a session"})
        assert started.status_code == 201
        assert PIN not in cookie
        panel = await c.get("/panel")
        assert 'id="start"' in panel.text

        fresh = plain_client(live.base, cookies={"classbox_teacher": "forged"})
        async with fresh:
            assert (await fresh.post("/api/lessons/current/stop")).status_code == 401
            assert 'id="pin-form"' in (await fresh.get("/panel")).text
            for _ in range(5):
                assert (await teacher_session(fresh, "9999")).status_code == 403
            locked = await teacher_session(fresh)
            assert locked.status_code == 403
            assert "too many" in locked.json()["detail"]

        live.box.config.web.teacher_pin_hash = NEW_PIN_HASH  # a new PIN ends the sessions of the old one
        assert (await c.post("/api/lessons/current/stop")).status_code == 401
        assert (await c.delete("/api/panel/session")).status_code == 200
        assert "classbox_teacher" not in c.cookies
        assert (await c.delete("/api/panel/session")).status_code == 401  # nothing to leave: nothing changed


async def test_the_panel_preview_plays_the_low_layer_and_is_not_a_student(tmp_path: Path) -> None:
    config = small_config(tmp_path, max_viewers=1)
    async with live_box(config) as live, plain_client(live.base) as client:
        lesson = await live.start_lesson("Chemistry")
        student = await join(client, f"/whep/{lesson.join_code}")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        sizes: set[tuple[int, int]] = set()
        tasks: list[asyncio.Task[None]] = []

        async def consume(track: Any) -> None:
            with contextlib.suppress(Exception):
                while True:
                    frame = await track.recv()
                    if track.kind == "video":
                        sizes.add((frame.width, frame.height))

        pc.on("track", lambda track: tasks.append(asyncio.create_task(consume(track), name="test:preview")))
        try:
            answer = await client.post("/api/panel/preview", json={"sdp": await offer_sdp(pc)})
            assert answer.status_code == 201, answer.text  # the one student's place is taken: a preview is not one
            await pc.setRemoteDescription(RTCSessionDescription(answer.json()["sdp"], "answer"))
            await until(lambda: sizes, 15.0, "preview frames")
            assert sizes == {(320, 180)}
            assert live.hub.count == 1
            assert [v["id"] for v in live.hub.viewers()] == [live.viewer_of(student).id]  # type: ignore[union-attr]
            health = live.box.health()["components"]["stream"]
            assert health["viewers"] == 1
            assert (await client.delete(f"/api/panel/preview/{live.viewer_of(student).id}")).status_code == 404  # type: ignore[union-attr]
            assert (await client.delete(f"/api/panel/preview/{answer.json()['id']}")).status_code == 200
            assert live.hub.count == 1
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pc.close()
            await student.close(client)


async def test_the_teacher_dismisses_a_hand_and_opens_courseware_on_the_board(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    await asyncio.to_thread(prepare_demo_courseware, config)
    async with live_box(config) as live, plain_client(live.base) as client:

        async def cached() -> bool:
            listing = await client.get("/api/courseware")
            items = [i for c in listing.json().get("courses", []) for i in c["items"]] if listing.is_success else []
            return bool(items) and all(i["state"] == "cached" for i in items)

        for _ in range(200):
            if await cached():
                break
            await asyncio.sleep(0.1)
        async with listen(client) as stream:
            opened = await client.post("/api/board/open", json={"course": "welcome", "path": "index.html"})
            assert opened.status_code == 200, opened.text
            assert opened.json()["opened"]["url"] == "/courseware/welcome/index.html"
            missing = await client.post("/api/board/open", json={"course": "welcome", "path": "nothing.html"})
            assert missing.status_code == 404
            climbing = await client.post("/api/board/open", json={"course": "welcome", "path": "../box.db"})
            assert climbing.status_code == 404
            await until(lambda: stream.of("board.open"), what="board.open on the bus")
            shown = {"course": "welcome", "path": "index.html", "url": "/courseware/welcome/index.html"}
            assert stream.of("board.open") == [{**shown, "type": "text/html"}]

            lesson = await live.start_lesson("Hands")
            student = await join(client, f"/whep/{lesson.join_code}")
            try:
                await until(lambda: student.channel.readyState == "open", what="the student's data channel")
                student.send("hand", raised=True)
                await until(lambda: stream.of("hand.raised"), what="the raised hand")
                viewer_id = stream.of("hand.raised")[0]["viewer"]
                assert (await client.post(f"/api/viewers/{viewer_id}/hand/dismiss")).status_code == 200
                await until(lambda: stream.of("hand.dismissed"), what="hand.dismissed")
                await until(
                    lambda: any(m.get("dismissed") for m in student.messages if m["type"] == "hand"),
                    what="the student told",
                )
                assert live.hub.viewers()[0]["hand_raised"] is False
                assert (await client.post("/api/viewers/nobody/hand/dismiss")).status_code == 404
            finally:
                await student.close(client)


async def test_the_panel_answers_a_browser_without_the_pin_with_the_pin_screen_only(tmp_path: Path) -> None:
    async with live_box(lan_config(tmp_path), with_devices=False) as live, plain_client(live.base) as c:
        lesson = await live.start_lesson("Secret code")
        page = await c.get("/panel")
        assert page.status_code == 200
        assert 'id="pin-form"' in page.text
        assert lesson.join_code not in page.text
        assert 'id="start"' not in page.text
        for path in ("/api/panel/qr.svg", "/api/status"):
            assert (await c.get(path)).status_code == 401
        assert (await c.post("/api/board/open", json={"course": "a", "path": "b"})).status_code == 401
        assert (await c.post("/api/panel/preview", json={"sdp": "v=0"})).status_code == 401
        await teacher_session(c)
        qr = await c.get("/api/panel/qr.svg")
        assert qr.status_code == 200
        assert qr.headers["content-type"] == "image/svg+xml"
        assert qr.headers["x-join-url"] == f"{live.base}/watch/{lesson.join_code}"


async def test_a_reader_too_slow_for_its_queue_loses_the_oldest_events_and_gets_the_whole_picture_again(
    tmp_path: Path,
) -> None:
    config = small_config(tmp_path)
    box = Box(config, EventBus())
    box.open()
    streams = SubscriptionGroup()
    body = events_door.stream(box, streams, events_door.Listener(teacher=True, language="en"))
    try:
        first = await anext(body)
        assert b"event: state" in first
        for n in range(events_door.QUEUE_EVENTS + 40):  # the browser reads nothing meanwhile
            box.bus.publish("hand.raised", viewer=f"v{n}", name=f"Student {n}")
        after = (await anext(body)).decode()
        assert "event: hand.raised" in after
        assert '"viewer":"v40"' in after  # the 40 oldest were dropped, the stream goes on from the oldest kept
        assert "event: state" in after  # and the page gets the whole picture again
        assert len(box.bus._subscriptions) == 1
    finally:
        await body.aclose()
        box.close()
    assert len(streams) == 0
    assert box.bus._subscriptions == []


async def test_stopping_the_box_ends_its_open_streams_at_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with live_box(lan_config(tmp_path), with_devices=False) as live, plain_client(live.base) as client:
        stream = Stream()
        async with client.stream("GET", "/api/events", timeout=None) as response:
            reading = asyncio.create_task(stream.read(response), name="test:sse-reader")
            await until(lambda: stream.of("state"), what="the first state")
            live.daemon.request_stop()
            await asyncio.wait_for(reading, 10)  # the box ended the response: no read error, no reset
            await live.task
    assert not [r for r in caplog.records if "graceful shutdown" in r.getMessage()]


def test_the_join_link_is_one_a_students_device_can_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = small_config(tmp_path)
    box = Box(config, EventBus())
    config.web.host = "0.0.0.0"
    config.web.port = 8080
    assert box.join_url("abc234", "10.1.2.3:8080") == "http://10.1.2.3:8080/watch/abc234"  # a tablet on the LAN
    monkeypatch.setattr("edge.lessons.links.lan_address", lambda: "192.168.4.20")
    assert box.join_url("abc234", "127.0.0.1:8080") == "http://192.168.4.20:8080/watch/abc234"  # the kiosk itself
    assert box.join_url("abc234", "localhost:8080") == "http://192.168.4.20:8080/watch/abc234"
    monkeypatch.setattr("edge.lessons.links.lan_address", lambda: None)  # offline and no network at all: what there is
    assert box.join_url("abc234", "127.0.0.1:8080") == "http://127.0.0.1:8080/watch/abc234"
    config.web.host = "127.0.0.1"  # a box that serves loopback only has no other link to give
    assert box.join_url("abc234", "127.0.0.1:8080") == "http://127.0.0.1:8080/watch/abc234"
    config.web.public_url = "https://room12.school.example/"
    assert box.join_url("abc234", "127.0.0.1:8080") == "https://room12.school.example/watch/abc234"


def test_an_admin_stream_carries_the_dashboards_events_and_a_teacher_stream_does_not() -> None:
    sample = Event("metrics.sample", {"cpu": 12.0})
    hand = Event("hand.raised", {"viewer": "v1"})
    admin = Listener(teacher=True, language="en", admin=True)
    teacher = Listener(teacher=True, language="en")
    anyone = Listener(teacher=False, language="en")
    assert visible(sample, admin) == {"cpu": 12.0}
    assert visible(hand, admin) == {"viewer": "v1"}
    assert visible(sample, teacher) is None
    assert visible(hand, anyone) is None
    assert visible(sample, anyone) is None
