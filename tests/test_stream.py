"""Live lesson over WebRTC: shared encoders, fan-out, WHEP, keyframes, viewers joining and leaving."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender

from edge.core.config import IceServer
from edge.recording.recorder import Recorder
from edge.recording.segments import closed_segments
from tests.stream_fixture import Player, join, live_box, small_config, until
from tests.turn_server import PASSWORD as TURN_PASSWORD
from tests.turn_server import USER as TURN_USER
from tests.turn_server import TurnServer


async def test_player_receives_decoded_video_and_audio_and_leaves_cleanly(tmp_path: Path) -> None:
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson("Fractions")
        player = await join(client, f"/whep/{lesson.join_code}")
        try:
            assert player.location.startswith(f"/whep/{lesson.join_code}/")
            assert "H264" in player.answer
            assert "opus" in player.answer
            await until(lambda: player.frames["video"] >= 10 and player.frames["audio"] >= 20, what="media")
            assert player.sizes == {(640, 360)}
            sent = await sender_report(player)  # the box's RTCP sender reports count what its feed sent
            viewer = live.viewer_of(player)
            assert viewer is not None
            assert 0 < sent <= viewer.video.rtp_packets
            await until(lambda: any(m["type"] == "welcome" for m in player.messages), what="welcome")
            welcome = next(m for m in player.messages if m["type"] == "welcome")
            assert welcome["title"] == "Fractions"
            player.channel.send("{not json")
            player.send("hand", raised=True)
            await until(lambda: any(m["type"] == "hand" for m in player.messages), what="hand echo")
            assert any(m["type"] == "error" and "refused" in m["message"] for m in player.messages)
            assert live.hub.viewers()[0]["hand_raised"] is True
            assert live.hub.count == 1
            assert live.media.fanout.subscribers == 2
            metrics = (await client.get("/metrics")).text
            assert 'classbox_viewers{component="stream"} 1.0' in metrics
            assert 'classbox_high_frames{component="media"}' in metrics
            listed = (await client.get("/api/viewers")).json()["viewers"]
            assert [v["layer"] for v in listed] == ["high"]
            assert listed[0]["name"] == "Student 1"
        finally:
            await player.close(client)
        assert live.hub.count == 0
        assert live.media.fanout.subscribers == 0
        assert (await client.delete(player.location)).status_code == 404
        await live.box.stop_lesson("panel")
    assert not [t for t in threading.enumerate() if t.name.startswith("encoder:")]


async def sender_report(player: Player) -> int:
    """The packet count in the first RTCP sender report the player's video receiver gets."""
    receiver = player.pc.getTransceivers()[0].receiver
    deadline = asyncio.get_running_loop().time() + 5
    while asyncio.get_running_loop().time() < deadline:
        for stat in (await receiver.getStats()).values():
            if stat.type == "remote-outbound-rtp" and stat.packetsSent:
                return int(stat.packetsSent)
        await asyncio.sleep(0.1)
    raise AssertionError("no sender report with a packet count within 5 s")


async def test_viewers_only_through_a_turn_relay_when_the_box_is_set_relay_only(tmp_path: Path) -> None:
    turn = TurnServer(tmp_path / "turn")
    config = small_config(tmp_path)
    config.stream.ice_servers = [IceServer(urls=[turn.url], username=TURN_USER, credential=TURN_PASSWORD)]
    config.stream.relay_only = True
    try:
        async with live_box(config) as live, httpx.AsyncClient(base_url=live.base) as client:
            lesson = await live.start_lesson()
            player = await join(client, f"/whep/{lesson.join_code}")
            try:
                await until(lambda: player.frames["video"] >= 10 and player.frames["audio"] >= 20, 15.0, "media")
                viewer = live.viewer_of(player)
                assert viewer is not None
                assert viewer.video_sender is not None
                pair = viewer.video_sender.transport.transport._connection._nominated[1]
                assert pair.local_candidate.type == "relay"
                assert "typ host" not in player.answer  # the box's own address is not handed out
                assert viewer.video.rtp_packets > 0
                assert viewer.audio.rtp_packets > 0
            finally:
                await player.close(client)
            assert live.hub.count == 0
        assert turn.allocations() >= 1
    finally:
        turn.close()


@pytest.mark.slow
async def test_pli_gets_a_keyframe_within_a_second(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    config.stream.keyframe_interval_s = 10.0  # so only a requested keyframe can explain one
    async with live_box(config) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        player = await join(client, f"/whep/{lesson.join_code}")
        try:
            await until(lambda: player.frames["video"] >= 5, what="video")
            encoder = live.media.encoder("high")
            assert encoder is not None
            await until(lambda: encoder.keyframes_sent >= 1)
            assert encoder.forced_keyframes >= 1  # the viewer's arrival asked for one (the GOP is 10 s)
            before = encoder.forced_keyframes
            receiver = next(t.receiver for t in player.pc.getTransceivers() if t.kind == "video")
            ssrc = next(iter(receiver._RTCRtpReceiver__remote_streams))  # type: ignore[attr-defined]
            loop_time = asyncio.get_running_loop().time
            asked = loop_time()
            await receiver._send_rtcp_pli(ssrc)
            await until(lambda: encoder.forced_keyframes > before, within=1.0, what="keyframe after PLI")
            assert loop_time() - asked < 1.0
            viewer = live.hub.viewers()[0]
            assert viewer["keyframe_requests"] >= 1
        finally:
            await player.close(client)


async def test_leaving_frees_the_peer_connection_subscriptions_and_tasks(tmp_path: Path) -> None:
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        await until(lambda: live.media.stats()["high_frames"] > 0, what="the lesson's media flowing")
        tasks_before = len(asyncio.all_tasks())
        player = await join(client, f"/whep/{lesson.join_code}")
        await until(lambda: player.frames["video"] >= 3, what="video")
        viewer = live.viewer_of(player)
        assert viewer is not None
        pc = viewer.pc
        assert len(asyncio.all_tasks()) > tasks_before
        await player.close(client)
        assert pc.connectionState == "closed"
        assert live.hub.count == 0
        assert live.media.fanout.subscribers == 0
        await until(lambda: len(asyncio.all_tasks()) <= tasks_before, what="viewer tasks to end")


async def test_a_viewer_that_vanishes_does_not_disturb_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        gone = await join(client, f"/whep/{lesson.join_code}")
        staying = await join(client, f"/whep/{lesson.join_code}")
        try:
            await until(lambda: gone.frames["video"] >= 3 and staying.frames["video"] >= 3, what="video for both")
            # a phone that lost the network: no DELETE, no DTLS goodbye, its sockets simply go away
            for protocol in gone.sockets():
                protocol.transport.close()
            seen = staying.frames["video"]
            await until(lambda: staying.frames["video"] >= seen + 15, what="the other viewer's video going on")
            assert live.hub.count == 2  # the box still feeds the vanished one until ICE gives up on it
            assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
        finally:
            await gone.close()
            await staying.close(client)


@pytest.mark.slow
async def test_ten_viewers_all_receive(tmp_path: Path) -> None:
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        url = f"/whep/{lesson.join_code}"
        players = list(await asyncio.gather(*(join(client, url, data_saver=True) for _ in range(10))))
        try:
            await until(lambda: all(p.frames["video"] >= 5 and p.frames["audio"] >= 10 for p in players), 20.0)
            assert all(p.sizes == {(320, 180)} for p in players)  # data saver: the low layer
            assert live.hub.count == 10
            assert {v["layer"] for v in live.hub.viewers()} == {"low"}
            assert live.media.fanout.subscribers == 20
        finally:
            await asyncio.gather(*(p.close(client) for p in players))
        assert live.hub.count == 0


async def test_stopping_the_lesson_ends_every_viewer(tmp_path: Path) -> None:
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson("Poetry")
        players = [await join(client, f"/whep/{lesson.join_code}", data_saver=True) for _ in range(3)]
        try:
            await until(lambda: all(p.frames["video"] >= 2 for p in players), what="video")
            await live.box.stop_lesson("panel")
            assert all(p.ended.is_set() for p in players)
            assert live.hub.count == 0
            assert live.media.fanout.subscribers == 0
            assert live.media.encoder("high") is None
            await until(lambda: all(t.done() for p in players for t in p.tasks), what="players' tracks to end")
            status = (await client.get(f"/api/watch/{lesson.join_code}")).json()
            assert status == {"state": "ended", "title": "Poetry"}
            late = await client.post(
                f"/whep/{lesson.join_code}", content=players[0].answer, headers={"Content-Type": "application/sdp"}
            )
            assert late.status_code == 404
            assert "ended" in late.json()["detail"]
        finally:
            for player in players:
                await player.close()


async def test_refusals_have_their_status_and_reason(tmp_path: Path) -> None:
    config = small_config(tmp_path, max_viewers=1)
    async with live_box(config) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        sdp_headers = {"Content-Type": "application/sdp"}
        wrong = await client.post("/whep/nosuchcode", content="v=0\r\n", headers=sdp_headers)
        assert wrong.status_code == 404
        assert "no live lesson" in wrong.json()["detail"]
        assert wrong.headers["access-control-allow-origin"] == "*"
        for body, reason in [
            ("hello", "must start with v=0"),
            ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "no audio or video"),
            ("v=0\r\nm=video nonsense\r\n", "could not be read"),
        ]:
            bad = await client.post(f"/whep/{lesson.join_code}", content=body, headers=sdp_headers)
            assert bad.status_code == 400, body
            assert reason in bad.json()["detail"]
        typed = await client.post(f"/whep/{lesson.join_code}", content="v=0", headers={"Content-Type": "text/plain"})
        assert typed.status_code == 415
        vp8_only = await _vp8_only_offer()
        refused = await client.post(f"/whep/{lesson.join_code}", content=vp8_only, headers=sdp_headers)
        assert refused.status_code == 400
        assert "H.264" in refused.json()["detail"]
        assert live.hub.count == 0
        first = await join(client, f"/whep/{lesson.join_code}", data_saver=True)
        try:
            full = await client.post(f"/whep/{lesson.join_code}", content=vp8_only, headers=sdp_headers)
            assert full.status_code == 503
            assert "1 viewers" in full.json()["detail"]
            assert live.hub.count == 1
        finally:
            await first.close(client)


async def _vp8_only_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        video = pc.addTransceiver("video", direction="recvonly")
        video.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
        )
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def test_cors_preflight_and_ice_servers_in_link_headers(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    config.stream.ice_servers = [
        IceServer(urls=["stun:stun.school.example:3478"]),
        IceServer(urls=["turn:turn.school.example:3478?transport=udp"], username="box", credential='se"cret'),
    ]
    async with live_box(config, with_devices=False) as live, httpx.AsyncClient(base_url=live.base) as client:
        unknown = await client.options("/whep/abcdef")
        assert unknown.status_code == 204
        assert "POST" in unknown.headers["access-control-allow-methods"]
        assert "Location" in unknown.headers["access-control-expose-headers"]
        assert unknown.headers.get_list("link") == []  # no TURN credential for a code that is not a live lesson
        lesson = await live.start_lesson()
        response = await client.options(f"/whep/{lesson.join_code.upper()}")
        assert response.status_code == 204
        links = response.headers.get_list("link")
        assert links[0] == '<stun:stun.school.example:3478>; rel="ice-server"'
        assert links[1] == (
            '<turn:turn.school.example:3478?transport=udp>; rel="ice-server"; username="box"; '
            'credential="se\\"cret"; credential-type="password"'
        )
        patch = await client.patch("/whep/abcdef/123")
        assert patch.status_code == 405
        await live.box.stop_lesson("panel")
        ended = await client.options(f"/whep/{lesson.join_code}")
        assert ended.headers.get_list("link") == []


def frame_key(annex_b: bytes) -> str | None:
    """A hash of one H.264 frame's slice NAL units (Annex-B), whatever parameter sets, SEI or AUD surround them."""
    units = [unit.rstrip(b"\0") for unit in annex_b.split(b"\0\0\1")]
    slices = [unit for unit in units if unit and unit[0] & 0x1F in (1, 5)]
    return hashlib.sha256(b"".join(slices)).hexdigest() if slices else None


def recorded_frames(segments: list[Path]) -> list[str]:
    """The frame keys of the video packets in recorder segment files, read back with PyAV."""
    keys = []
    for segment in segments:
        with av.open(str(segment)) as container:
            keys += [frame_key(bytes(p)) for p in container.demux(video=0) if p.size]
    return [key for key in keys if key]


@pytest.mark.slow
async def test_recorder_and_viewers_share_the_same_packets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aiortc.rtcrtpreceiver

    received: list[bytes] = []  # every encoded H.264 frame the player's receiver hands its decoder
    real_decoder = aiortc.rtcrtpreceiver.get_decoder

    def spied_decoder(codec: Any) -> Any:
        decoder = real_decoder(codec)
        if codec.name == "H264":
            decode = decoder.decode
            decoder.decode = lambda frame: (received.append(bytes(frame.data)), decode(frame))[1]
        return decoder

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", spied_decoder)
    config = small_config(tmp_path)
    config.recording.enabled = True
    config.recording.segment_seconds = 1.0
    async with live_box(config) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        events = live.box.bus.subscribe("recording.segment")
        player = await join(client, f"/whep/{lesson.join_code}")
        try:
            await until(lambda: player.frames["video"] >= 10, what="video")
            assert live.media.fanout.subscribers == 3  # the viewer's video and audio, the recorder's high + audio
            encoders = sorted(t.name for t in threading.enumerate() if t.name.startswith("encoder:"))
            assert encoders == ["encoder:audio", "encoder:high", "encoder:low", "encoder:lowest"]  # one per layer
            for _ in range(2):  # segments the recorder closed while the viewer watched
                await asyncio.wait_for(events.get(), 20)
        finally:
            events.close()
            await player.close(client)
        recorder = live.box.parts.recorder
        assert isinstance(recorder, Recorder)
        segments = closed_segments(recorder.root / lesson.id)
        recorded = await asyncio.to_thread(recorded_frames, segments)
        viewed = [key for key in map(frame_key, received) if key]
        common = [key for key in viewed if key in set(recorded)]
        assert len(common) >= 10, (len(viewed), len(recorded), len(common))
        assert common == [key for key in recorded if key in set(common)]  # the same frames, in the same order
        await live.box.stop_lesson("panel")
        assert live.media.fanout.subscribers == 0


async def test_board_events_reach_every_viewer_on_the_data_channel(tmp_path: Path) -> None:
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        player = await join(client, f"/whep/{lesson.join_code}", data_saver=True)
        try:
            await until(lambda: any(m["type"] == "welcome" for m in player.messages), what="welcome")
            live.box.bus.publish("board.stroke", points=[[0.1, 0.2], [0.3, 0.4]], colour="#d00")
            live.box.bus.publish("camera.preset", preset=2)  # not a lesson event for students
            await until(lambda: any(m["type"] == "board.stroke" for m in player.messages), what="stroke")
            stroke = next(m for m in player.messages if m["type"] == "board.stroke")
            assert stroke["points"] == [[0.1, 0.2], [0.3, 0.4]]
            assert stroke["at"] > lesson.started_at
            assert not any(m["type"] == "camera.preset" for m in player.messages)
        finally:
            await player.close(client)


async def test_viewers_are_asked_to_rejoin_when_the_shared_packets_stop_mid_lesson(tmp_path: Path) -> None:
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        player = await join(client, f"/whep/{lesson.join_code}", data_saver=True)
        try:
            await until(lambda: any(m["type"] == "welcome" for m in player.messages), what="welcome")
            live.media.fanout.close()  # what a restart of the media component does to open subscriptions
            await live.hub.check_viewers()
            assert {"type": "reconnect"} in player.messages
            assert live.hub.count == 0
            again = await join(client, f"/whep/{lesson.join_code}", data_saver=True)
            try:
                await until(lambda: again.frames["video"] >= 2, what="video after rejoining")
            finally:
                await again.close(client)
        finally:
            await player.close()
