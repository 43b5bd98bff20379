"""Layer choice per viewer: the policy on its own, and the real receiver-report path under packet loss."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from bench._webrtc import with_transport_cc
from edge.stream import adaptation as adaptation_module
from edge.stream.layers import LayerPolicy, LinkReport, SendCapacity
from tests.stream_fixture import join, live_box, small_config, until

GOOD = LinkReport(loss=0.0, rtt_s=0.02)
LOSSY = LinkReport(loss=0.2, rtt_s=0.02)
SLOW = LinkReport(loss=0.0, rtt_s=1.5)


def test_policy_steps_down_at_once_and_up_only_after_good_reports() -> None:
    policy = LayerPolicy(good_reports_to_rise=3)
    assert policy.next_layer("high", LOSSY, data_saver=False) == "low"
    assert policy.next_layer("low", SLOW, data_saver=False) == "none"
    assert policy.next_layer("none", LOSSY, data_saver=False) == "none"
    layers = [policy.next_layer("none", GOOD, data_saver=False) for _ in range(3)]
    assert layers == ["none", "none", "low"]
    assert policy.next_layer("low", None, data_saver=False) == "low"  # no news keeps the layer
    assert policy.next_layer("low", LinkReport(0.05, 0.02), data_saver=False) == "low"  # in between: stay


def test_a_viewers_bandwidth_estimate_below_the_sending_rate_steps_it_down_but_never_up() -> None:
    policy = LayerPolicy(good_reports_to_rise=1)
    ramping = [LinkReport(0.0, 0.02, bandwidth_kbps=kbps, sending_kbps=1300) for kbps in (400, 600, 900)]
    assert [policy.next_layer("high", r, data_saver=False) for r in ramping] == ["high"] * 3  # a browser warming up
    congested = LinkReport(loss=0.0, rtt_s=0.02, bandwidth_kbps=500, sending_kbps=1300)
    assert policy.next_layer("high", congested, data_saver=False) == "high"  # one report could be a keyframe burst
    assert policy.next_layer("high", congested, data_saver=False) == "low"
    assert policy.steps_for_estimate == 1
    assert policy.next_layer("low", LinkReport(0.0, 0.02, 500, 300), data_saver=False) == "none"  # still narrow
    assert "estimate 500 kbps" in policy.describe(congested)
    burst = LayerPolicy()  # a keyframe makes one interval's sending rate jump: the smoothed rate does not
    rates = [1200, 1200, 1200, 4000, 1200]
    reports = [LinkReport(0.0, 0.02, bandwidth_kbps=1500, sending_kbps=kbps) for kbps in rates]
    assert [burst.next_layer("high", r, data_saver=False) for r in reports] == ["high"] * 5
    enough = LinkReport(loss=0.0, rtt_s=0.02, bandwidth_kbps=1100, sending_kbps=1300)
    assert policy.next_layer("high", enough, data_saver=False) == "high"  # within the margin: estimates wobble
    roomy = LinkReport(loss=0.0, rtt_s=0.02, bandwidth_kbps=9000, sending_kbps=300)
    assert policy.next_layer("low", roomy, data_saver=False) == "high"  # rising rests on loss and RTT
    assert policy.next_layer("low", LinkReport(0.0, 0.02, None, 300), data_saver=False) == "high"


THREE = {"ladder": ("none", "lowest", "low", "high"), "layer_kbps": {"lowest": 100.0, "low": 350.0, "high": 1500.0}}


def estimated(kbps: float, loss: float = 0.0, probes: list[bool | None] | None = None) -> LinkReport:
    """A report with the box's own estimate of the link (transport feedback)."""
    return LinkReport(loss=loss, rtt_s=0.05, estimate_kbps=kbps, probe_results=probes or [])


def test_with_an_estimate_the_viewer_steps_down_one_layer_at_a_time_to_audio_only_last() -> None:
    policy = LayerPolicy(**THREE)  # type: ignore[arg-type]
    assert policy.next_layer("high", estimated(1700), False, now=0) == "high"  # short of 85 %, not of 100 %: hold
    assert policy.next_layer("high", estimated(1400), False, now=1) == "high"  # one report short could be a burst
    assert policy.next_layer("high", estimated(1400), False, now=2) == "low"
    assert policy.next_layer("low", estimated(150), False, now=3) == "lowest"  # far short: at once, one step
    assert policy.next_layer("lowest", estimated(150), False, now=4) == "lowest"  # 148 kbps fits 150
    assert policy.next_layer("lowest", estimated(60), False, now=5) == "none"  # not even the lowest layer fits
    assert policy.next_layer("none", estimated(60), False, now=6) == "none"


def test_with_an_estimate_a_short_estimate_without_a_queue_or_loss_keeps_the_layer() -> None:
    policy = LayerPolicy(**THREE)  # type: ignore[arg-type]
    drained = LinkReport(loss=0.0, rtt_s=0.05, estimate_kbps=1100, congested=False)  # a keyframe's queue, gone
    assert [policy.next_layer("high", drained, False, now=t) for t in range(5)] == ["high"] * 5
    assert policy.next_layer("high", estimated(1100), False, now=6) == "high"
    assert policy.next_layer("high", estimated(1100), False, now=7) == "low"  # a queue that stays costs the layer


def test_with_an_estimate_the_viewer_is_never_left_below_a_layer_that_fits() -> None:
    policy = LayerPolicy(**THREE)  # type: ignore[arg-type]
    assert policy.next_layer("none", estimated(200), False, now=0) == "lowest"
    assert policy.next_layer("none", estimated(500), False, now=1) == "low"  # up: straight to the best that fits
    assert policy.next_layer("low", estimated(500), False, now=2) == "low"  # high needs 1548 / 0.85
    assert policy.next_layer("low", estimated(1850), False, now=3) == "high"
    assert policy.next_layer("high", estimated(1850), True, now=4) == "low"  # data saver caps it
    assert policy.next_layer("low", estimated(9000), True, now=5) == "low"


def test_from_the_start_a_viewer_climbs_probe_by_probe_until_one_fails() -> None:
    policy = LayerPolicy(stable_s=3.0, startup_stable_s=1.0, **THREE)  # type: ignore[arg-type]
    assert policy.next_layer("lowest", estimated(300), False, now=0) == "lowest"
    assert policy.probe_kbps("lowest", False, now=0.5) is None  # the first keyframe goes through first
    assert policy.probe_kbps("lowest", False, now=1.0) == pytest.approx(398 / 0.85)
    assert policy.next_layer("lowest", estimated(470, probes=[True]), False, now=1.5) == "low"
    assert policy.probe_kbps("low", False, now=2.6) == pytest.approx(1548 / 0.85)  # a second later, not three
    assert policy.next_layer("low", estimated(800, probes=[False]), False, now=3.0) == "low"
    assert policy.probe_kbps("low", False, now=7.0) is None  # after a failure: the stable spell and the backoff
    assert policy.probe_kbps("low", False, now=9.5) is not None


def test_a_probe_the_box_could_not_send_in_full_is_asked_again_at_once_and_the_climb_goes_on() -> None:
    policy = LayerPolicy(**THREE)  # type: ignore[arg-type]
    policy.next_layer("lowest", estimated(300), False, now=0.0)
    assert policy.probe_kbps("lowest", False, now=1.0) is not None
    assert policy.next_layer("lowest", estimated(400, probes=[None]), False, now=2.0) == "lowest"
    assert policy.probe_kbps("lowest", False, now=2.0) == pytest.approx(398 / 0.85)  # no backoff
    assert policy.next_layer("lowest", estimated(470, probes=[True]), False, now=3.0) == "low"
    assert policy.probe_kbps("low", False, now=4.0) is not None  # still climbing a second after each step


def test_a_step_down_ends_the_climb_and_the_next_probe_waits_for_the_backoff() -> None:
    policy = LayerPolicy(stable_s=3.0, startup_stable_s=1.0, probe_backoff_s=3.0, **THREE)  # type: ignore[arg-type]
    policy.next_layer("low", estimated(500), False, now=0.0)
    assert policy.probe_kbps("low", False, now=1.0) is not None
    assert policy.next_layer("low", estimated(2000, probes=[True]), False, now=2.0) == "high"  # climbed to the top
    assert policy.next_layer("high", estimated(500), False, now=10.0) == "low"  # the link dropped: far short
    assert policy.probe_kbps("low", False, now=11.0) is None  # not a climbing start's second: the queue drains
    assert policy.probe_kbps("low", False, now=12.9) is None
    assert policy.probe_kbps("low", False, now=13.0) is not None  # the stable spell and the backoff, then again


def test_probes_come_after_a_stable_spell_and_back_off_exponentially_after_failures_up_to_10_s() -> None:
    policy = LayerPolicy(stable_s=3.0, startup_stable_s=3.0, probe_backoff_s=3.0, **THREE)  # type: ignore[arg-type]
    assert policy.next_layer("low", estimated(600), False, now=0) == "low"
    assert policy.probe_kbps("low", False, now=1) is None  # not stable long enough
    target = policy.probe_kbps("low", False, now=3)
    assert target == pytest.approx(1548 / 0.85)  # the next layer's need, with the headroom
    assert policy.probe_kbps("low", False, now=3.5) is None  # one probe at a time
    starts = [3.0]
    now = 3.0
    for _ in range(5):
        policy.next_layer("low", estimated(600, probes=[False]), False, now=now + 1)
        now += 1
        while policy.probe_kbps("low", False, now=now) is None:
            now += 0.5
        starts.append(now)
    waits = [b - a - 1 for a, b in zip(starts, starts[1:], strict=False)]
    assert waits == [3.0, 6.0, 10.0, 10.0, 10.0]  # at most 10 s: a link that came back is found soon
    policy.next_layer("low", estimated(1850, probes=[True]), False, now=now + 1)
    assert policy.next_layer("low", estimated(1850), False, now=now + 2) == "high"
    assert policy.probe_kbps("high", False, now=now + 100) is None  # nothing above the top layer


def test_data_saver_caps_at_the_low_layer() -> None:
    policy = LayerPolicy(good_reports_to_rise=1)
    assert policy.next_layer("high", None, data_saver=True) == "low"
    assert policy.next_layer("low", GOOD, data_saver=True) == "low"
    assert policy.next_layer("low", GOOD, data_saver=False) == "high"


@pytest.mark.slow
async def test_a_lossy_link_gets_a_lower_layer_then_climbs_back(tmp_path: Path) -> None:
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        live.hub.monitor_interval_s = 0.3
        lesson = await live.start_lesson()
        player = await join(client, f"/whep/{lesson.join_code}")
        try:
            await until(lambda: player.frames["video"] >= 3, what="video")
            viewer = live.viewer_of(player)
            assert viewer is not None
            assert viewer.video_sender is not None
            viewer.policy.good_reports_to_rise = 2
            with player.lossy_link(lose_one_in=3):
                await until(lambda: viewer.layer == "none", 15.0, "the viewer dropped to audio only")
                assert viewer.loss > 0.1
                assert viewer.video.retransmitted > 0  # the player's NACKs were answered from the feed's history
                assert {"type": "layer", "layer": "low"} in player.messages
            await until(lambda: viewer.layer == "high", 20.0, "the viewer climbed back")
            player.sizes.clear()
            await until(lambda: (640, 360) in player.sizes, what="high-layer pictures again")
            stats = live.hub.viewers()[0]
            assert stats["kbps"] > 0
            assert stats["rtt_ms"] is not None
        finally:
            await player.close(client)


async def test_a_viewer_reporting_a_narrow_link_by_remb_gets_a_lower_layer(tmp_path: Path) -> None:
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        live.hub.monitor_interval_s = 0.3
        lesson = await live.start_lesson()
        player = await join(client, f"/whep/{lesson.join_code}")
        try:
            await until(lambda: player.frames["video"] >= 3, what="video")
            viewer = live.viewer_of(player)
            assert viewer is not None
            assert viewer.layer == "high"
            receiver = player.pc.getTransceivers()[0].receiver
            box_video = player.box_ssrc("video")
            narrow = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(100_000, [box_video]))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while viewer.layer == "high" and loop.time() < deadline:  # as a browser on a narrow link would
                await receiver._send_rtcp(narrow)
                await asyncio.sleep(0.05)
            assert viewer.layer != "high"
            assert viewer.bandwidth_kbps == 100
            await until(lambda: any(m["type"] == "layer" for m in player.messages), what="the player told")
            assert live.hub.viewers()[0]["bandwidth_kbps"] == 100
        finally:
            await player.close(client)


def test_send_capacity_sheds_a_tenth_while_the_loop_lags_and_regrows_when_calm() -> None:
    capacity = SendCapacity(overload_lag_s=0.1, calm_lag_s=0.03, calm_checks_to_grow=2)
    assert capacity.allows_high(50)
    capacity.note_lag(0.01, high_viewers=40, viewers=40)
    assert capacity.cap is None
    capacity.note_lag(0.3, high_viewers=40, viewers=40)
    assert capacity.cap is None  # a single pause sheds nobody
    capacity.note_lag(0.3, high_viewers=40, viewers=40)
    assert capacity.cap == 36
    capacity.note_lag(0.3, high_viewers=36, viewers=40)
    assert capacity.cap == 33
    assert not capacity.allows_high(33)
    capacity.note_lag(0.05, high_viewers=33, viewers=40)  # neither lagging nor calm: hold
    capacity.note_lag(0.01, high_viewers=33, viewers=40)
    assert capacity.cap == 33
    capacity.note_lag(0.01, high_viewers=33, viewers=40)
    assert capacity.cap == 34
    assert capacity.allows_high(33)
    capacity.note_lag(0.01, high_viewers=34, viewers=3)  # viewers left: no cap any more
    assert capacity.cap is None


@pytest.mark.allow_blocking
async def test_a_lagging_box_moves_viewers_to_the_low_layer(tmp_path: Path) -> None:
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        player = await join(client, f"/whep/{lesson.join_code}")
        try:
            viewer = live.viewer_of(player)
            assert viewer is not None
            assert viewer.layer == "high"
            live.hub.monitor_interval_s = 0.3
            lags = []
            deadline = time.monotonic() + 20
            while viewer.layer == "high" and time.monotonic() < deadline:
                time.sleep(0.6)  # noqa: ASYNC251 - the event loop really stalls, as when sending falls behind
                await asyncio.sleep(0.05)
                lags.append(live.hub.loop_lag_s)
            assert viewer.layer == "low", lags
            assert max(lags) >= 0.1  # the stream's own monitor measured it
            assert live.box.health()["components"]["stream"]["stream_high_cap"] == 0
            second = await join(client, f"/whep/{lesson.join_code}")
            try:
                assert [v["layer"] for v in live.hub.viewers()] == ["low", "low"]
                await until(lambda: (320, 180) in second.sizes, what="low-layer pictures")
            finally:
                await second.close(client)
        finally:
            await player.close(client)


@pytest.mark.slow
async def test_players_that_offer_transport_feedback_but_send_none_are_not_left_on_the_lowest_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adaptation_module, "FALLBACKS_PER_CHECK", 1)  # one viewer moved up per check
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        live.hub.monitor_interval_s = 0.3
        lesson = await live.start_lesson()
        players = [
            await join(client, f"/whep/{lesson.join_code}", offer_filter=with_transport_cc)  # aiortc sends none
            for _ in range(2)
        ]
        try:
            viewers = [live.viewer_of(player) for player in players]
            assert all(v is not None and v.layer == "lowest" for v in viewers)  # offered feedback: start low, probe up
            for viewer in viewers:
                assert viewer is not None
                viewer.policy.good_reports_to_rise = 1000  # receiver reports alone would climb too: not this way
            await until(lambda: all(v is not None and v.layer == "high" for v in viewers), within=12, what="high")
            first, second = sorted(v.switches[-1] for v in viewers if v is not None)
            assert second - first >= 0.2  # not in the same check: sixty at once would all want one keyframe burst
            assert all(v is not None and v.estimator.feedback_packets == 0 for v in viewers)
            frames = players[0].frames["video"]
            await until(lambda: players[0].frames["video"] >= frames + 10, what="video on the high layer")
        finally:
            for player in players:
                await player.close()
