"""The timetable without a daemon: iCalendar reading and its limits, the schedule's state machine, prefetch policy.

Time is the box's own clock, stepped by the test (nothing sleeps).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge import wiring
from edge.box import Box
from edge.core.config import BoxConfig
from edge.core.errors import LessonNotFound, NoScheduledLesson, TimetableRefused
from edge.core.events import EventBus
from edge.lessons import calendar as ical
from edge.lessons.timetable_feed import CLOCK_ALARM, CLOCK_UNSYNCED, pull_now
from sync.budget import Budget, Window
from sync.clock import Clock
from tests.stream_fixture import until

ZONE = ZoneInfo("Europe/Berlin")


def ics(*events: str) -> bytes:
    """A VCALENDAR around `events` (each the lines inside one VEVENT)."""
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n".encode()


def lesson(uid: str, start: str, end: str, title: str = "Maths", extra: str = "") -> str:
    """One VEVENT's lines; `start`/`end` like 20270104T090000 in Europe/Berlin."""
    lines = [f"UID:{uid}", f"SUMMARY:{title}", f"DTSTART;TZID=Europe/Berlin:{start}", f"DTEND;TZID=Europe/Berlin:{end}"]
    return "\r\n".join(lines + ([extra] if extra else []))


def at(text: str) -> float:
    """Epoch seconds of a Berlin wall time 'YYYY-MM-DD HH:MM'."""
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=ZONE).timestamp()


class FakeClock:
    """A wall clock the test sets; the monotonic clock follows it."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.synchronised = True

    def clock(self) -> Clock:
        return Clock(lambda: self.now, lambda: self.now, lambda: self.synchronised)


# -- reading iCalendar ------------------------------------------------------------------------------


def test_a_weekly_lesson_keeps_its_school_time_across_daylight_saving() -> None:
    feed = ics(lesson("w", "20270322T090000", "20270322T094500", extra="RRULE:FREQ=WEEKLY;COUNT=3\r\nCATEGORIES:math"))
    slots = ical.expand(ical.parse(feed, 64_000), ZONE, at("2027-03-20 00:00"), at("2027-04-10 00:00"), "feed", 100)
    local = [dt.datetime.fromtimestamp(s.start, ZONE) for s in slots]
    assert [(d.day, d.hour, d.minute) for d in local] == [(22, 9, 0), (29, 9, 0), (5, 9, 0)]
    assert slots[1].start - slots[0].start == 7 * 86_400 - 3600, "the week of the change is an hour shorter"
    assert {s.course for s in slots} == {"math"}
    assert len({s.key for s in slots}) == 3


def test_floating_times_are_the_schools_and_all_day_entries_are_not_lessons() -> None:
    feed = ics(
        "UID:f\r\nSUMMARY:Art\r\nDTSTART:20270105T100000\r\nDTEND:20270105T104500\r\nX-CLASSBOX-MODE:stream\r\n"
        "ORGANIZER;CN=Ms Diallo:mailto:diallo@example.org",
        "UID:h\r\nSUMMARY:Holiday\r\nDTSTART;VALUE=DATE:20270106\r\nDTEND;VALUE=DATE:20270107",
    )
    slots = ical.expand(ical.parse(feed, 64_000), ZONE, at("2027-01-05 00:00"), at("2027-01-08 00:00"), "feed", 100)
    found = [(s.title, s.start, s.mode, s.teacher) for s in slots]
    assert found == [("Art", at("2027-01-05 10:00"), "stream", "Ms Diallo")]


DAILY = "RRULE:FREQ=DAILY"
HOSTILE = {
    "huge": (ics(lesson("a", "20270104T090000", "20270104T094500", extra="DESCRIPTION:" + "x" * 70_000)), "KB"),
    "bad date": (ics("UID:b\r\nSUMMARY:Maths\r\nDTSTART:20271345T250000\r\nDTEND:20271345T260000"), "DTSTART"),
    "never ends": (ics(lesson("c", "20270104T090000", "20270104T091000", extra="RRULE:FREQ=MINUTELY")), "repeats"),
    "backwards": (ics(lesson("d", "20270104T090000", "20270104T080000")), "ends before it starts"),
    "too long": (ics(lesson("e", "20270104T090000", "20270105T090000")), "12 hours"),
    "no start": (ics("UID:g\r\nSUMMARY:Maths"), "no start"),
    "not a calendar": (b"<html>login here</html>", "not iCalendar"),
    "not text": (b"\xff\xfe\x00BEGIN", "UTF-8"),
    "crowded": (ics(*(lesson(f"m{n}", "20270104T090000", "20270104T094500", "M", DAILY) for n in range(40))), "more"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_or_malformed_timetable_is_refused_in_plain_words(name: str) -> None:
    raw, words = HOSTILE[name]

    def read() -> None:
        ical.expand(ical.parse(raw, 64_000), ZONE, at("2027-01-04 00:00"), at("2027-02-04 00:00"), "feed", 500)

    with pytest.raises(TimetableRefused, match=words):
        read()


# -- the schedule -----------------------------------------------------------------------------------


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock(at("2027-01-04 08:00"))


def make_box(state: Path, fake: FakeClock) -> Box:
    config = BoxConfig()
    config.box.state_dir = state
    config.box.time_zone = "Europe/Berlin"
    box = Box(config, EventBus())
    box.clock = fake.clock()
    box.open()
    return box


@pytest.fixture
def box(tmp_path: Path, fake: FakeClock) -> Iterator[Box]:
    box = make_box(tmp_path, fake)
    yield box
    box.close()


BACK_TO_BACK = ics(
    lesson("a", "20270104T090000", "20270104T094500", "Maths", "RRULE:FREQ=DAILY\r\nCATEGORIES:math"),
    lesson("b", "20270104T094500", "20270104T103000", "Art", "RRULE:FREQ=DAILY"),
)


def load(box: Box, raw: bytes = BACK_TO_BACK, source: str = "feed") -> None:
    parsed, count = box.timetable.check(source, raw)
    box.timetable.accept(source, raw, parsed, count)


async def test_lessons_start_and_stop_at_their_times_and_back_to_back_lessons_do_not_overlap(
    box: Box, fake: FakeClock
) -> None:
    load(box)
    assert await box.timetable.tick() == ""
    upcoming = box.next_scheduled_lesson()
    assert upcoming is not None
    assert upcoming["title"] == "Maths"
    shared_code = upcoming["join_code"]
    fake.now = at("2027-01-04 09:00")
    assert (await box.timetable.tick()).startswith("started feed:a:")
    maths = box.current_lesson()
    assert maths is not None
    assert (maths.title, maths.join_code, maths.started_by) == ("Maths", shared_code, "timetable")
    fake.now = at("2027-01-04 09:44")
    assert await box.timetable.tick() == ""
    fake.now = at("2027-01-04 09:45")
    assert (await box.timetable.tick()).startswith("stopped feed:a:")
    assert box.current_lesson() is None, "the first lesson ends before the next begins"
    assert (await box.timetable.tick()).startswith("started feed:b:")
    art = box.current_lesson()
    assert art is not None
    assert art.title == "Art"
    ended = box.services.lessons.get(maths.id)
    assert ended is not None
    assert ended.state == "ended"
    assert ended.ended_at is not None
    assert ended.ended_at <= art.started_at
    fake.now = at("2027-01-04 10:30")
    assert (await box.timetable.tick()).startswith("stopped feed:b:")
    assert await box.timetable.tick() == ""
    states = [(lesson["title"], lesson["state"]) for lesson in box.timetable_today()]
    assert states == [("Maths", "ended"), ("Art", "ended")]


async def test_extend_moves_the_end_but_never_past_the_next_lesson(box: Box, fake: FakeClock) -> None:
    load(box)
    fake.now = at("2027-01-04 09:40")
    await box.timetable.tick()
    extended = await box.extend_lesson(10)
    assert extended["end"] == at("2027-01-04 09:45"), "the next lesson starts on time"
    fake.now = at("2027-01-04 10:00")
    await box.timetable.tick()
    await box.timetable.tick()
    art = box.current_lesson()
    assert art is not None
    assert art.title == "Art"
    assert (await box.extend_lesson(5))["end"] == at("2027-01-04 10:35")
    assert (await box.extend_lesson(10))["extended_min"] == 15
    fake.now = at("2027-01-04 10:34")
    assert await box.timetable.tick() == ""
    fake.now = at("2027-01-04 10:45")
    assert (await box.timetable.tick()).startswith("stopped")
    with pytest.raises(TimetableRefused):
        await box.extend_lesson(7)


async def test_stop_early_ends_the_slot_for_good_and_start_early_starts_the_next(box: Box, fake: FakeClock) -> None:
    load(box)
    with pytest.raises(NoScheduledLesson):
        await box.stop_lesson_early()
    fake.now = at("2027-01-04 08:55")
    early = await box.start_scheduled_lesson()
    assert early.title == "Maths"
    fake.now = at("2027-01-04 09:05")
    assert await box.timetable.tick() == "", "the lesson started early is the one due"
    await box.stop_lesson_early()
    assert await box.timetable.tick() == "", "a lesson the teacher stopped does not start again"
    assert box.timetable_today()[0]["state"] == "ended"
    fake.now = at("2027-01-04 09:45")
    assert (await box.timetable.tick()).startswith("started feed:b:")


async def test_a_lesson_started_by_hand_ends_when_a_scheduled_one_begins(box: Box, fake: FakeClock) -> None:
    load(box)
    fake.now = at("2027-01-04 08:30")
    adhoc = await box.start_lesson("Revision", "panel")
    assert await box.timetable.tick() == ""
    fake.now = at("2027-01-04 09:00")
    assert await box.timetable.tick() == f"stopped {adhoc.id}"
    assert (await box.timetable.tick()).startswith("started feed:a:")


async def test_a_box_that_boots_in_the_middle_of_a_lesson_starts_it_at_once(tmp_path: Path, fake: FakeClock) -> None:
    first = await asyncio.to_thread(make_box, tmp_path, fake)  # opening a box is blocking work
    load(first)
    fake.now = at("2027-01-04 09:10")
    await first.timetable.tick()
    cut = first.current_lesson()
    assert cut is not None
    await asyncio.to_thread(first.close)  # a power cut: nothing stops the lesson
    fake.now = at("2027-01-04 09:20")
    again = await asyncio.to_thread(make_box, tmp_path, fake)
    try:
        assert (await again.timetable.tick()).startswith("started feed:a:"), "the stored timetable, no network"
        resumed = again.current_lesson()
        assert resumed is not None
        assert resumed.title == "Maths"
        assert resumed.id != cut.id
        interrupted = again.services.lessons.get(cut.id)
        assert interrupted is not None
        assert interrupted.state == "interrupted"
    finally:
        await asyncio.to_thread(again.close)


async def test_the_old_timetable_stays_when_a_new_one_is_refused(box: Box, fake: FakeClock) -> None:
    load(box)
    with pytest.raises(TimetableRefused):
        box.timetable.check("feed", HOSTILE["never ends"][0])
    box.timetable.note("feed", "refused for the test")
    assert [lesson["title"] for lesson in box.timetable_today()] == ["Maths", "Art"]
    assert box.timetable_status()["sources"]["feed"]["error"] == "refused for the test"


def test_manual_lessons_are_checked_and_listed_in_the_school_time_zone(box: Box, fake: FakeClock) -> None:
    added = box.add_timetable_lesson("Science", dt.datetime(2027, 1, 4, 11, 0), 40, course="science", mode="record")
    assert added["start"] == at("2027-01-04 11:00")
    assert added["end"] == at("2027-01-04 11:40")
    assert [lesson["title"] for lesson in box.timetable_today()] == ["Science"]
    for bad in ({"course": "../etc"}, {"mode": "loud"}):
        with pytest.raises(TimetableRefused):
            box.add_timetable_lesson("Bad", dt.datetime(2027, 1, 4, 12, 0), 40, **bad)
    with pytest.raises(TimetableRefused):
        box.add_timetable_lesson(" ", dt.datetime(2027, 1, 4, 12, 0), 40)
    assert box.remove_timetable_lesson(added["key"].split(":")[1])
    assert box.timetable_today() == []


async def test_a_stream_only_lesson_is_not_recorded(box: Box, fake: FakeClock) -> None:
    load(box, ics(lesson("s", "20270104T090000", "20270104T094500", "Assembly", "X-CLASSBOX-MODE:stream")))
    fake.now = at("2027-01-04 09:00")
    await box.timetable.tick()
    live = box.current_lesson()
    assert live is not None
    assert box.services.timetable.records(live) is False


async def test_a_record_only_lesson_takes_no_students(box: Box, fake: FakeClock) -> None:
    load(box, ics(lesson("r", "20270104T090000", "20270104T094500", "Exam", "X-CLASSBOX-MODE:record")))
    fake.now = at("2027-01-04 09:00")
    await box.timetable.tick()
    live = box.current_lesson()
    assert live is not None
    assert box.services.timetable.records(live) is True
    with pytest.raises(LessonNotFound, match="recorded only"):
        await box.open_viewer(live.join_code, "v=0")


# -- courseware ahead -------------------------------------------------------------------------------


def test_courseware_for_a_later_lesson_waits_for_the_night_window(tmp_path: Path) -> None:
    windows = [Window("08:00", "18:00", 256), Window("22:00", "06:00", 0)]
    budget = Budget(tmp_path / "budget.json", windows, 0)
    evening = dt.datetime(2027, 1, 4, 19, 0)
    assert not pull_now(budget, evening, 36 * 3600), "the lesson after tomorrow: the night window comes first"
    assert pull_now(budget, evening, 2 * 3600), "a lesson before the night: now, under the budget"
    assert pull_now(budget, dt.datetime(2027, 1, 4, 23, 0), 36 * 3600), "in the night window: now"
    assert pull_now(None, evening, 36 * 3600), "no budget windows: now"


def test_tomorrows_courses_are_the_ones_ahead(box: Box, fake: FakeClock) -> None:
    load(box)
    ahead = box.timetable.courses_ahead()
    assert ahead == {"math": at("2027-01-06 09:45")}, "pinned to the end of its last lesson in the prefetch days"


async def test_an_unsynchronised_clock_with_lessons_coming_is_an_alarm_in_health(box: Box, fake: FakeClock) -> None:
    box.add_timetable_lesson("Science", dt.datetime(2027, 1, 4, 11, 0), 40)
    fake.synchronised = False
    component = wiring.timetable(box.services, tick_s=0.01)
    await component.start()
    runner = asyncio.create_task(component.run(), name="test:timetable")
    try:
        await until(lambda: CLOCK_ALARM in box.health()["alarms"])
        assert box.health()["alarms"][CLOCK_ALARM] == CLOCK_UNSYNCED
        assert component.health().status == "degraded"
        assert box.timetable_status()["clock_synchronised"] is False
        fake.synchronised = True
        fake.now += 6  # the clock is looked at every 5 s
        await until(lambda: CLOCK_ALARM not in box.health()["alarms"])
        assert component.health().status == "ok"
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
