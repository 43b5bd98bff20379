"""Live lesson over WebRTC: shared encoders, fan-out, WHEP, keyframes, viewers joining and leaving."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from tests.stream_fixture import join, live_box, small_config, until


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
            await until(lambda: any(m["type"] == "welcome" for m in player.messages), what="welcome")
            welcome = next(m for m in player.messages if m["type"] == "welcome")
            assert welcome["title"] == "Fractions"
            assert live.hub.count == 1
            assert live.media.fanout.subscribers == 2
        finally:
            await player.close(client)
        assert live.hub.count == 0
        assert live.media.fanout.subscribers == 0
        assert (await client.delete(player.location)).status_code == 404
        await live.box.stop_lesson("panel")
    assert not [t for t in threading.enumerate() if t.name.startswith("encoder:")]


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
            before = encoder.forced_keyframes
            receiver = next(t.receiver for t in player.pc.getTransceivers() if t.kind == "video")
            ssrc = next(iter(receiver._RTCRtpReceiver__remote_streams))  # type: ignore[attr-defined]
            loop_time = __import__("asyncio").get_running_loop().time
            asked = loop_time()
            await receiver._send_rtcp_pli(ssrc)
            await until(lambda: encoder.forced_keyframes > before, within=1.0, what="keyframe after PLI")
            assert loop_time() - asked < 1.0
            viewer = live.hub.viewers()[0]
            assert viewer["keyframe_requests"] >= 1
        finally:
            await player.close(client)
