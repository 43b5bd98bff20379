"""One clock for the box: step detection, the clock in health, lesson durations and TUF across a wrong clock."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from edge.box import Box
from edge.core.config import BoxConfig
from edge.core.events import EventBus
from edge.stream.adaptation import _plausible_rtt
from edge.system.clock import NOT_SET, ClockWatch
from sync.clock import Clock, Step, StepDetector, kernel_synchronised, system_synchronised
from sync.errors import TrustError
from sync.publish import publish
from sync.repo import NEWEST_TIME, TrustedRepo
from tests.test_courseware import box_config, make_course, running_box

DAY = 86_400.0


class SteppingClock:
    """A wall clock that follows real monotonic time plus an offset the test steps."""

    def __init__(self, mono: float = 1000.0) -> None:
        self.mono = mono
        self.offset = 1_700_000_000.0

    def wall(self) -> float:
        return self.mono + self.offset

    def monotonic(self) -> float:
        return self.mono


def test_a_step_is_reported_once_with_its_offset_and_drift_is_not_a_step() -> None:
    clock = SteppingClock()
    steps = StepDetector(wall_clock=clock.wall, monotonic_clock=clock.monotonic)
    clock.mono += 10
    clock.offset += 0.4  # NTP slewing, or a check that ran late: not a step
    assert steps.check() is None
    clock.mono += 5
    clock.offset += 3 * DAY
    forward = steps.check()
    assert forward == Step(3 * DAY, clock.wall())
    assert steps.check() is None, "a step is reported once"
    clock.mono += 1
    clock.offset -= 3600
    backward = steps.check()
    assert backward is not None
    assert backward.offset_s == -3600
    assert (steps.steps, steps.last) == (2, backward)
    assert forward.describe() == "+3 d 0 h 0 min"
    assert backward.describe() == "-1 h 0 min 0 s"
    assert Step(-75.4, 0).describe() == "-1 min 15 s"


def test_synchronised_asks_timesyncd_then_the_kernel(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    kernel = kernel_synchronised()
    assert kernel in (True, False)  # this machine's kernel answers adjtimex
    assert system_synchronised(flag) is kernel
    flag.touch()
    assert system_synchronised(flag) is True


@pytest.fixture
def stepping_box(tmp_path: Path) -> Iterator[tuple[Box, SteppingClock]]:
    config = BoxConfig()
    config.box.state_dir = tmp_path
    box = Box(config, EventBus())
    fake = SteppingClock()
    box.clock = Clock(fake.wall, fake.monotonic, lambda: False)
    box.open()
    yield box, fake
    box.close()


@pytest.mark.parametrize("step_s", [3 * DAY, -3600.0])
async def test_a_lesson_lasts_as_long_as_it_was_live_across_a_step(
    stepping_box: tuple[Box, SteppingClock], step_s: float
) -> None:
    box, clock = stepping_box
    lesson = await box.start_lesson("Fractions", "panel")
    clock.mono += 8
    clock.offset += step_s
    current = box.current_lesson()
    assert current is not None
    assert current.to_json()["duration_s"] == 8.0
    clock.mono += 12
    ended = await box.stop_lesson("panel")
    assert ended.to_json()["duration_s"] == 20.0
    stored = box.services.lessons.get(lesson.id)
    assert stored is not None
    assert stored.to_json()["duration_s"] == 20.0
    assert ended.started_at == lesson.started_at  # the wall times stay labels
    assert ended.ended_at == clock.wall()


async def test_the_clock_component_reports_a_step_on_the_bus_and_in_health(
    stepping_box: tuple[Box, SteppingClock],
) -> None:
    box, clock = stepping_box
    synchronised = False
    box.clock = Clock(clock.wall, clock.monotonic, lambda: synchronised)
    watch = ClockWatch(box.services.current_clock, box.bus, check_s=0.01)
    events = box.bus.subscribe("clock.")
    await watch.start()
    assert (watch.health().status, watch.health().detail) == ("degraded", NOT_SET)
    runner = asyncio.create_task(watch.run(), name="test:clock-watch")
    try:
        clock.offset += 3 * DAY
        event = await asyncio.wait_for(events.get(), 5)
        assert event.topic == "clock.stepped"
        assert event.data["offset_s"] == 3 * DAY
        await asyncio.sleep(0.05)
        health = watch.health()
        assert health.status == "degraded"
        assert health.detail == NOT_SET + "; the clock stepped by +3 d 0 h 0 min"
        assert health.metrics["last_step_offset_s"] == 3 * DAY
        assert health.metrics["steps"] == 1, "one step, reported once"
        synchronised = True
        await asyncio.sleep(0.05)
        assert (watch.health().status, watch.health().detail) == ("ok", "the clock stepped by +3 d 0 h 0 min")
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        events.close()


# -- signed metadata and a wrong clock --------------------------------------------------------


def _published(tmp_path: Path, now: datetime | None = None, timestamp_days: int | None = None) -> tuple[Path, bytes]:
    src, out = tmp_path / "src", tmp_path / "repo"
    if not src.exists():
        make_course(src, video_mb=0.05)
    publish(src, out, tmp_path / "keys", now=now, timestamp_days=timestamp_days)
    return out, (out / "metadata" / "1.root.json").read_bytes()


def test_a_clock_far_ahead_makes_metadata_look_expired_and_says_so(tmp_path: Path) -> None:
    out, root = _published(tmp_path)
    ahead = datetime.now(UTC) + timedelta(days=400)
    repo = TrustedRepo(str(out), tmp_path / "tuf", root, now=lambda: ahead)
    with pytest.raises(TrustError, match=r"metadata expired as of .* if the box's clock is wrong, set it"):
        repo.refresh()


def test_a_clock_far_behind_never_judges_expiry_earlier_than_the_newest_catalog(tmp_path: Path) -> None:
    published = datetime.now(UTC).replace(microsecond=0)
    out, root = _published(tmp_path, now=published)
    assert TrustedRepo(str(out), tmp_path / "tuf", root).refresh().published_at == published
    recorded = json.loads((tmp_path / "tuf" / NEWEST_TIME).read_text())
    assert datetime.fromisoformat(recorded["published_at"]) == published

    # A newer version signed long ago that expired well before `published` (a frozen mirror, a replay).
    _published(tmp_path, now=published - timedelta(days=20), timestamp_days=3)
    behind = published - timedelta(days=30)  # the box booted with an old saved time
    repo = TrustedRepo(str(out), tmp_path / "tuf", root, now=lambda: behind)
    assert repo.reference_time == published
    with pytest.raises(TrustError, match="expired"):
        repo.refresh()
    # Without the record the same clock would have accepted it: expiry checks alone prove nothing.
    (tmp_path / "tuf" / NEWEST_TIME).unlink()
    assert TrustedRepo(str(out), tmp_path / "tuf", root, now=lambda: behind).refresh().version == 2


# -- live viewers and a wall-clock step ---------------------------------------------------------


async def test_a_round_trip_time_made_by_a_step_is_dropped_and_aiortc_starts_averaging_again() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        sender = pc.addTransceiver("video", direction="sendonly").sender
        sender._RTCRtpSender__rtt = 3 * DAY  # type: ignore[attr-defined]  # an RR answering a pre-step report
        assert not _plausible_rtt(sender, 3 * DAY)
        assert sender._RTCRtpSender__rtt is None  # type: ignore[attr-defined]
        assert not _plausible_rtt(sender, -3600.0)
        assert _plausible_rtt(sender, 0.035)
        assert not _plausible_rtt(sender, None)
    finally:
        await pc.close()


async def test_a_clock_far_ahead_refuses_pulls_keeps_serving_and_health_says_why(tmp_path: Path) -> None:
    out, _ = await asyncio.to_thread(_published, tmp_path)
    config = box_config(tmp_path / "box", str(out), out / "metadata" / "1.root.json")
    async with running_box(config) as (cw, client):
        await cw.pull_once()
        assert cw.last_error == ""
        served = (await client.get("/courseware/art/exercise.txt")).content
        wrong = Clock(lambda: time.time() + 400 * DAY, time.monotonic, lambda: False)  # NTP got it wrong
        cw._clock = lambda: wrong
        await cw.pull_once()
        assert "metadata expired as of" in cw.last_error
        assert cw.health().status == "degraded"
        assert "if the box's clock is wrong, set it" in cw.health().detail
        again = await client.get("/courseware/art/exercise.txt")
        assert (again.status_code, again.content) == (200, served)
