"""The `timetable` component: reads the timetable's sources, follows the schedule, fetches courseware ahead.

Three loops under one owner:
- sources: the iCalendar feed (`timetable.feed_url`, conditional GET with ETag/If-Modified-Since,
  through the WAN budget, at most `max_feed_kb`) and the repository file (`timetable.repo_item`, read
  from the verified courseware cache) every `refresh_s` or when asked; a refused or unreachable source
  keeps the last good timetable (`Timetable` stores it);
- schedule: `Timetable.tick()` twice a second (auto start/stop, back-to-back, boot mid-lesson),
  and whether the clock can be trusted (an alarm while it is not synchronised and lessons are coming);
- prefetch: the courses of lessons in the next `prefetch_days` are pinned and, when something is not
  here yet, pulled: at once in the most generous budget window (the night's), otherwise only when
  the lesson comes before that window opens again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from pathlib import Path

import aiohttp

from edge.core.component import Component
from edge.core.errors import TimetableRefused
from edge.core.events import EventBus
from edge.core.logs import redact
from edge.core.ports import AlarmBoard, ClockSource, ClockVerdict, ConfigSource
from edge.core.texts import N_
from edge.courseware import service as courseware
from edge.courseware.service import CoursewarePort
from edge.lessons.timetable import Timetable, missing_for
from sync.budget import Budget, Window
from sync.errors import BudgetExhausted, NotInStore, StoreClosed, failure_reason

log = logging.getLogger(__name__)

TICK_S = 0.5
CLOCK_CHECK_S = 5.0
PREFETCH_S = 60.0
PULL_ASK_EVERY_S = 600.0
FEED_TIMEOUT = aiohttp.ClientTimeout(total=60.0, sock_connect=10.0, sock_read=30.0)
READ_PIECE = 16 * 1024
CLOCK_ALARM = "timetable-clock"
CLOCK_UNSYNCED = N_("The clock is not synchronised: scheduled lessons may start at the wrong time")


class TimetableComponent(Component):
    """Keeps the timetable current and the live lesson on it."""

    name = "timetable"

    def __init__(
        self,
        *,
        config: ConfigSource,
        bus: EventBus,
        clock: ClockSource,
        timetable: Timetable,
        alarms: AlarmBoard,
        clock_trust: ClockVerdict,
        courseware: CoursewarePort | None,
        tick_s: float = TICK_S,
        prefetch_s: float = PREFETCH_S,
    ) -> None:
        """`clock_trust`: where it notes its look at the clock; `courseware`: the cache it reads and fetches into."""
        super().__init__()
        self._config, self._bus, self._clock, self._timetable = config, bus, clock, timetable
        self._alarms, self._trust, self._courseware = alarms, clock_trust, courseware
        self._tick_s, self._prefetch_s = tick_s, prefetch_s
        self._wake = asyncio.Event()
        self._last_clock_check = -CLOCK_CHECK_S
        self._last_pull_ask = -PULL_ASK_EVERY_S
        self._asked_for: set[str] = set()
        self.pinned: dict[str, float] = {}

    @property
    def _tt(self) -> Timetable:
        return self._timetable

    def refresh_now(self) -> None:
        """Read the sources at once."""
        self._wake.set()

    async def start(self) -> None:
        self._report()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._sources_loop(), name="timetable:sources")
            group.create_task(self._schedule_loop(), name="timetable:schedule")
            group.create_task(self._prefetch_loop(), name="timetable:prefetch")

    # -- sources --------------------------------------------------------------------------------

    async def _sources_loop(self) -> None:
        while True:
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config().timetable.refresh_s):
                    await self._wake.wait()
            self._wake.clear()

    async def refresh(self) -> None:
        """Ask every configured source once; forget the ones no longer configured."""
        cfg = self._config().timetable
        if cfg.feed_url:
            await self._refresh_feed(cfg.feed_url)
        else:
            self._tt.forget("feed")
        if cfg.repo_item:
            await self._refresh_repo(cfg.repo_item)
        else:
            self._tt.forget("repo")
        self._report()

    async def _refresh_feed(self, url: str) -> None:
        try:
            raw, validators = await self._fetch(url)
        except TimetableRefused as err:
            self._tt.note("feed", str(err))
            return
        if raw is None:
            self._tt.note("feed")  # 304: what the box has is current
            return
        await self._take("feed", raw, **validators)

    async def _take(self, source: str, raw: bytes, **validators: str) -> None:
        try:
            parsed, count = await asyncio.to_thread(self._tt.check, source, raw)
        except TimetableRefused as err:
            self._tt.note(source, str(err))
            return
        self._tt.accept(source, raw, parsed, count, **validators)

    async def _fetch(self, url: str) -> tuple[bytes | None, dict[str, str]]:
        """The feed's text and validators, or None when unchanged (304); TimetableRefused in plain words."""
        limit = self._config().timetable.max_feed_kb * 1024
        if url.startswith("file://"):
            return await asyncio.to_thread(_read_file, Path(url.removeprefix("file://")), limit), {}
        etag, modified = self._tt.validators("feed")
        headers = {"If-None-Match": etag} if etag else {}
        headers |= {"If-Modified-Since": modified} if modified else {}
        try:
            async with aiohttp.ClientSession(timeout=FEED_TIMEOUT) as session, session.get(url, headers=headers) as r:
                if r.status == 304:
                    return None, {}
                if r.status != 200:
                    raise TimetableRefused(f"the feed answered HTTP {r.status}")
                raw = await _read_metered(r, limit, courseware.budget(self._courseware))
                return raw, {"etag": r.headers.get("ETag", ""), "last_modified": r.headers.get("Last-Modified", "")}
        except (aiohttp.ClientError, TimeoutError) as err:
            raise TimetableRefused(f"the feed is unreachable: {redact(failure_reason(err))}") from err
        except BudgetExhausted as err:
            raise TimetableRefused(f"the feed waits: {err}") from err

    async def _refresh_repo(self, item: str) -> None:
        try:
            raw = await self._read_item(item)
        except (NotInStore, StoreClosed) as err:
            self._tt.note("repo", f"{item} is not in the courseware cache yet ({err})")
            return
        except TimetableRefused as err:
            self._tt.note("repo", str(err))
            return
        if raw.decode("utf-8", "replace") == self._tt.stored_text("repo"):
            self._tt.note("repo")
            return
        await self._take("repo", raw)

    async def _read_item(self, item: str) -> bytes:
        """The verified bytes of a courseware item; NotInStore, StoreClosed, TimetableRefused when too large."""
        course, path = item.split("/", 1)
        cw = courseware.running(self._courseware)
        hold = await cw.open(course, path)
        limit = self._config().timetable.max_feed_kb * 1024
        if hold.item.size > limit:
            await cw.release(hold)
            raise TimetableRefused(f"the timetable is {hold.item.size // 1024} KB, more than {limit // 1024} KB")
        return b"".join([piece async for piece in cw.read(hold, 0, hold.item.size)])

    # -- the schedule ---------------------------------------------------------------------------

    async def _schedule_loop(self) -> None:
        while True:
            try:
                done = await self._tt.tick()
            except Exception:
                log.exception("timetable: following the schedule failed; trying again")
                done = ""
            if done:
                log.info("timetable: %s", done)
                self._report()
            await self._check_clock()
            await asyncio.sleep(self._tick_s)

    async def _check_clock(self) -> None:
        now = self._clock().monotonic()
        if now - self._last_clock_check < CLOCK_CHECK_S:
            return
        self._last_clock_check = now
        synchronised = await asyncio.to_thread(self._clock().synchronised)
        self._trust.synchronised = synchronised
        if not synchronised and self._tt.slots():
            self._alarms.raise_alarm(CLOCK_ALARM, CLOCK_UNSYNCED)
        else:
            self._alarms.clear_alarm(CLOCK_ALARM)
        self._report()

    # -- courseware ahead -----------------------------------------------------------------------

    async def _prefetch_loop(self) -> None:
        with self._bus.subscribe("timetable.changed") as changes:
            while True:
                try:
                    await self.prefetch()
                except (StoreClosed, OSError) as err:
                    log.info("timetable: courseware not fetched ahead now: %s", err)
                with contextlib.suppress(TimeoutError):  # again when the timetable changes, else every minute
                    async with asyncio.timeout(self._prefetch_s):
                        await changes.get()

    async def prefetch(self) -> list[str]:
        """Pin the courses of the coming lessons; ask for a pull when some are not here. The courses missing."""
        cw = self._courseware
        if cw is None or cw.store is None:
            return []
        now = self._clock().wall()
        ahead = self._tt.courses_ahead()
        for course, until in ahead.items():
            await cw.pin(course, until - now + 3600.0, reason="timetable")
        self.pinned = ahead
        listing = await cw.listing()
        lessons = [{"title": c, "start": self._tt.first_lesson_of(c) or now, "course": c} for c in ahead]
        missing = [entry["course"] for entry in missing_for(lessons, listing["courses"])]
        if missing and self._pull_wanted(missing, now):
            self._last_pull_ask, self._asked_for = self._clock().monotonic(), set(missing)
            log.info("timetable: fetching courseware ahead for %s", ", ".join(sorted(missing)))
            cw.pull_now()
        return missing

    def _pull_wanted(self, missing: list[str], now: float) -> bool:
        recently = self._clock().monotonic() - self._last_pull_ask < PULL_ASK_EVERY_S
        if recently and set(missing) <= self._asked_for:
            return False  # asked for these a little while ago: the pull is on its way or waits for the budget
        first = min((self._tt.first_lesson_of(c) or now) for c in missing)
        return pull_now(courseware.budget(self._courseware), self._clock().now(), first - now)

    # -- health ---------------------------------------------------------------------------------

    def _report(self) -> None:
        status = self._tt.status()
        errors = [f"{name}: {s.error}" for name, s in status.items() if s.error]
        today = self._tt.day()
        metrics = {"lessons_today": len(today), "clock_synchronised": self._trust.synchronised}
        if errors:
            self.set_health("degraded", redact("; ".join(errors)), **metrics)
        elif self._trust.synchronised is False and today:
            self.set_health("degraded", CLOCK_UNSYNCED, **metrics)
        else:
            self.set_health("ok", f"{len(today)} lesson(s) today", **metrics)


def _read_file(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as err:
        raise TimetableRefused(f"the feed file cannot be read: {err.strerror}") from err
    if len(raw) > limit:
        raise TimetableRefused(f"the timetable is larger than the {limit // 1024} KB allowed")
    return raw


async def _read_metered(response: aiohttp.ClientResponse, limit: int, budget: Budget | None) -> bytes:
    """The body, counted by the WAN budget piece by piece; refused as soon as it passes `limit`."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise TimetableRefused(f"the timetable is {declared // 1024} KB, more than the {limit // 1024} KB allowed")
    data = bytearray()
    while piece := await response.content.read(READ_PIECE):
        if budget is not None:
            await budget.take(len(piece))
        data += piece
        if len(data) > limit:
            raise TimetableRefused(f"the timetable is larger than the {limit // 1024} KB allowed")
    return bytes(data)


def _rate(window: Window) -> float:
    return float("inf") if window.kbps <= 0 else window.kbps


def pull_now(budget: Budget | None, local_now: dt.datetime, lesson_in_s: float) -> bool:
    """Pull courseware for a lesson `lesson_in_s` away now, or wait for the budget's most generous window."""
    windows = budget.windows if budget is not None else []
    if not windows:
        return True  # no windows: every hour is the same
    best = max(_rate(w) for w in windows)
    generous = [w for w in windows if _rate(w) == best]
    if any(w.contains(local_now) for w in generous):
        return True
    opens_in = min(_until(w.start, local_now) for w in generous)
    return lesson_in_s <= opens_in + 3600.0  # the lesson comes before the night: fetch now, under the budget


def _until(hhmm: str, local_now: dt.datetime) -> float:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    opening = local_now.replace(hour=hours % 24, minute=minutes, second=0, microsecond=0)
    if opening <= local_now:
        opening += dt.timedelta(days=1)
    return (opening - local_now).total_seconds()
