"""Students on real weak links: Chromium in its own namespace behind a tbf bottleneck from the box (tests/weak_link.py).

Each test is one classroom (a daemon and a browser, ~35 s): a link's checks share its lesson.

The demo's layers: high 1280x720 at 30 fps (~1.5 Mbit/s), low 640x360 at 15 fps (~350 kbit/s), plus audio.
"""

from __future__ import annotations

import re

import pytest

from tests.weak_link import Sample, classroom, describe, fps, longest_gap_ms

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SETTLE_S = 20.0  # from the page opening: connect, the first reports, the first steps
BELOW_HIGH = ("low", "lowest")  # video layers under the high one
TRANSPORT_CC = r"a=extmap:\d+ http://www\.ietf\.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


async def test_800_kbit_link_settles_on_the_low_layer_plays_it_at_13_fps_and_is_estimated_by_transport_cc() -> None:
    async with classroom(800) as room:
        student = room.student
        await student.until(lambda s: s.layer == "low" and s.height == 360, SETTLE_S, "on the low layer")
        answer = await student.page.evaluate("() => window.classboxWatch.pc.remoteDescription.sdp")
        assert re.search(TRANSPORT_CC, answer)
        assert re.search(r"a=rtcp-fb:\d+ transport-cc", answer)
        window = await student.watch(20)
        report = describe(window)
        assert {s.layer for s in window} == {"low"}, report
        assert {s.height for s in window} == {360}, report
        assert fps(window) >= 13, report

        estimates = [s.box["estimate_kbps"] for s in window]
        assert all(e is not None and e <= 800 * 1.05 for e in estimates), report  # nothing above the link
        assert window[-1].box["probes"] >= 1, report  # it tried for the high layer, and stayed
        switches = [s.box["layer_switches_per_min"] for s in window]
        assert switches[-1] >= 1, (switches, report)  # lowest -> low...
        assert max(switches) <= 2, (switches, report)  # ...then steady
        status, metrics = await room.box.teacher("/metrics")
        assert status == 200
        counted = re.search(r'classbox_viewers_layer_switches_per_min_max\{component="stream"\} (\S+)', metrics)
        assert counted is not None, metrics[:2000]
        assert 1 <= float(counted.group(1)) <= 2, metrics[:2000]


async def test_2_mbit_link_settles_on_the_high_layer_a_drop_to_600_kbit_steps_down_in_5_s_and_it_climbs_back() -> None:
    async with classroom(2000) as room:
        student = room.student
        await student.until(lambda s: s.layer == "high" and s.height == 720, SETTLE_S, "on the high layer at 2 Mbit/s")
        window = await student.watch(15)
        report = describe(window)
        assert {s.layer for s in window} == {"high"}, report
        assert {s.height for s in window} == {720}, report
        assert longest_gap_ms(window) <= 1000, report

        await room.shape(600)
        dropped = await student.sample()
        lower: Sample = await student.until(lambda s: s.layer in BELOW_HIGH, 5.0, "on a lower layer at 600 kbit/s")
        assert lower.t - dropped.t <= 5.0, describe(student.samples[-8:])
        await student.watch(10)
        at_600 = [s for s in student.samples if s.t >= dropped.t]
        assert longest_gap_ms(at_600) <= 1000, describe(at_600)

        await room.shape(2000)
        await student.until(lambda s: s.layer == "high", 30.0, "back on the high layer at 2 Mbit/s")
