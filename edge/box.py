"""`Box`: the one facade every door calls, composing the service layer's concerns.

The daemon builds the kernel (`Services`) and the components on it (`Parts`) first and hands both to
the Box once; a Box built without them (tests, the offline console) makes its own kernel and has no
components: the operations that need one say so in plain words (or answer empty) without it.
Components never see the Box: they get their narrow ports from the composition root.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from drivers.ptz import Direction
from edge.board import state as board
from edge.core.config import BoxConfig
from edge.core.errors import LessonNotFound, NoLiveLesson, NotAllowed
from edge.core.events import EventBus, Subscription
from edge.core.logs import LogRing
from edge.courseware import service as courseware
from edge.courseware.service import CoursewarePort
from edge.discovery import service as discovery
from edge.health import dashboard as metrics_history
from edge.health import health
from edge.health.health import PublicHealth, Reports
from edge.health.overview import BoxHealth, BoxName
from edge.health.status import StatusLine, status_lines
from edge.lessons import links
from edge.lessons.agenda import (
    DayLesson,
    Extension,
    MissingCourseware,
    NextLesson,
    ScheduledLesson,
    TimetableStatus,
)
from edge.lessons.lessons import Lesson
from edge.lessons.timetable import Timetable, missing_for
from edge.media import devices
from edge.recording import recordings
from edge.room import devices as room
from edge.services import Parts, Services
from edge.stream import uplink_service as uplink
from edge.stream import viewers_service as viewers
from edge.stream.viewers_service import ViewerHubPort, WatchingStudent
from edge.system import doctor, maintenance
from edge.system.accounts import AdminAccounts, AdminSession, TeacherAccess, is_panel_address
from edge.system.certificate import Certificate
from edge.system.network import Network, Shown, Wanted, require_confirmable
from edge.system.settings import Group, Settings
from sync.clock import Clock
from sync.store import Hold

log = logging.getLogger(__name__)


class Box:
    """Every operation a door may ask for, over the daemon's kernel and components."""

    def __init__(
        self,
        config: BoxConfig,
        bus: EventBus,
        config_path: Path | None = None,
        *,
        services: Services | None = None,
        parts: Parts | None = None,
        supervisor: Reports | None = None,
        restart: Callable[[], None] | None = None,
    ) -> None:
        """`services`, `parts`: what the daemon built (its config and bus win); else a kernel of its own, no parts."""
        self.services = services or Services(config, bus)
        self.parts = parts or Parts()
        self.bus = self.services.bus
        self.id = self.services.id
        self.started_at = self.services.started_at
        self._started_mono = self.services.started_mono
        self._supervisor = supervisor
        self._restart = restart
        self._reset_pending = False
        self._lessons = self.services.lessons
        self._board = self.services.board
        self.settings = Settings(lambda: self.config, config_path, self._take_settings)
        self._teacher = TeacherAccess(lambda: self.config.web)
        self.network = Network(lambda: self.config.console)  # the console's `net`: networkd, undone unless confirmed

    # -- the kernel the doors read ---------------------------------------------------------------

    @property
    def config(self) -> BoxConfig:
        """The config now (saving settings replaces it)."""
        return self.services.config

    @property
    def clock(self) -> Clock:
        """The box's clock."""
        return self.services.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.services.clock = clock

    @property
    def logs(self) -> LogRing:
        """The recent log lines (the daemon hands it the root logger's records)."""
        return self.services.logs

    @property
    def accounts(self) -> AdminAccounts:
        """The admin accounts."""
        return self.services.accounts

    @property
    def certificate(self) -> Certificate | None:
        """The box's HTTPS certificate (None while HTTPS is off)."""
        return self.services.certificate

    @property
    def timetable(self) -> Timetable:
        """The timetable."""
        return self.services.timetable

    @property
    def clock_synchronised(self) -> bool | None:
        """The timetable component's last look at the clock (None before one)."""
        return self.services.clock_trust.synchronised

    # The two parts the door answers name directly (`viewers()`, `timetable_missing()`, ...).

    @property
    def viewer_hub(self) -> ViewerHubPort | None:
        """The viewer hub, when streaming runs on this box."""
        return self.parts.viewer_hub

    @property
    def courseware(self) -> CoursewarePort | None:
        """The courseware component, when the daemon built one."""
        return self.parts.courseware

    @property
    def _db(self) -> sqlite_utils.Database | None:
        """The state database while the box is open, else None."""
        return self.services.database() if self.services.is_open else None

    def _database(self) -> sqlite_utils.Database:
        """The state database (RuntimeError while the box is not open)."""
        return self.services.database()

    # -- composition ---------------------------------------------------------------------------

    def open(self) -> None:
        """Open the state database and close out lessons a crash or power cut left live."""
        self.services.open()

    def close(self) -> None:
        """Close the database (idempotent); a factory reset asked for wipes the state now."""
        self.services.close()
        if self._reset_pending:
            self._reset_pending = False
            maintenance.factory_reset(self.config, self.settings.path)

    # -- alarms and health ----------------------------------------------------------------------

    def alarms(self) -> dict[str, str]:
        """The alarms raised now, by name."""
        return self.services.alarms.now()

    def health(self) -> BoxHealth:
        """Overall status and each component's health, for /healthz and the console."""
        components = health.component_reports(self._supervisor)
        return BoxHealth(
            status=health.overall_status(components),
            box=BoxName(id=self.id, name=self.config.box.name),
            uptime_s=round(self.clock.monotonic() - self._started_mono, 1),
            lesson=self.current_lesson(),
            alarms=self.alarms(),
            components=components,
        )

    def public_health(self) -> PublicHealth:
        """What anyone may read: the overall status and each component's status, no details."""
        return health.public_health(health.component_reports(self._supervisor))

    async def devices(self) -> dict[str, Any]:
        """The cameras and microphones this machine has (names, modes, channels) and which ones are configured."""
        return await devices.devices(self.config)

    # -- the microphone -------------------------------------------------------------------------

    @property
    def microphone_muted(self) -> bool:
        """True while the teacher has muted the microphone: viewers and the recording get silence."""
        return self.services.mute.muted

    def set_microphone_muted(self, muted: bool) -> None:
        """Mute or unmute the lesson's microphone (the audio goes on, as silence); publishes `microphone.muted`."""
        self.services.mute.set(muted)

    def microphone_state(self) -> dict[str, Any]:
        """The lesson's microphone: muted or not, and its level now (RMS dBFS; None without a microphone)."""
        return self.services.mute.state(self.parts.microphone)

    # -- teacher credential ---------------------------------------------------------------------

    def is_panel_address(self, address: str | None) -> bool:
        """True when `address` is one of the configured panel addresses (acts as the teacher)."""
        return is_panel_address(self.config.web, address)

    async def authorize_teacher(self, address: str | None, pin: str | None, session: str | None = None) -> str:
        """Who is acting as the teacher; raise NotAllowed without the panel address, a teacher session or the PIN."""
        return await self._teacher.authorize(address, pin, session)

    async def open_teacher_session(self, address: str | None, pin: str | None) -> str:
        """A session token for a browser that shows the PIN once (the PIN's lock-out applies); raise NotAllowed."""
        return await self._teacher.open_session(address, pin)

    def close_teacher_session(self, session: str | None) -> bool:
        """The teacher left this browser: its session no longer counts; False when it had none."""
        return self._teacher.close_session(session)

    # -- admin credential (IT staff) ------------------------------------------------------------

    def setup_code(self) -> str | None:
        """The first-boot setup code while there is no admin account; only for local doors (console, screen)."""
        return self.accounts.setup_code()

    def needs_setup(self) -> bool:
        """True until the first admin account exists."""
        return not self.accounts.has_admin()

    async def create_first_admin(self, code: str, user: str, password: str, address: str = "local") -> str:
        """Create the first admin account with the setup code (which then stops working)."""
        return await self.accounts.create_first_admin(code, user, password, address)

    async def admin_login(self, user: str, password: str, address: str) -> tuple[str, AdminSession]:
        """Sign an admin in: (session token for the cookie, session); NotAllowed or TooManyAttempts otherwise."""
        return await self.accounts.login(user, password, address)

    def admin_session(self, token: str | None) -> AdminSession | None:
        """The signed-in admin session of a cookie's token, or None (unknown or expired)."""
        return self.accounts.session(token)

    def admin_logout(self, token: str) -> None:
        """End an admin session."""
        self.accounts.logout(token)

    def admin_accounts(self) -> list[dict[str, Any]]:
        """The admin accounts (usernames and when they were made)."""
        return self.accounts.accounts()

    async def add_admin(self, user: str, password: str) -> str:
        """Create another admin account."""
        return await self.accounts.add_admin(user, password)

    async def remove_admin(self, user: str, by: str) -> None:
        """Delete an admin account (never the caller's own, nor the last) and end its sessions."""
        await self.accounts.remove_admin(user, by)

    async def change_admin_password(self, user: str, current: str, new: str, address: str) -> None:
        """Change an admin's password (the current one must be right); every session of theirs ends."""
        await self.accounts.change_password(user, current, new, address)

    def https_fingerprint(self) -> str | None:
        """The SHA-256 fingerprint of the box's HTTPS certificate (None while HTTPS is off)."""
        return self.certificate.fingerprint if self.certificate else None

    def https_certificate(self) -> Certificate | None:
        """The box's HTTPS certificate and key files (None while HTTPS is off)."""
        return self.certificate

    # -- lessons --------------------------------------------------------------------------------

    def current_lesson(self) -> Lesson | None:
        """The live lesson, if any, with the alarms the panel must show."""
        return self._lessons.current()

    def lesson_by_code(self, join_code: str) -> Lesson | None:
        """The lesson a join code belongs to (any state)."""
        return self._lessons.by_code(join_code)

    def recent_lessons(self, limit: int = 50) -> list[Lesson]:
        """The most recent lessons, newest first."""
        return self._lessons.recent(limit)

    def join_url(self, join_code: str, seen_as: str | None = None) -> str:
        """The link students open for `join_code`, one their devices reach (`seen_as`: the host a page used)."""
        cloud = uplink.player_url(self.parts.uplink, self.config.uplink, join_code)
        return cloud or links.join_url(self.config.web, join_code, seen_as)

    async def start_lesson(self, title: str | None, by: str) -> Lesson:
        """Go live; raise LessonAlreadyLive if a lesson is live."""
        return await self._lessons.start(title, by)

    async def stop_lesson(self, by: str) -> Lesson:
        """End the live lesson; raise NoLiveLesson if there is none."""
        return await self._lessons.stop(by)

    # -- the timetable --------------------------------------------------------------------------

    def now(self) -> float:
        """The box's wall clock now, in epoch seconds (what the timetable follows)."""
        return self.clock.wall()

    def school_zone(self) -> dt.tzinfo:
        """The school's time zone (the timetable's days and times are in it)."""
        return self.timetable.zone

    def timetable_today(self, offset_days: int = 0) -> list[DayLesson]:
        """The scheduled lessons of today (+ `offset_days`, school time zone), each with state and join code."""
        return self.timetable.day(offset_days)

    def next_scheduled_lesson(self, seen_as: str | None = None) -> NextLesson | None:
        """The next scheduled lesson with the join link it will have (to share ahead of time), or None."""
        slot = self.timetable.next_slot()
        if slot is None:
            return None
        code = self.timetable.join_code(slot)
        return NextLesson(**slot.to_json(), join_code=code, join_url=self.join_url(code, seen_as))

    def timetable_status(self) -> TimetableStatus:
        """The timetable's sources (accepted, asked, errors), its time zone and whether the clock can be trusted."""
        return TimetableStatus(
            sources=self.timetable.status(),
            time_zone=str(self.timetable.zone),
            clock_synchronised=self.clock_synchronised,
            feed_configured=bool(self.config.timetable.feed_url),
            repo_item=self.config.timetable.repo_item,
        )

    async def timetable_missing(self, offset_days: int = 1) -> list[MissingCourseware]:
        """What the lessons of tomorrow (+ `offset_days` from today) need that is not on the box yet."""
        lessons = [lesson.to_json() for lesson in self.timetable.day(offset_days) if lesson.course]
        if not lessons:
            return []
        listing = await courseware.running(self.courseware).listing() if self.courseware is not None else None
        return [MissingCourseware(**entry) for entry in missing_for(lessons, listing["courses"] if listing else [])]

    async def start_scheduled_lesson(self, key: str | None = None) -> Lesson:
        """Start the next scheduled lesson now (early); LessonAlreadyLive, NoScheduledLesson."""
        return await self.timetable.start_early(key)

    async def extend_lesson(self, minutes: int) -> Extension:
        """Add 5 or 10 minutes to the live scheduled lesson; TimetableRefused, NoScheduledLesson."""
        return await self.timetable.extend(minutes)

    async def stop_lesson_early(self) -> Lesson:
        """End the live scheduled lesson before its end (it does not start again); NoScheduledLesson."""
        return await self.timetable.stop_early()

    def add_timetable_lesson(self, title: str, start: dt.datetime, minutes: int, **extra: str) -> ScheduledLesson:
        """Add a lesson to the timetable by hand (`extra`: course, teacher, mode); TimetableRefused."""
        return ScheduledLesson.of(self.timetable.add_manual(title, start, minutes, **extra))

    def remove_timetable_lesson(self, lesson_id: str) -> bool:
        """Remove a lesson added by hand; False when there is none with that id."""
        return self.timetable.remove_manual(lesson_id)

    def refresh_timetable(self) -> None:
        """Ask the feed and the repository file for the timetable now (nothing while the component is down)."""
        if self.parts.timetable_feed is not None:
            self.parts.timetable_feed.refresh_now()

    # -- live viewers ---------------------------------------------------------------------------

    def viewers(self) -> list[WatchingStudent]:
        """Every student watching the live lesson: name, layer, bitrate, loss, RTT, raised hand."""
        return viewers.viewers(self.viewer_hub)

    def acknowledge_hand(self, viewer_id: str) -> None:
        """The teacher answered a student's raised hand; raise ViewerError if that student left."""
        viewers.acknowledge_hand(self.viewer_hub, viewer_id)

    def dismiss_hand(self, viewer_id: str) -> None:
        """The teacher lowers a student's raised hand without letting them speak; ViewerError if they left."""
        viewers.dismiss_hand(self.viewer_hub, viewer_id)

    async def open_preview(self, offer: str) -> tuple[str, str]:
        """(id, answer) of the panel's preview of the live lesson (the low layer, not a student); NoLiveLesson."""
        lesson = self.current_lesson()
        if lesson is None:
            raise NoLiveLesson("no lesson is live")
        return await viewers.open_preview(self.viewer_hub, lesson.join_code, offer)

    async def close_preview(self, preview_id: str) -> bool:
        """End a panel preview; False when there is no such preview."""
        return await viewers.close_preview(self.viewer_hub, preview_id)

    async def open_viewer(
        self, join_code: str, offer: str, *, name: str = "", data_saver: bool = False
    ) -> tuple[str, str]:
        """(viewer id, SDP answer) for a student's offer; LessonNotFound, LessonFull, StreamUnavailable or BadOffer."""
        lesson = self._lessons.by_code(join_code)
        if lesson is not None and not self.timetable.streams(lesson):
            raise LessonNotFound("this lesson is recorded only: it is not streamed live")
        hub = viewers.running(self.viewer_hub)
        viewer, answer = await hub.open_viewer(join_code, offer, name=name, data_saver=data_saver)
        return viewer.id, answer

    async def close_viewer(self, viewer_id: str, reason: str = "left") -> bool:
        """End one student's session; False if it was not there, StreamUnavailable without streaming."""
        return await viewers.running(self.viewer_hub).close_viewer(viewer_id, reason)

    def streaming(self) -> bool:
        """True when live streaming runs on this box (students can join a live lesson)."""
        return self.viewer_hub is not None

    # -- the status strip and the board ----------------------------------------------------------

    def status_lines(self) -> list[StatusLine]:
        """What the box says about itself right now in plain words (alarms, devices, network, uploads)."""
        components = health.component_reports(self._supervisor)
        listed = self.recordings()["recordings"] if self._db is not None else []
        return status_lines(self.alarms(), components, listed, dt.date.today())

    def todays_recordings(self) -> list[dict[str, Any]]:
        """The recordings started today (local date), newest first, with their upload state."""
        today = dt.date.today()
        listed = self.recordings()["recordings"]
        return [r for r in listed if dt.datetime.fromtimestamp(r["started_at"]).date() == today]

    async def open_on_board(self, course: str, path: str) -> dict[str, Any]:
        """Show a courseware item of the cache on the board (`board.open`); NotInStore, StoreClosed while restarting."""
        return await board.open_item(self.courseware, self.bus, course, path, self._board)

    def board_state(self) -> dict[str, Any]:
        """The board now: the page on show and its strokes, current to `seq` (what a late joiner gets)."""
        return self._board.snapshot()

    def board_ink(self, ops: Any) -> int:
        """Apply a batch of ink operations from the board page, all or none (InkError says why)."""
        return self._board.apply(ops)

    def turn_board_page(self, index: int) -> dict[str, Any]:
        """Show page `index` of the item on the board (InkError when it has no such page)."""
        return self._board.turn(index).to_json()

    async def board_pdf(self, recording_id: str) -> bytes:
        """A finished recording's board as PDF pages (its ink log replayed); RecordingNotFound without one."""
        return await recordings.board_pdf(self._database(), self.courseware, recording_id)

    async def board_page_png(self, course: str, path: str, index: int) -> bytes:
        """Page `index` of a cached PDF rendered on the box (PNG); NotInStore, StoreClosed while restarting."""
        return await board.render_pdf_page(self.courseware, course, path, index)

    # -- recordings -----------------------------------------------------------------------------

    def recordings(self) -> dict[str, Any]:
        """Every recording, newest first, with its upload state, and the recorder's storage figures."""
        return recordings.listing(self._database(), self.parts.recorder)

    def recording_file(self, recording_id: str, kind: str) -> tuple[Path, str]:
        """(path, download name) of a finished recording's `video` (MP4), `ink` log or HLS `playlist`."""
        return recordings.file(recordings.ready(self._database(), recording_id), kind)

    def recording_parts(self, recording_id: str) -> tuple[list[Path], str]:
        """A finished recording's video as files to send one after another (an MP4, or its segments), and its name."""
        return recordings.parts(recordings.ready(self._database(), recording_id))

    def recording_segment(self, recording_id: str, name: str) -> Path:
        """One segment file of a recording kept as segments (what its HLS playlist names)."""
        return recordings.segment(recordings.ready(self._database(), recording_id), name)

    # -- courseware -----------------------------------------------------------------------------

    def courseware_open(self) -> None:
        """Nothing when the courseware cache is open; StoreClosed while it is (re)starting."""
        courseware.running(self.courseware)

    async def courseware_listing(self) -> dict[str, Any]:
        """Courses and items with their cache state, the WAN budget and the last pull; StoreClosed while restarting."""
        return await courseware.running(self.courseware).listing()

    def pull_courseware(self) -> None:
        """Ask the courseware component for a pull now; StoreClosed while it is restarting."""
        courseware.running(self.courseware).pull_now()

    async def courseware_chunk(self, digest: str) -> bytes | None:
        """A stored chunk by sha256 (for LAN peers), or None; StoreClosed while restarting."""
        return await courseware.running(self.courseware).chunk(digest)

    async def courseware_item(self, course: str, path: str) -> Hold:
        """Hold an item's current version for one reader (NotInStore); `release_courseware` it after."""
        return await courseware.running(self.courseware).open(course, path)

    def read_courseware(self, hold: Hold, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes [start, end) of a held item, piece by piece; the hold is released at the end."""
        return courseware.running(self.courseware).read(hold, start, end)

    async def release_courseware(self, hold: Hold) -> None:
        """Let go of a hold (idempotent; also while the courseware component restarts)."""
        await courseware.release(self.courseware, hold)

    # -- live to cloud (the WHIP uplink) --------------------------------------------------------

    def uplink_status(self) -> dict[str, Any]:
        """Publishing to the cloud server: mode, state, the error in plain words, bitrate, reconnects."""
        return uplink.status(self.parts.uplink, self.config.uplink)

    async def check_uplink(self) -> str:
        """Try the configured WHIP endpoint and token now: '' when it works, else why not."""
        return await uplink.check(self.parts.uplink, self.config.uplink)

    # -- settings and maintenance (the admin page) ----------------------------------------------

    def _take_settings(self, config: BoxConfig, changed: list[str]) -> None:
        """Run on `config` (just saved) and hand the parts that can take them the new settings at once."""
        self.services.config = config
        logging.getLogger().setLevel(config.logging.level.upper())
        if self.courseware is not None:
            self.courseware.apply_settings()
        if any(path.startswith(("timetable.", "box.time_zone")) for path in changed):
            self.timetable.settings_changed()
            self.refresh_timetable()
        self.bus.publish("settings.changed", changed=changed)

    def restart(self, by: str) -> None:
        """Restart the daemon (everything stops in order and starts again); NotAllowed when it cannot."""
        if self._restart is None:
            raise NotAllowed("this box cannot restart itself")
        log.warning("restart asked for by %s", by)
        self.bus.publish("daemon.restarting", by=by)
        self._restart()

    def setting_values(self, group: Group) -> dict[str, Any]:
        """A settings page's values; secrets as "" (and named in `secrets_set` when they hold one)."""
        return self.settings.values(group)

    def change_settings(self, group: Group, values: dict[str, Any], by: str) -> dict[str, Any]:
        """Validate and save a settings page's values; SettingsRefused names each refused field."""
        return self.settings.change(group, values, by)

    def set_pin(self, which: str, pin: str, by: str) -> dict[str, Any]:
        """Set the teacher or the technician PIN (stored as an argon2 hash); SettingsRefused."""
        return self.settings.set_pin(which, pin, by)

    def config_versions(self) -> list[dict[str, Any]]:
        """The kept versions of the config file, newest first; NoConfigFile when the box runs without one."""
        return self.settings.history.versions()

    def roll_back_config(self, version: int, by: str) -> dict[str, Any]:
        """Make a kept version the current config again (saved as a new version); KeyError, ConfigError."""
        return self.settings.roll_back_to(version, by)

    def log_lines(self, limit: int | None = 200, level: str = "", contains: str = "") -> list[dict[str, Any]]:
        """The newest log records (all kept when `limit` is None) at `level` or above containing `contains`."""
        return self.logs.tail(self.logs.size if limit is None else limit, level, contains)

    def log_handler(self) -> logging.Handler:
        """The handler that keeps the recent log lines `log_lines` reads (for the root logger)."""
        return self.logs

    def subscribe(self, prefix: str = "", maxsize: int = 256) -> Subscription:
        """A bounded queue of the box's events whose topic starts with `prefix` (all when empty); close it after."""
        return self.bus.subscribe(prefix, maxsize)

    def diagnostics(self) -> bytes:
        """A zip for support: the config without its secrets, health, recent logs, versions, config history."""
        kept = self.settings.history.versions() if self.settings.path is not None else []
        lines = self.logs.tail(limit=self.logs.size)
        return maintenance.diagnostics(self.config, self.health().to_json(), lines, kept)

    # -- other boxes on the LAN ------------------------------------------------------------------

    def lan_boxes(self) -> dict[str, Any]:
        """The other boxes seen on the LAN now (id, name, room, version, addresses, admin link)."""
        return discovery.lan_boxes(self.parts.discovery)

    # -- the room: the PTZ camera's presets and the board display ---------------------------------

    def room_state(self) -> dict[str, Any]:
        """The panel's room card: the camera's preset buttons, the display's power, what did not answer."""
        return room.state(self.parts.room)

    async def recall_preset(self, name: str) -> None:
        """Point the camera at the preset named `name` (RoomDeviceError in plain words)."""
        await room.camera_room(self.parts.room).recall(name)

    async def store_preset(self, name: str) -> None:
        """Store where the camera points now as the preset named `name`."""
        await room.camera_room(self.parts.room).store(name)

    async def nudge_camera(self, pan: Direction, tilt: Direction, zoom: Direction) -> None:
        """Move the camera a little (-1, 0 or 1 on each axis)."""
        await room.camera_room(self.parts.room).nudge(pan, tilt, zoom)

    async def camera_home(self) -> None:
        """Send the camera to its home position."""
        await room.camera_room(self.parts.room).home()

    async def board_power(self, on: bool) -> str:
        """Switch the board display on (to the board's input) or off; its power then."""
        return await room.display_room(self.parts.room).board_power(on)

    async def display_status(self) -> dict[str, Any]:
        """Ask the display how it is: its power and input."""
        status = await room.display_room(self.parts.room).display_status()
        return {"power": status.power, "input": status.input}

    # -- the dashboard and the device test --------------------------------------------------------

    async def metrics_history(self, hours: float) -> list[dict[str, Any]]:
        """The dashboard's samples of the last `hours`, oldest first ([] while the history is not running)."""
        if self.parts.history is None or not self.parts.history.running:
            return []
        return await self.parts.history.since(self.clock.wall() - hours * 3600.0)

    def dashboard(self) -> dict[str, Any]:
        """Health, the upload queue, the last courseware pull and the month's data against the cap."""
        report = self.health()
        cw = self.courseware
        pull = metrics_history.courseware(
            cw.store if cw else None,
            cw.last_report if cw else None,
            cw.last_attempt_at if cw else None,
            cw.last_error if cw else "",
        )
        uploads = metrics_history.uploads(report.components)
        return {
            "health": report.to_json(),
            "uploads": uploads,
            "courseware": pull,
            "budget": metrics_history.budget(courseware.budget(self.courseware)),
        }

    async def camera_snapshot(self, name: str) -> bytes:
        """The newest picture of the configured camera `name`, as JPEG (DeviceNotFound)."""
        return await devices.snapshot(list(self.parts.cameras), name)

    def microphone_level(self, name: str) -> dict[str, Any]:
        """The configured microphone `name`'s level now (dBFS) and status (DeviceNotFound)."""
        return devices.microphone_level(health.component_reports(self._supervisor), name)

    # -- the doctor and the technician's console ---------------------------------------------------

    async def doctor(self) -> list[doctor.Finding]:
        """What is wrong with the box, in plain words with the fix for each (also without a running daemon)."""
        components = health.component_reports(self._supervisor)
        listed = self.recordings()["recordings"] if self._db is not None else None
        facts = await asyncio.to_thread(doctor.gather, self.config, components, listed)
        return doctor.findings(facts)

    def running(self) -> bool:
        """True inside the daemon (its components attached); False for the console's offline mode."""
        return self._supervisor is not None

    def setting(self, key: str) -> Any:
        """One setting's value by its dotted name (`web.port`, `cameras.0.device`); KeyError for an unknown name."""
        return self.settings.get(key)

    def set_setting(self, key: str, text: str, by: str) -> dict[str, Any]:
        """Set one setting by its dotted name from typed text (JSON or a bare word), saved like the admin page's."""
        return self.settings.set_one(key, text, by)

    def network_status(self) -> Shown:
        """Addresses, gateways, name servers, the change waiting to be confirmed and the last one undone."""
        return self.network.show()

    async def set_network(self, wanted: Wanted) -> float:
        """Write one interface's systemd-networkd settings; the seconds left to confirm before they are undone."""
        return await self.network.apply(wanted)

    def confirm_network(self) -> Wanted:
        """Keep the change waiting to be confirmed; NotAllowed when it left the box unreachable, NetworkError."""
        require_confirmable(self.network)
        return self.network.confirm()

    async def undo_network(self) -> bool:
        """Put the previous network settings back; False when no change was waiting to be confirmed."""
        return await self.network.undo()

    async def drop_network_change(self) -> None:
        """Undo a change nobody confirmed (the console that made it is going away); idempotent."""
        await self.network.close()

    def factory_reset(self, by: str) -> None:
        """Wipe secrets and data (the state folder; the config back to defaults but the OS's own settings).

        Inside the daemon the wipe waits for every component to stop (the restart asked for here closes the
        box last); without one it happens at once.
        """
        log.warning("factory reset asked for by %s", by)
        self._reset_pending = True
        if self.running():
            self.restart(by)
        else:
            self.close()

    def sync_status(self) -> dict[str, Any]:
        """The courseware pull (last attempt, error, paused) and the upload queue, for the console's `sync`."""
        cw = self.courseware
        return {
            "running": cw is not None and cw.store is not None,
            "paused": bool(cw and cw.paused),
            "last_attempt_at": cw.last_attempt_at if cw else None,
            "error": cw.last_error if cw else "",
            "uploads": metrics_history.uploads(health.component_reports(self._supervisor)),
        }

    def pause_sync(self, paused: bool, by: str) -> None:
        """Stop (or resume) the scheduled courseware pulls; `pull_courseware` still pulls. StoreClosed without sync."""
        courseware.running(self.courseware).paused = paused
        log.warning("courseware sync %s by %s", "paused" if paused else "resumed", by)
