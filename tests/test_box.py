"""The service layer: lesson state machine, hooks, teacher credential."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.box import Box
from edge.core.config import BoxConfig
from edge.core.errors import LessonAlreadyLive, NoLiveLesson, NotAllowed
from edge.core.events import EventBus
from edge.lessons.lessons import Lesson
from edge.system.accounts import PIN_FAILURES_ALLOWED, PIN_FAILURES_PER_BOX, PIN_LOCKOUT_S, PinGate, hash_pin


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    config = BoxConfig()
    config.box.state_dir = tmp_path
    config.web.teacher_pin_hash = hash_pin("1357")
    box = Box(config, EventBus())
    box.open()
    yield box
    box.close()


async def test_idle_live_idle(box: Box) -> None:
    events = box.bus.subscribe("lesson.")
    assert box.current_lesson() is None
    lesson = await box.start_lesson("  Geography ", "panel")
    assert lesson.title == "Geography"
    assert box.current_lesson() == lesson
    assert box.lesson_by_code(lesson.join_code.upper()) == lesson
    with pytest.raises(LessonAlreadyLive):
        await box.start_lesson("Other", "panel")
    ended = await box.stop_lesson("panel")
    assert ended.state == "ended"
    assert ended.ended_at is not None
    assert box.current_lesson() is None
    with pytest.raises(NoLiveLesson):
        await box.stop_lesson("panel")
    assert [(await events.get()).topic for _ in range(2)] == ["lesson.started", "lesson.ended"]
    assert box.recent_lessons()[0].id == lesson.id


async def test_failing_hook_degrades_but_never_blocks_a_lesson(box: Box) -> None:
    seen: list[str] = []

    async def broken(lesson: Lesson) -> None:
        raise RuntimeError("encoder missing")

    async def fine(lesson: Lesson) -> None:
        seen.append(lesson.state)

    box.services.lessons.on_start(broken)
    box.services.lessons.on_start(fine)
    box.services.lessons.on_stop(fine)
    await box.start_lesson(None, "panel")
    await box.stop_lesson("panel")
    assert seen == ["live", "ended"]


async def test_join_codes_are_unique_and_readable(box: Box) -> None:
    codes = set()
    for _ in range(20):
        codes.add((await box.start_lesson("x", "panel")).join_code)
        await box.stop_lesson("panel")
    assert len(codes) == 20
    assert all(not set(code) & set("01ilo") for code in codes)


async def test_panel_addresses_act_as_teacher(box: Box) -> None:
    assert await box.authorize_teacher("127.0.0.1", None) == "panel"
    assert await box.authorize_teacher("::ffff:127.0.0.1", None) == "panel"
    assert await box.authorize_teacher("::1", None) == "panel"
    with pytest.raises(NotAllowed, match="PIN is required"):
        await box.authorize_teacher("192.0.2.7", None)
    assert await box.authorize_teacher("192.0.2.7", "1357") == "teacher@192.0.2.7"


async def test_wrong_pins_lock_the_address_out(box: Box) -> None:
    for _ in range(PIN_FAILURES_ALLOWED):
        with pytest.raises(NotAllowed, match="wrong PIN"):
            await box.authorize_teacher("192.0.2.8", "0000")
    with pytest.raises(NotAllowed, match="too many"):
        await box.authorize_teacher("192.0.2.8", "1357")
    assert await box.authorize_teacher("192.0.2.9", "1357") == "teacher@192.0.2.9"


def test_pin_rules() -> None:
    with pytest.raises(ValueError, match="4 to 12 digits"):
        hash_pin("12a4")


async def test_parallel_wrong_pins_are_verified_at_most_the_allowed_number_of_times(box: Box) -> None:
    clock = [1000.0]
    gate = PinGate(clock=lambda: clock[0])
    verified: list[str] = []
    real_verify = gate._verify

    def counting_verify(pin_hash: str, pin: str) -> bool:
        verified.append(pin)
        return real_verify(pin_hash, pin)

    gate._verify = counting_verify  # type: ignore[method-assign]
    pin_hash = box.config.web.teacher_pin_hash
    guesses = [gate.check(pin_hash, f"{n:04d}", "192.0.2.10") for n in range(50)]
    results = await asyncio.gather(*guesses, return_exceptions=True)
    assert len(verified) == PIN_FAILURES_ALLOWED
    messages = [str(r) for r in results]
    assert messages.count("wrong PIN") == PIN_FAILURES_ALLOWED
    assert sum("too many wrong PINs from this address" in m for m in messages) == 50 - PIN_FAILURES_ALLOWED
    with pytest.raises(NotAllowed, match="too many"):
        await gate.check(pin_hash, "1357", "192.0.2.10")  # the right PIN, still inside the window
    assert len(verified) == PIN_FAILURES_ALLOWED
    clock[0] += PIN_LOCKOUT_S - 1
    with pytest.raises(NotAllowed, match="too many"):
        await gate.check(pin_hash, "1357", "192.0.2.10")
    clock[0] += 1
    await gate.check(pin_hash, "1357", "192.0.2.10")  # the window has passed
    assert gate._attempts == {}


async def test_wrong_pins_from_many_addresses_lock_the_box_and_the_table_stays_bounded(box: Box) -> None:
    clock = [0.0]
    gate = PinGate(clock=lambda: clock[0])
    pin_hash = box.config.web.teacher_pin_hash
    addresses = [f"198.51.100.{n}" for n in range(60)]
    results = await asyncio.gather(*(gate.check(pin_hash, "0000", a) for a in addresses), return_exceptions=True)
    messages = [str(r) for r in results]
    assert messages.count("wrong PIN") == PIN_FAILURES_PER_BOX
    assert sum("too many wrong PINs on this box" in m for m in messages) == 60 - PIN_FAILURES_PER_BOX
    assert len(gate._attempts) == PIN_FAILURES_PER_BOX
    with pytest.raises(NotAllowed, match="on this box"):
        await gate.check(pin_hash, "1357", "203.0.113.1")
    clock[0] += PIN_LOCKOUT_S
    await gate.check(pin_hash, "1357", "203.0.113.1")
    assert gate._attempts == {}  # expired attempts are pruned, not kept forever
