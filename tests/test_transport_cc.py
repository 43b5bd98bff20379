"""Transport-wide congestion control with a real Chromium student behind a real bottleneck (tests/weak_link.py)."""

from __future__ import annotations

import re

import pytest

from tests.weak_link import classroom, describe

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TRANSPORT_CC = r"a=extmap:\d+ http://www\.ietf\.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


async def test_chromium_gets_transport_cc_and_the_box_estimates_its_link_and_counts_layer_switches() -> None:
    async with classroom(800) as room:
        student = room.student
        await student.until(lambda s: s.layer == "low" and s.height == 360, 20.0, "on the low layer")
        answer = await student.page.evaluate("() => window.classboxWatch.pc.remoteDescription.sdp")
        assert re.search(TRANSPORT_CC, answer)
        assert re.search(r"a=rtcp-fb:\d+ transport-cc", answer)
        window = await student.watch(10)
        report = describe(window)
        estimates = [s.box["estimate_kbps"] for s in window]
        assert all(e is not None and e <= 800 * 1.05 for e in estimates), report  # nothing above the link
        assert window[-1].box["probes"] >= 1, report  # it tried for the high layer, and stayed
        switches = [s.box["layer_switches_per_min"] for s in window]
        assert switches[-1] >= 1, (switches, report)  # high -> low...
        assert max(switches) <= 2, (switches, report)  # ...then steady
        status, metrics = await room.box.teacher("/metrics")
        assert status == 200
        counted = re.search(r'classbox_viewers_layer_switches_per_min_max\{component="stream"\} (\S+)', metrics)
        assert counted is not None, metrics[:2000]
        assert 1 <= float(counted.group(1)) <= 2, metrics[:2000]
