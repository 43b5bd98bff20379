"""The kernel the box is built on, and the components built on the kernel.

`Services` is built first (config, bus, clock, database, lessons, timetable, alarms, headroom, the
microphone mute, the board, accounts, logs): what every component's narrow ports (edge/core/ports.py)
are made from. `Parts` are the components the daemon built on it (edge/wiring.py), handed to the `Box`
once; a Box built without them (tests, the offline console) answers as a box with no components.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field

import sqlite_utils

from edge.board import state as board
from edge.core.component import Component
from edge.core.config import BoxConfig
from edge.core.db import Headroom, open_db
from edge.core.events import EventBus
from edge.core.logs import LogRing
from edge.core.ports import LessonView
from edge.courseware.service import CoursewarePort
from edge.discovery.service import DiscoveryPort
from edge.health.dashboard import HistoryPort
from edge.health.health import Alarms
from edge.lessons.lessons import Lessons
from edge.lessons.timetable import Timetable, TimetableFeedPort
from edge.media.devices import CameraPort, MicrophoneMute, MicrophonePort, NamedCamera
from edge.media.service import MediaPort
from edge.recording.recordings import RecorderPort
from edge.room.devices import RoomDevices
from edge.stream.uplink_service import UplinkPort
from edge.stream.viewers_service import ViewerHubPort
from edge.system.accounts import AdminAccounts
from edge.system.certificate import Certificate, ensure_certificate
from sync.clock import Clock

log = logging.getLogger(__name__)

HEADROOM_FILE = "headroom.reserve"
MB = 1024 * 1024


@dataclass
class ClockTrust:
    """The timetable component's last look at the clock: synchronised or not (None before the first look)."""

    synchronised: bool | None = None


class Disk:
    """The disk as the writers see it: a full disk releases the database reserve, room again restores it."""

    def __init__(self, lessons: Lessons, headroom: Headroom) -> None:
        self._lessons = lessons
        self._headroom = headroom

    async def tend(self) -> bool:
        """Write what a full disk held back and make the database reserve again once there is room; True when held."""
        return await self._lessons.tend_disk()

    def full(self) -> None:
        """A writer hit a full disk: give the databases the reserve kept for them."""
        self._headroom.release()


class Services:
    """The kernel: state and services every component's ports are made from, built before any component."""

    def __init__(self, config: BoxConfig, bus: EventBus) -> None:
        self.config = config  # replaced when settings are saved: ports read it through `current_config`
        self.bus = bus
        self.id = config.box.resolved_id()
        self.clock = Clock()  # replaced by tests while the box runs: ports read it through `current_clock`
        self.started_at = self.clock.wall()
        self.started_mono = self.clock.monotonic()
        self._db: sqlite_utils.Database | None = None
        self.logs = LogRing()  # the daemon hands it the root logger's records
        self.headroom = Headroom(config.box.state_dir / HEADROOM_FILE, config.box.reserve_mb * MB)
        self.alarms = Alarms(bus)
        self.accounts = AdminAccounts(
            config.box.state_dir,
            clock=lambda: self.clock.monotonic(),
            idle_s=lambda: self.config.admin.idle_minutes * 60.0,
        )
        self.certificate: Certificate | None = None  # made by `open` while HTTPS is on
        self.lessons = Lessons(
            self.database, lambda: self.config.lesson, bus, self.current_clock, self.alarms, self.headroom
        )
        self.timetable = Timetable(self.database, self.current_config, self.current_clock, self.lessons, bus)
        self.mute = MicrophoneMute(bus)
        self.lessons.on_stop(self._unmute_after)  # the first stop hook registered runs last
        self.board = board.Board(bus, lambda: self.config.board.simplify)
        self.disk = Disk(self.lessons, self.headroom)
        self.clock_trust = ClockTrust()

    def current_config(self) -> BoxConfig:
        """The config now."""
        return self.config

    def current_clock(self) -> Clock:
        """The box's clock now."""
        return self.clock

    def database(self) -> sqlite_utils.Database:
        """The state database (RuntimeError before `open`)."""
        if self._db is None:
            raise RuntimeError("the box is not open")
        return self._db

    @property
    def is_open(self) -> bool:
        """True between `open` and `close`."""
        return self._db is not None

    def https_fingerprint(self) -> str | None:
        """The SHA-256 fingerprint of the box's HTTPS certificate (None while HTTPS is off)."""
        return self.certificate.fingerprint if self.certificate else None

    def open(self) -> None:
        """Open the state database and close out lessons a crash or power cut left live."""
        self.config.box.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._db = open_db(self.config.box.state_dir / "box.db")
        except sqlite3.OperationalError:  # booted on a full disk: SQLite cannot even make its WAL index
            if not self.headroom.release():
                raise
            self._db = open_db(self.config.box.state_dir / "box.db")
        self.lessons.close_out_interrupted()
        self.timetable.open()
        self.accounts.open(self._db)
        self._open_certificate()
        self.headroom.restore()

    def _open_certificate(self) -> None:
        if not self.config.web.https_port:
            return
        try:
            self.certificate = ensure_certificate(self.config.box.state_dir, self.config.box.name)
        except OSError as err:  # HTTPS stays off; the plain HTTP doors still serve
            log.warning("cannot make the box's HTTPS certificate: %s; HTTPS stays off", err.strerror or err)

    def close(self) -> None:
        """Write what is pending and close the database (idempotent)."""
        if self._db is not None:
            self.lessons.flush()
            self._db.close()
            self._db = None

    async def _unmute_after(self, lesson: LessonView) -> None:
        """The next lesson starts audible: a forgotten mute never records a whole lesson silent."""
        self.mute.set(False)


@dataclass(frozen=True)
class Parts:
    """The components the daemon built on the kernel, as the box's operations use them (None: not built)."""

    camera: CameraPort | None = None  # the lesson's picture: the first configured camera
    microphone: MicrophonePort | None = None  # the lesson's sound: the first configured microphone
    cameras: tuple[NamedCamera, ...] = ()  # every configured camera, for the admin page's device test
    media: MediaPort | None = None
    viewer_hub: ViewerHubPort | None = None
    uplink: UplinkPort | None = None  # the WHIP publisher to a cloud SFU
    recorder: RecorderPort | None = None
    discovery: DiscoveryPort | None = None
    courseware: CoursewarePort | None = None
    room: RoomDevices | None = None
    history: HistoryPort | None = None
    timetable_feed: TimetableFeedPort | None = None
    components: tuple[Component, ...] = field(default=(), repr=False)  # all of them, in start order
