"""The third video layer for 2G/EDGE-class links: configured, encoded once from the same capture, on the ladder."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edge.core.config import BoxConfig, LowestLayerConfig, load_config
from edge.core.errors import ConfigError
from edge.stream.layers import LayerPolicy, LinkReport
from tests.stream_fixture import join, live_box, small_config, until

GOOD = LinkReport(loss=0.0, rtt_s=0.02)
LOSSY = LinkReport(loss=0.2, rtt_s=0.02)


def test_the_lowest_layer_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    lowest = BoxConfig().stream.lowest
    assert (lowest.enabled, lowest.width, lowest.height, lowest.fps, lowest.kbps) == (True, 320, 180, 10, 100)
    path = tmp_path / "classbox.toml"
    path.write_text("[stream.lowest]\nenabled = false\n")
    assert not load_config(path).stream.lowest.enabled


def test_a_lowest_layer_not_below_the_low_one_is_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "classbox.toml"
    path.write_text("[stream.lowest]\nwidth = 1280\nheight = 720\nfps = 10\nkbps = 100\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any("stream.lowest (1280x720, 100 kbps)" in p and "stream.low (640x360" in p for p in caught.value.problems)
    path.write_text("[stream.lowest]\nenabled = false\nwidth = 1280\nheight = 720\nfps = 10\nkbps = 100\n")
    assert load_config(path).stream.lowest.width == 1280  # off: nothing to compare
    config = BoxConfig()
    with pytest.raises(ValueError, match="must be smaller than"):
        config.stream.lowest = LowestLayerConfig(width=320, height=180, fps=10, kbps=400)
    assert config.stream.lowest.kbps == 100  # a refused change changes nothing


def test_policy_steps_through_every_configured_layer_one_at_a_time() -> None:
    three = LayerPolicy(good_reports_to_rise=1, ladder=("none", "lowest", "low", "high"))
    downs = [three.next_layer(layer, LOSSY, data_saver=False) for layer in ("high", "low", "lowest")]
    assert downs == ["low", "lowest", "none"]
    ups = [three.next_layer(layer, GOOD, data_saver=False) for layer in ("none", "lowest", "low")]
    assert ups == ["lowest", "low", "high"]
    two = LayerPolicy(ladder=("none", "low", "high"))  # the lowest layer turned off
    assert two.next_layer("low", LOSSY, data_saver=False) == "none"


def tiny_lowest(tmp_path: Path, enabled: bool = True) -> BoxConfig:
    """The suite's small layers, with a lowest one of its own size so that its frames can be told apart."""
    config = small_config(tmp_path)
    config.stream.lowest = LowestLayerConfig(width=160, height=120, fps=5, kbps=60, enabled=enabled)
    return config


@pytest.mark.slow
async def test_a_viewer_on_the_lowest_layer_gets_its_picture_from_the_one_shared_encoder(tmp_path: Path) -> None:
    async with live_box(tiny_lowest(tmp_path)) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        players = [await join(client, f"/whep/{lesson.join_code}") for _ in range(2)]
        try:
            await until(lambda: all(p.frames["video"] > 3 for p in players), 20.0, "video for both players")
            viewers = [live.viewer_of(p) for p in players]
            assert all(v is not None and v.policy.ladder == ("none", "lowest", "low", "high") for v in viewers)
            for viewer in viewers:
                assert viewer is not None
                live.hub.set_layer(viewer, "lowest", "test")
            await until(lambda: all((160, 120) in p.sizes for p in players), 15.0, "the lowest layer's picture")
            encoder = live.media.encoder("lowest")
            assert encoder is not None
            assert encoder.layer.fps == 5
            assert live.media.stats()["lowest_frames"] > 0
            live.hub._report()
            assert live.hub.health().metrics["viewers_lowest"] == 2
        finally:
            for player in players:
                await player.close(client)


@pytest.mark.slow
async def test_with_the_lowest_layer_off_there_is_no_such_encoder_and_viewers_step_from_low_to_audio(
    tmp_path: Path,
) -> None:
    async with live_box(tiny_lowest(tmp_path, enabled=False)) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        player = await join(client, f"/whep/{lesson.join_code}")
        try:
            await until(lambda: player.frames["video"] > 3, 20.0, "video")
            assert live.media.encoder("lowest") is None
            assert live.media.encoder("high") is not None
            assert live.media.encoder("low") is not None
            viewer = live.viewer_of(player)
            assert viewer is not None
            assert viewer.policy.ladder == ("none", "low", "high")
        finally:
            await player.close(client)
