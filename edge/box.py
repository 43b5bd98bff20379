"""The service layer: the lesson state machine and every operation a door may ask for.

Doors (web panel, watch page, admin page, serial console) call only this; none has behaviour of
its own. Lessons go idle -> live -> idle and are persisted in SQLite under the state directory; the
live lesson is kept in memory, so a disk too full for SQLite to commit never blocks a stop or a start
(the state is written as soon as the disk has room again).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.config import BoxConfig
from edge.db import Headroom, open_db, table
from edge.errors import LessonAlreadyLive, NoLiveLesson, NotAllowed, RecordingNotFound, RecordingNotReady
from edge.events import EventBus
from edge.logs import redact
from sync.clock import Clock, monotonic, wall

if TYPE_CHECKING:
    from edge.component import Component
    from edge.daemon import Supervisor
    from edge.media.catalogue import Recording
    from edge.stream.viewers import ViewerHub

log = logging.getLogger(__name__)

JOIN_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
PIN_FAILURES_ALLOWED = 5  # per address and window
PIN_FAILURES_PER_BOX = 20  # from all addresses together, per window
PIN_LOCKOUT_S = 300.0
HEADROOM_FILE = "headroom.reserve"
MB = 1024 * 1024
UNSAVED_ALARM = "lesson-state"

LessonHook = Callable[["Lesson"], Awaitable[None]]


@dataclass(frozen=True)
class Lesson:
    """A lesson as the doors see it."""

    id: str
    title: str
    join_code: str
    state: str  # live | ended | interrupted
    started_at: float
    ended_at: float | None = None
    started_by: str = ""
    alarms: tuple[str, ...] = ()  # what the panel must say about the live lesson, in plain words (not stored)
    duration_s: float | None = field(default=None, compare=False)  # on the monotonic clock; wall times are labels

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Lesson:
        """Build from a `lessons` table row."""
        return cls(**{key: row[key] for key in cls.__dataclass_fields__ if key != "alarms"})

    def to_row(self) -> dict[str, Any]:
        """The `lessons` table row."""
        data = asdict(self)
        del data["alarms"]
        return data

    def to_json(self) -> dict[str, Any]:
        """The JSON form the API answers with."""
        data = asdict(self)
        data["alarms"] = list(self.alarms)
        if self.duration_s is None:  # a lesson from before durations were measured
            data["duration_s"] = round((self.ended_at or wall()) - self.started_at, 3)
        return data

    def public_json(self) -> dict[str, Any]:
        """What anyone may read about the lesson: its state and title (never its join code)."""
        return {"state": self.state, "title": self.title}


class PinGate:
    """Checks a PIN against an argon2 hash, locking an address (and the box) out after repeated failures.

    An attempt is counted before the slow verify is awaited, so parallel guesses cannot pass the
    limit; a right PIN clears its address's count. Only attempts inside the window are
    kept, and the per-box limit bounds how many addresses the table can hold.
    """

    def __init__(
        self,
        per_address: int = PIN_FAILURES_ALLOWED,
        per_box: int = PIN_FAILURES_PER_BOX,
        window_s: float = PIN_LOCKOUT_S,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self._hasher = PasswordHasher()
        self._per_address, self._per_box, self._window_s, self._clock = per_address, per_box, window_s, clock
        self._attempts: dict[str, list[float]] = {}

    async def check(self, pin_hash: str, pin: str | None, address: str) -> None:
        """Raise NotAllowed unless `pin` matches `pin_hash`."""
        now = self._clock()
        self._prune(now)
        if len(self._attempts.get(address, ())) >= self._per_address:
            raise NotAllowed("too many wrong PINs from this address; try again in a few minutes")
        if sum(map(len, self._attempts.values())) >= self._per_box:
            raise NotAllowed("too many wrong PINs on this box; try again in a few minutes")
        if not pin_hash or not pin:
            raise NotAllowed("a PIN is required")
        self._attempts.setdefault(address, []).append(now)
        if not await asyncio.to_thread(self._verify, pin_hash, pin):
            raise NotAllowed("wrong PIN")
        self._attempts.pop(address, None)

    def _prune(self, now: float) -> None:
        for address, times in list(self._attempts.items()):
            recent = [t for t in times if now - t < self._window_s]
            if recent:
                self._attempts[address] = recent
            else:
                del self._attempts[address]

    def _verify(self, pin_hash: str, pin: str) -> bool:
        try:
            return self._hasher.verify(pin_hash, pin)
        except (VerificationError, InvalidHashError):
            return False


def overall_status(components: dict[str, dict[str, Any]]) -> str:
    """The box's status from its components' reports: down, starting, degraded or ok."""
    statuses = {c["status"] for c in components.values()}
    if statuses & {"down", "starting"}:
        return "down" if "down" in statuses else "starting"
    return "degraded" if "degraded" in statuses else "ok"


def hash_pin(pin: str) -> str:
    """The argon2 hash to store in the config for `pin`."""
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ValueError("a PIN is 4 to 12 digits")
    return PasswordHasher().hash(pin)


class Box:
    """Every operation a door may ask for, over the daemon's components and state."""

    def __init__(self, config: BoxConfig, bus: EventBus) -> None:
        self.config = config
        self.bus = bus
        self.id = config.box.resolved_id()
        self.clock = Clock()
        self.started_at = self.clock.wall()
        self._started_mono = self.clock.monotonic()
        self._db: sqlite_utils.Database | None = None
        self._supervisor: Supervisor | None = None
        self._lock = asyncio.Lock()
        self._pins = PinGate()
        self._on_start: list[LessonHook] = []
        self._on_stop: list[LessonHook] = []
        self._live: Lesson | None = None
        self._live_since = 0.0  # the monotonic time the live lesson started
        self._unsaved: dict[str, Lesson] = {}  # lesson states the database could not take yet (disk full)
        self._alarms: dict[str, str] = {}
        self.headroom = Headroom(config.box.state_dir / HEADROOM_FILE, config.box.reserve_mb * MB)

    # -- composition ---------------------------------------------------------------------------

    def open(self) -> None:
        """Open the state database and close out lessons a crash or power cut left live."""
        self.config.box.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._db = open_db(self.config.box.state_dir / "box.db")
        except sqlite3.OperationalError:  # booted on a full disk: SQLite cannot even make its WAL index
            if not self.headroom.release():
                raise
            self._db = open_db(self.config.box.state_dir / "box.db")
        for row in self._lessons.rows_where("state = ?", ["live"]):
            lesson = Lesson.from_row(row)
            self._save(replace(lesson, state="interrupted"))
            log.warning("lesson %s (%s) was interrupted by a restart", lesson.id, lesson.title)
            self.bus.publish("lesson.interrupted", lesson=lesson.to_json())
        self.headroom.restore()

    def close(self) -> None:
        """Close the database (idempotent)."""
        if self._db is not None:
            self._flush()
            self._db.close()
            self._db = None

    def attach(self, supervisor: Supervisor) -> None:
        """Give the box the supervisor whose components it reports on."""
        self._supervisor = supervisor

    def on_lesson_start(self, hook: LessonHook) -> None:
        """Run `hook` (awaited, in registration order) when a lesson starts."""
        self._on_start.append(hook)

    def on_lesson_stop(self, hook: LessonHook) -> None:
        """Run `hook` (awaited, in reverse registration order) when a lesson stops."""
        self._on_stop.insert(0, hook)

    @property
    def db(self) -> sqlite_utils.Database:
        """The state database."""
        if self._db is None:
            raise RuntimeError("the box is not open")
        return self._db

    @property
    def _lessons(self) -> sqlite_utils.db.Table:
        return table(self.db, "lessons")

    # -- a full disk ----------------------------------------------------------------------------

    def _save(self, lesson: Lesson) -> None:
        """Persist a lesson's state, or keep it in memory until the database can take it."""
        self._unsaved[lesson.id] = lesson
        self._flush()

    def _flush(self) -> bool:
        """Write the lesson states the database has not taken yet; True when none is left."""
        for lesson in list(self._unsaved.values()):
            if not self._write(lesson):
                self.raise_alarm(UNSAVED_ALARM, "Disk full: lesson changes are kept in memory until there is room")
                return False
            del self._unsaved[lesson.id]
        self.clear_alarm(UNSAVED_ALARM)
        return True

    def _write(self, lesson: Lesson) -> bool:
        try:
            self._lessons.insert(lesson.to_row(), replace=True)
        except sqlite3.OperationalError as err:  # SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY: try again later
            if self.headroom.release():
                return self._write(lesson)
            log.warning("lesson %s: the database cannot take its state now (%s); kept until it can", lesson.id, err)
            return False
        return True

    async def tend_disk(self) -> bool:
        """Write what a full disk held back and make the database reserve again once there is room; True when held."""
        self._flush()
        return await asyncio.to_thread(self.headroom.restore)

    def disk_full(self) -> None:
        """A writer hit a full disk: give the databases the reserve kept for them."""
        self.headroom.release()

    def raise_alarm(self, name: str, message: str) -> None:
        """Say something the teacher and the technician must know, in plain words, until it is cleared."""
        if self._alarms.get(name) != message:
            self._alarms[name] = message
            log.warning("alarm: %s", message)
            self.bus.publish("alarm.raised", name=name, message=message)

    def clear_alarm(self, name: str) -> None:
        """The condition behind an alarm is over."""
        if self._alarms.pop(name, None) is not None:
            self.bus.publish("alarm.cleared", name=name)

    def alarms(self) -> dict[str, str]:
        """The alarms raised now, by name."""
        return dict(self._alarms)

    def component(self, name: str) -> Component | None:
        """A supervised component by name."""
        return self._supervisor.get(name) if self._supervisor else None

    # -- health ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Overall status and each component's health, for /healthz and the console."""
        components = self._supervisor.report() if self._supervisor else {}
        current = self.current_lesson()
        return {
            "status": overall_status(components),
            "box": {"id": self.id, "name": self.config.box.name},
            "uptime_s": round(self.clock.monotonic() - self._started_mono, 1),
            "lesson": current.to_json() if current else None,
            "alarms": self.alarms(),
            "components": components,
        }

    def public_health(self) -> dict[str, Any]:
        """What anyone may read: the overall status and each component's status, no details."""
        components = self._supervisor.report() if self._supervisor else {}
        return {
            "status": overall_status(components),
            "components": {name: {"status": c["status"]} for name, c in components.items()},
        }

    async def devices(self) -> dict[str, Any]:
        """The cameras and microphones this machine has (names, modes, channels) and which ones are configured."""
        from edge.media.capture import list_devices

        found = await asyncio.to_thread(list_devices)
        configured = {
            "cameras": [{**c.model_dump(), "device": redact(c.device)} for c in self.config.cameras],
            "microphones": [m.model_dump() for m in self.config.microphones],
        }
        return {**found, "configured": configured}

    # -- teacher credential ---------------------------------------------------------------------

    def is_panel_address(self, address: str | None) -> bool:
        """True when `address` is one of the configured panel addresses (acts as the teacher)."""
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        nets = (ipaddress.ip_network(n, strict=False) for n in self.config.web.panel_addresses)
        return any(ip in net for net in nets)

    async def authorize_teacher(self, address: str | None, pin: str | None) -> str:
        """Who is acting as the teacher; raise NotAllowed without the panel address or the PIN."""
        if self.is_panel_address(address):
            return "panel"
        await self._pins.check(self.config.web.teacher_pin_hash, pin, address or "?")
        return f"teacher@{address}"

    # -- lessons --------------------------------------------------------------------------------

    def current_lesson(self) -> Lesson | None:
        """The live lesson, if any, with the alarms the panel must show."""
        if self._live is None:
            return None
        live = self._measured(self._live)
        return replace(live, alarms=tuple(self._alarms.values())) if self._alarms else live

    def lesson_by_code(self, join_code: str) -> Lesson | None:
        """The lesson a join code belongs to (any state)."""
        code = join_code.lower()
        unsaved = next((lesson for lesson in self._unsaved.values() if lesson.join_code == code), None)
        if unsaved is not None:
            return self._measured(unsaved)
        rows = list(self._lessons.rows_where("join_code = ?", [code], limit=1))
        return self._measured(Lesson.from_row(rows[0])) if rows else None

    def get_lesson(self, lesson_id: str) -> Lesson | None:
        """A lesson by id."""
        if lesson_id in self._unsaved:
            return self._measured(self._unsaved[lesson_id])
        rows = list(self._lessons.rows_where("id = ?", [lesson_id], limit=1))
        return self._measured(Lesson.from_row(rows[0])) if rows else None

    def recent_lessons(self, limit: int = 50) -> list[Lesson]:
        """The most recent lessons, newest first."""
        rows = self._lessons.rows_where(order_by="started_at desc", limit=limit)
        lessons = {row["id"]: Lesson.from_row(row) for row in rows} | self._unsaved
        newest = sorted(lessons.values(), key=lambda lesson: lesson.started_at, reverse=True)[:limit]
        return [self._measured(lesson) for lesson in newest]

    def _measured(self, lesson: Lesson) -> Lesson:
        """The live lesson with how long it has been live (monotonic); any other lesson as it is."""
        if lesson.state != "live" or self._live is None or lesson.id != self._live.id:
            return lesson
        return replace(lesson, duration_s=round(self.clock.monotonic() - self._live_since, 3))

    def lesson_origin(self, lesson: Lesson) -> float:
        """The monotonic time the live `lesson` started: time zero of its media clock."""
        live = self._live is not None and lesson.id == self._live.id
        return self._live_since if live else self.clock.monotonic()

    def _new_join_code(self) -> str:
        length = self.config.lesson.join_code_length
        while True:
            code = "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(length))
            if self.lesson_by_code(code) is None:
                return code

    async def start_lesson(self, title: str | None, by: str) -> Lesson:
        """Go live; raise LessonAlreadyLive if a lesson is live."""
        async with self._lock:
            if self._live is not None:
                raise LessonAlreadyLive("a lesson is already live; stop it first")
            await self.tend_disk()
            lesson = Lesson(
                id=uuid.uuid4().hex,
                title=(title or "").strip()[:120] or self.config.lesson.default_title,
                join_code=self._new_join_code(),
                state="live",
                started_at=self.clock.wall(),
                started_by=by,
            )
            self._live, self._live_since = lesson, self.clock.monotonic()
            self._save(lesson)
            log.info("lesson %s started by %s: %s", lesson.id, by, lesson.title)
            await self._run_hooks(self._on_start, lesson)
            self.bus.publish("lesson.started", lesson=lesson.to_json())
            return lesson

    async def stop_lesson(self, by: str) -> Lesson:
        """End the live lesson; raise NoLiveLesson if there is none."""
        async with self._lock:
            current = self._live
            if current is None:
                raise NoLiveLesson("no lesson is live")
            ended = replace(self._measured(current), state="ended", ended_at=self.clock.wall())
            self._live = None
            self._save(ended)
            log.info("lesson %s stopped by %s", ended.id, by)
            await self._run_hooks(self._on_stop, ended)
            self.bus.publish("lesson.ended", lesson=ended.to_json())
            return ended

    async def _run_hooks(self, hooks: list[LessonHook], lesson: Lesson) -> None:
        for hook in hooks:
            try:
                await hook(lesson)
            except Exception:
                # A failing part (recorder, stream) degrades the lesson; it never blocks it.
                log.exception("lesson hook %s failed", getattr(hook, "__qualname__", hook))

    # -- live viewers (the `stream` component) ----------------------------------------------------

    def _viewer_hub(self) -> ViewerHub | None:
        from edge.stream.viewers import ViewerHub

        hub = self.component("stream")
        return hub if isinstance(hub, ViewerHub) else None

    def viewers(self) -> list[dict[str, Any]]:
        """Every student watching the live lesson: name, layer, bitrate, loss, RTT, raised hand."""
        hub = self._viewer_hub()
        return hub.viewers() if hub else []

    def acknowledge_hand(self, viewer_id: str) -> None:
        """The teacher answered a student's raised hand; raise ViewerError if that student left."""
        hub = self._viewer_hub()
        if hub is None:
            raise NoLiveLesson("live streaming is not running")
        hub.acknowledge_hand(viewer_id)

    # -- recordings -----------------------------------------------------------------------------

    def recordings(self) -> dict[str, Any]:
        """Every recording, newest first, with its upload state, and the recorder's storage figures."""
        from edge.media.catalogue import Catalogue

        component = self.component("recorder")
        storage = component.health().metrics if component is not None else {}
        return {"recordings": [r.to_json() for r in Catalogue(self.db).recent()], "storage": storage}

    def _ready_recording(self, recording_id: str) -> Recording:
        from edge.media.catalogue import Catalogue

        recording = Catalogue(self.db).get(recording_id)
        if recording is None:
            raise RecordingNotFound("no such recording")
        if recording.state != "ready":
            raise RecordingNotReady(f"the recording is {recording.state}, not ready to download")
        return recording

    def recording_file(self, recording_id: str, kind: str) -> tuple[Path, str]:
        """(path, download name) of a finished recording's `video` (MP4), `ink` log or HLS `playlist`."""
        recording = self._ready_recording(recording_id)
        stem = f"lesson-{recording.started_at:.0f}-{recording.id[:8]}"
        if kind == "ink":
            path, name = recording.ink_path, f"lesson-{recording.id[:8]}-ink.jsonl"
        elif kind == "playlist":
            path, name = (recording.path if recording.segmented else None), f"{stem}.m3u8"
        else:
            path, name = (None if recording.segmented else recording.path), f"{stem}.mp4"
        if not path or not Path(path).is_file():
            raise RecordingNotFound("the file is no longer on the box")
        return Path(path), name

    def recording_parts(self, recording_id: str) -> tuple[list[Path], str]:
        """A finished recording's video as files to send one after another, and its download name.

        One MP4, or (kept as segments for want of room) its MPEG-TS segments, which make one
        playable MPEG-TS stream when sent in order.
        """
        from edge.media.segments import closed_segments

        recording = self._ready_recording(recording_id)
        if not recording.segmented:
            path, name = self.recording_file(recording_id, "video")
            return [path], name
        segments = closed_segments(Path(recording.dir))
        if not segments:
            raise RecordingNotFound("the file is no longer on the box")
        return segments, f"lesson-{recording.started_at:.0f}-{recording.id[:8]}.ts"

    def recording_segment(self, recording_id: str, name: str) -> Path:
        """One segment file of a recording kept as segments (what its HLS playlist names)."""
        from edge.media.segments import SEGMENT_RE

        recording = self._ready_recording(recording_id)
        path = Path(recording.dir) / name
        if not recording.segmented or not SEGMENT_RE.match(name) or not path.is_file():
            raise RecordingNotFound("no such segment")
        return path
