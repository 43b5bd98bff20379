"""The WHIP uplink against a real SFU: Janus's VideoRoom behind simple-whip-server, in a namespace of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from edge.box import Box
from edge.core.config import BoxConfig
from edge.courseware import service as courseware_service
from edge.courseware.cache import CoursewareComponent
from edge.stream import whip
from edge.stream.whip import DEAD_AFTER_S, Uplink
from sync.publish import publish
from tests.nginx_server import Nginx
from tests.servers.janus_sfu import Sfu, Subscriber, available, running_sfu
from tests.stream_fixture import join, live_box, offer_sdp, small_config, until
from tests.test_courseware import make_course

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(available()), reason=available() or "ok")]

TOKEN = "s3cret-whip-token"


@pytest.fixture(scope="module")
def sfu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sfu]:
    with running_sfu(tmp_path_factory.mktemp("whip-sfu")) as server:
        yield server


def published_config(tmp_path: Path, sfu: Sfu, endpoint: str, token: str = TOKEN) -> BoxConfig:
    sfu.create_endpoint(endpoint, TOKEN, label=endpoint)
    config = small_config(tmp_path)
    config.uplink.whip_url = sfu.endpoint_url(endpoint)
    config.uplink.token = token
    config.uplink.player_url = "https://watch.example.org/{join_code}"
    config.uplink.mode = "both"
    config.stream.lowest.enabled = False
    return config


def uplink_of(box: Box) -> Uplink:
    uplink = box.parts.uplink
    assert isinstance(uplink, Uplink)
    return uplink


async def test_a_cloud_student_gets_the_lesson_through_janus_and_janus_dying_is_survived(
    tmp_path: Path, sfu: Sfu, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = published_config(tmp_path, sfu, "lesson")
    config.uplink.layers = ["high", "low"]  # each a video stream of its own at Janus
    async with live_box(config) as live, httpx.AsyncClient(base_url=live.base, timeout=10) as client:
        lesson = await live.start_lesson("Fractions")
        uplink = uplink_of(live.box)
        await until(lambda: uplink.state == "publishing", 20, "the uplink publishing to Janus")
        assert live.box.join_url(lesson.join_code) == f"https://watch.example.org/{lesson.join_code}"
        budget = courseware_service.budget(live.box.courseware)
        assert budget is not None
        live_kbps = config.stream.high.kbps + config.stream.low.kbps + config.stream.audio_kbps
        assert budget.status()["live_reservation_kbps"] == live_kbps

        student = Subscriber(sfu.janus_url)
        async with httpx.AsyncClient(timeout=40) as janus:
            try:
                await student.watch(janus, "lesson")
                await until(lambda: student.frames["video"] >= 20 and student.frames["audio"] >= 20, 20, "cloud frames")
                assert student.pc.remoteDescription.sdp.count("m=video") == 2
            finally:
                await student.close()

        local = await join(client, f"/whep/{lesson.join_code}")  # a local viewer beside the cloud
        try:
            await until(lambda: local.frames["video"] >= 5, 15, "local frames")
            sfu.stop_janus()
            stopped_at = asyncio.get_running_loop().time()
            await until(lambda: uplink.state == "reconnecting", 5.0, "the dead uplink reported")
            noticed = asyncio.get_running_loop().time() - stopped_at
            assert noticed >= DEAD_AFTER_S - 1  # told from RTCP silence, not guessed at once
            assert "uplink" in live.box.health()["alarms"]
            assert live.box.health()["components"]["uplink"]["status"] == "degraded"
            before = local.frames["video"]
            await until(lambda: local.frames["video"] >= before + 10, 10, "local frames while the cloud is gone")
            assert live.box.current_lesson() is not None

            await asyncio.to_thread(sfu.start_janus)
            await until(lambda: uplink.state == "publishing", 30, "publishing again once Janus is back")
            assert uplink.reconnects >= 1
            assert "uplink" not in live.box.health()["alarms"]
            metrics = (await client.get("/metrics")).text
            assert 'classbox_uplink_reconnects_total{component="uplink"}' in metrics
            assert 'classbox_uplink_publishing{component="uplink"} 1.0' in metrics

            await a_short_cut_is_mended_by_an_ice_restart_the_student_never_notices(sfu, uplink)
            await a_long_cut_gets_a_new_session_once_the_link_is_back(sfu, uplink, monkeypatch)
        finally:
            await local.close(client)
        await live.box.stop_lesson("panel")
        assert uplink.state == "off"


async def a_short_cut_is_mended_by_an_ice_restart_the_student_never_notices(sfu: Sfu, uplink: Uplink) -> None:
    """The school's uplink drops for a few seconds: Janus still holds the box's session, so the box
    restarts ICE on it (PATCH), and the student subscribed at Janus keeps watching without subscribing again."""
    student = Subscriber(sfu.janus_url)
    async with httpx.AsyncClient(timeout=40) as janus:
        try:
            await student.watch(janus, "lesson")
            await until(lambda: student.frames["video"] >= 10, 20, "cloud frames before the cut")
            reconnects, sessions, restarts = uplink.reconnects, uplink.sessions, uplink.ice_restarts
            sfu.set_link(up=False)
            try:
                await until(lambda: uplink.reconnects > reconnects, 5.0, "the cut link reported")
                await asyncio.sleep(2.0)  # still down: the restarts tried meanwhile cannot reach Janus
                assert uplink.state == "reconnecting"
                assert uplink.ice_restarts == restarts
                frames = student.frames["video"]
            finally:
                sfu.set_link(up=True)
            await until(lambda: uplink.state == "publishing", 15, "publishing again once the link is back")
            assert (uplink.ice_restarts, uplink.sessions) == (restarts + 1, sessions)  # the same session
            await until(lambda: student.frames["video"] >= frames + 30, 15, "the same student's frames after it")
            metrics = uplink.health().metrics
            assert metrics["uplink_ice_restarts_total"] == restarts + 1
            assert metrics["uplink_sessions_left_on_server"] == 0
        finally:
            await student.close()


async def a_long_cut_gets_a_new_session_once_the_link_is_back(
    sfu: Sfu, uplink: Uplink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link down longer than a restart may wait: a new session, after ending the one the cut left on Janus."""
    monkeypatch.setattr(whip, "RESTART_GIVE_UP_S", 1.0)  # the give-up comes sooner; the path is the same
    reconnects, sessions = uplink.reconnects, uplink.sessions
    sfu.set_link(up=False)
    try:
        await until(lambda: uplink.reconnects > reconnects, 5.0, "the cut link reported")
        left = lambda: uplink.health().metrics["uplink_sessions_left_on_server"]  # noqa: E731
        await until(lambda: left() == 1, 12.0, "the DELETE the cut link refused")
    finally:
        sfu.set_link(up=True)
    await until(lambda: uplink.state == "publishing", 15, "publishing again once the link is back")
    assert left() == 0  # the session the cut link left was ended first: the server took the new one
    assert uplink.sessions == sessions + 1


async def test_a_sync_pull_during_a_published_lesson_stays_under_the_link_minus_the_live_bitrate(
    tmp_path: Path, sfu: Sfu
) -> None:
    src, out = tmp_path / "src", tmp_path / "repo"
    make_course(src, video_mb=0.6)
    await asyncio.to_thread(publish, src, out, tmp_path / "keys")
    nginx = await asyncio.to_thread(Nginx, tmp_path / "nginx", out)
    config = published_config(tmp_path, sfu, "sync")
    config.courseware.pull_interval_s = 3600
    config.budget.link_kbps, config.budget.live_lesson_kbps = 2400, 0  # only the publication reserves
    try:
        async with live_box(config) as live:
            await live.start_lesson("Maps")
            uplink = uplink_of(live.box)
            await until(lambda: uplink.state == "publishing", 20, "the uplink publishing to Janus")
            live_kbps = config.stream.high.kbps + config.stream.audio_kbps
            courseware = live.box.courseware
            assert isinstance(courseware, CoursewareComponent)
            budget = courseware_service.budget(live.box.courseware)
            assert budget is not None
            assert budget.status()["rate_kbps"] == 2400 - live_kbps
            # The repository is named only now: the box's first pull is the one during the lesson.
            courseware_config = live.box.config.courseware
            courseware_config.repo_url = nginx.url
            courseware_config.trusted_root = str(out / "metadata" / "1.root.json")
            report = await courseware.pull_once()
            assert report is not None
            assert report.items_complete == report.items
            assert report.bytes_from_origin > 600_000
            kbps = report.bytes_from_origin * 8 / 1000 / report.seconds
            assert kbps <= (2400 - live_kbps) * 1.1, f"sync took {kbps:.0f} kbit/s beside a {live_kbps} kbit/s lesson"
            assert uplink.state == "publishing"

            live.box.config.uplink.mode = "cloud"  # students watch only through the cloud: the box sends them there
            async with httpx.AsyncClient(base_url=live.base, timeout=10) as client:
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                try:
                    offer = await offer_sdp(pc)
                    lesson = live.box.current_lesson()
                    assert lesson is not None
                    answer = await client.post(
                        f"/whep/{lesson.join_code}", content=offer, headers={"Content-Type": "application/sdp"}
                    )
                finally:
                    await pc.close()
            assert answer.status_code == 503
            assert "watched through the cloud server" in answer.json()["detail"]
            assert live.box.join_url(lesson.join_code) == f"https://watch.example.org/{lesson.join_code}"
    finally:
        await asyncio.to_thread(nginx.stop)
