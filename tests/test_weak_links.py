"""Students on real weak links: Chromium in its own namespace behind a tbf bottleneck from the box (tests/weak_link.py).

The demo's layers: high 1280x720 at 30 fps (~1.5 Mbit/s), low 640x360 at 15 fps (~350 kbit/s), plus audio.
"""

from __future__ import annotations

import pytest

from tests.weak_link import Sample, classroom, describe, fps, longest_gap_ms

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SETTLE_S = 20.0  # from the page opening: connect, the first reports, the first steps
BELOW_HIGH = ("low", "lowest")  # video layers under the high one


async def test_800_kbit_link_settles_on_the_low_layer_and_plays_it_at_13_fps_or_more() -> None:
    async with classroom(800) as room:
        await room.student.until(lambda s: s.layer == "low" and s.height == 360, SETTLE_S, "on the low layer")
        window = await room.student.watch(20)
        report = describe(window)
        assert {s.layer for s in window} == {"low"}, report
        assert {s.height for s in window} == {360}, report
        assert fps(window) >= 13, report


async def test_2_mbit_link_settles_on_the_high_layer() -> None:
    async with classroom(2000) as room:
        await room.student.until(lambda s: s.layer == "high" and s.height == 720, SETTLE_S, "on the high layer")
        window = await room.student.watch(15)
        report = describe(window)
        assert {s.layer for s in window} == {"high"}, report
        assert {s.height for s in window} == {720}, report
        assert longest_gap_ms(window) <= 1000, report


async def test_link_that_drops_to_600_kbit_steps_down_in_5_s_without_a_stall_and_climbs_back_within_30_s() -> None:
    async with classroom(2000) as room:
        student = room.student
        await student.until(lambda s: s.layer == "high" and s.height == 720, SETTLE_S, "on the high layer at 2 Mbit/s")
        await student.watch(5)

        await room.shape(600)
        dropped = await student.sample()
        lower: Sample = await student.until(lambda s: s.layer in BELOW_HIGH, 5.0, "on a lower layer at 600 kbit/s")
        assert lower.t - dropped.t <= 5.0, describe(student.samples[-8:])
        await student.watch(10)
        at_600 = [s for s in student.samples if s.t >= dropped.t]
        assert longest_gap_ms(at_600) <= 1000, describe(at_600)

        await room.shape(2000)
        await student.until(lambda s: s.layer == "high", 30.0, "back on the high layer at 2 Mbit/s")
