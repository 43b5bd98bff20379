"""The `recorder` component: records each live lesson from the shared packets, survives power cuts.

While a lesson is live it subscribes to the media fan-out (high layer + audio) and to the bus
(`lesson.`, `board.`, `alarm.` and `microphone.` events for the ink/events log; alarms already
raised when it starts are logged at its start) and hands both to a `SegmentWriter` thread. When the
lesson stops it joins the segments into one MP4 in the background, catalogues it and publishes
`recording.finished` (the uploads component queues it). On start it finalises recordings a crash
or power cut left open, from their closed segments, marked interrupted. It also runs the disk
policy and raises the `storage.low` alarm.

A full disk stops the recording, never the lesson: the writer drops its open segment, the box gets
its database reserve back, and the panel, health and /metrics say "Disk full: the lesson is live but
no longer recorded". A recording with no room left to join is kept as its segments plus an HLS
playlist, joined into MP4 later once there is room. The next lesson records again as soon as the
disk has room (no restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.core.component import Component
from edge.core.events import EventBus, Subscription
from edge.core.ports import (
    AlarmBoard,
    ClockSource,
    ConfigSource,
    DatabaseSource,
    DiskRoom,
    LessonHooks,
    LessonLookup,
    LessonView,
    LiveLesson,
    MuteState,
    RecordsPolicy,
)
from edge.core.texts import N_
from edge.media.packets import AUDIO_LAYER, PacketFanout, PacketSource, PacketSubscription
from edge.recording.catalogue import Catalogue, Recording, Segment
from edge.recording.segments import (
    FINAL_NAME,
    INK_LOG,
    PLAYLIST_NAME,
    ClosedSegment,
    SegmentWriter,
    closed_segments,
    is_disk_full,
    join_segments,
    write_playlist,
)
from edge.recording.storage import MB, DiskPolicy, StorageReport, disk_free
from sync.atomic import fsync_dir
from sync.push import file_sha256

log = logging.getLogger(__name__)

# Alarms (a silent microphone, a black picture, a full disk...) and mutes, so a recording says when they happened.
RECORDED_TOPICS = ("lesson.", "board.", "alarm.", "microphone.")
RECORDER_QUEUE = 1000  # packets; a recording should not skip to the next keyframe on a busy loop
RECORDING_ALARM = "recording"
DISK_FULL_LIVE = N_("Disk full: the lesson is live but no longer recorded")
DISK_FULL_START = N_("Disk full: the lesson is live but not recorded")
DISK_FULL_NEXT = N_("Disk full: the next lesson will not be recorded until there is room (delete or upload recordings)")
RESUME_FREE_BYTES = 8 * MB  # room (beyond the database reserve) a recording or a join needs to begin


class RecordingSession:
    """One live lesson being recorded: the packet and event pumps plus the writer thread."""

    def __init__(self, recording: Recording, writer: SegmentWriter, origin: float) -> None:
        self.recording = recording
        self.writer = writer
        self.origin = origin  # the monotonic time of pts 0 (the lesson's start)
        self._tasks: list[asyncio.Task[None]] = []
        self._packets: PacketSubscription | None = None
        self._fanout: PacketFanout | None = None
        self._events: Subscription | None = None

    def start(self, fanout: PacketFanout | None, events: Subscription) -> None:
        """Start the writer thread and the pumps."""
        self.writer.start()
        self._events = events
        name = self.recording.id[:8]
        self._tasks.append(asyncio.create_task(self._pump_events(events), name=f"recorder:events:{name}"))
        if fanout is not None:
            self._fanout = fanout
            self._packets = fanout.subscribe([self.writer.video_layer, AUDIO_LAYER], maxsize=RECORDER_QUEUE)
            self._tasks.append(asyncio.create_task(self._pump_packets(self._packets), name=f"recorder:packets:{name}"))

    def detach(self) -> None:
        """Stop taking packets (the writer has stopped: a full disk)."""
        if self._packets is not None and self._fanout is not None:
            self._fanout.unsubscribe(self._packets)

    async def _pump_packets(self, packets: PacketSubscription) -> None:
        async for packet in packets:
            self.writer.put_packet(packet)

    async def _pump_events(self, events: Subscription) -> None:
        async for event in events:
            if event.topic.startswith(RECORDED_TOPICS):
                self.writer.put_event(event.mono - self.origin, event.at, event.topic, event.data)

    async def stop(self) -> None:
        """Stop the pumps, then let the writer finish and fsync (idempotent)."""
        self.detach()
        if self._events is not None:
            self._events.close()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self.writer.close)


class Recorder(Component):
    """Records lessons into segments, finalises them (also after a power cut), keeps the disk in check."""

    name = "recorder"

    def __init__(  # every port the recorder uses, each named (edge/wiring.py hands them over)
        self,
        *,
        config: ConfigSource,
        bus: EventBus,
        clock: ClockSource,
        db: DatabaseSource,
        lessons: LessonHooks,
        live: LiveLesson,
        lookup: LessonLookup,
        records: RecordsPolicy,
        alarms: AlarmBoard,
        disk: DiskRoom,
        packets: PacketSource,
        mute: MuteState,
        storage_check_s: float = 30.0,
        free_bytes: Callable[[Path], int] = disk_free,
    ) -> None:
        super().__init__()
        self._config, self._bus, self._clock, self._db = config, bus, clock, db
        self._live, self._lookup, self._records = live, lookup, records
        self._alarms, self._disk, self._packets, self._mute = alarms, disk, packets, mute
        self._session: RecordingSession | None = None
        self._to_finalise: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self._storage_check_s = storage_check_s
        self._storage = StorageReport(0, 0, 0, 0, 0, 0)
        self._alarm = False
        self._disk_full = False
        self._free_bytes = free_bytes
        self._joining = asyncio.Lock()
        cfg = config().recording
        self.policy = DiskPolicy(
            lambda: self.catalogue,
            self.root,
            cfg.quota_mb * MB,
            cfg.min_free_mb * MB,
            free_bytes,
        )
        lessons.on_start(self._lesson_started)
        lessons.on_stop(self._lesson_stopped)

    @property
    def root(self) -> Path:
        """Where recordings live."""
        return self._config().box.state_dir / "recordings"

    @property
    def catalogue(self) -> Catalogue:
        """The recordings catalogue."""
        return Catalogue(self._db())

    # -- component ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        current = self._live.current()
        for recording in self.catalogue.unfinished():
            if current is None or recording.lesson_id != current.id:
                lesson = self._lookup.get(recording.lesson_id)
                cut = lesson is None or lesson.state != "ended"  # else only the finalising was cut short
                self._to_finalise.put_nowait((recording.id, cut))
        if current is not None and self._config().recording.enabled:
            await self._lesson_started(current)  # the supervisor restarted us mid-lesson: carry on
        await self._check_storage()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._finaliser(), name="recorder:finaliser")
            group.create_task(self._storage_watch(), name="recorder:storage")

    async def stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.stop()

    # -- lessons --------------------------------------------------------------------------------

    def _fanout(self) -> PacketFanout | None:
        return self._packets()

    async def _room_to_record(self) -> bool:
        """True when the disk has room for a new recording (and the database reserve is held)."""
        room = await self._disk.tend()
        room = room and await asyncio.to_thread(self._free_bytes, self.root) >= RESUME_FREE_BYTES
        self._disk_full = not room
        return room

    async def _lesson_started(self, lesson: LessonView) -> None:
        if not self._config().recording.enabled or self._session is not None:
            return
        if not self._records.records(lesson):
            log.info("lesson %s is streamed only (its timetable says so): not recorded", lesson.id)
            return
        if not await self._room_to_record():
            log.error("lesson %s is not recorded: the disk is full", lesson.id)
            self._alarms.raise_alarm(RECORDING_ALARM, DISK_FULL_START)
            self._report()
            return
        directory = self.root / lesson.id
        recording = self.catalogue.begin(lesson.id, lesson.id, lesson.title, lesson.started_at, directory)
        existing = self.catalogue.segments(recording.id)
        writer = SegmentWriter(
            directory,
            self._config().recording.segment_seconds,
            self._segment_closed_threadsafe(recording.id),
            on_failed=self._threadsafe(self._writer_failed, recording.id),
            audio_channels=self._config().microphones[0].channels if self._config().microphones else 1,
            first_seq=_next_seq(directory, existing),
        )
        self._session = RecordingSession(recording, writer, self._live.origin(lesson))
        self._session.start(self._fanout(), self._bus.subscribe(""))
        origin = {"lesson": lesson.to_json(), "media_origin": lesson.started_at}  # pts 0, labelled in wall time
        self._put_event(self._session, "recording.started", origin)
        for name, message in self._alarms.now().items():  # raised before the lesson: true from its first second
            self._put_event(self._session, "alarm.raised", {"name": name, "message": message, "before_start": True})
        if self._mute.muted:
            self._put_event(self._session, "microphone.muted", {"muted": True, "before_start": True})
        log.info("recording lesson %s into %s", lesson.id, directory)
        self._report()

    async def _lesson_stopped(self, lesson: LessonView) -> None:
        self._alarms.clear_alarm(RECORDING_ALARM)
        session, self._session = self._session, None
        if session is None:
            self._report()
            return
        self._put_event(session, "recording.stopped", {"lesson": lesson.id})
        await session.stop()
        if session.writer.error:
            log.error("recording of %s had an error: %s", lesson.id, session.writer.error)
        self._to_finalise.put_nowait((session.recording.id, False))
        self._report()

    def _put_event(self, session: RecordingSession, topic: str, data: dict[str, object]) -> None:
        clock = self._clock()
        session.writer.put_event(clock.monotonic() - session.origin, clock.wall(), topic, data)

    def _threadsafe(self, callback: Callable[[str], None], recording_id: str) -> Callable[[], None]:
        loop = asyncio.get_running_loop()

        def call() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone
                loop.call_soon_threadsafe(callback, recording_id)

        return call

    def _writer_failed(self, recording_id: str) -> None:
        session = self._session
        if session is None or session.recording.id != recording_id:
            return
        session.detach()
        if session.writer.disk_full:
            self._disk_full = True
            self._disk.full()
            self._alarms.raise_alarm(RECORDING_ALARM, DISK_FULL_LIVE)
        self._report()

    def _segment_closed_threadsafe(self, recording_id: str) -> Any:
        loop = asyncio.get_running_loop()

        def closed(segment: ClosedSegment) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: recovery re-reads the files
                loop.call_soon_threadsafe(self._segment_closed, recording_id, segment)

        return closed

    def _segment_closed(self, recording_id: str, segment: ClosedSegment) -> None:
        row = Segment(recording_id, segment.seq, str(segment.path), segment.size, segment.sha256, segment.duration_s)
        row = Segment(**{**row.__dict__, "closed_at": self._clock().wall()})
        try:
            self.catalogue.add_segment(row)
        except sqlite3.OperationalError:  # the disk filled before the writer noticed: the reserve is for this
            self._disk.full()
            try:
                self.catalogue.add_segment(row)
            except sqlite3.OperationalError as err:  # the segment is on disk: finalising reads the files
                log.warning("segment %d of %s not catalogued: %s", segment.seq, recording_id, err)
        self._bus.publish("recording.segment", recording=recording_id, seq=segment.seq, size=segment.size)

    # -- finalising -----------------------------------------------------------------------------

    async def _finaliser(self) -> None:
        while True:
            recording_id, interrupted = await self._to_finalise.get()
            try:
                await self.finalise(recording_id, interrupted)
            except Exception:
                log.exception("finalising recording %s failed", recording_id)
                self.catalogue.update(recording_id, state="failed", error="finalising failed; segments kept")
            await self._check_storage()

    async def finalise(self, recording_id: str, interrupted: bool) -> Recording:
        """Join the closed segments into the final MP4 (or keep them, with a playlist, when there is no room)."""
        recording = self.catalogue.require(recording_id)
        directory = Path(recording.dir)
        segments = await asyncio.to_thread(closed_segments, directory)
        if not segments:
            log.warning("recording %s has no closed segment; nothing to keep", recording_id)
            return self.catalogue.update(recording_id, state="failed", interrupted=int(interrupted), error="empty")
        if interrupted:
            await self._catalogue_segments(recording_id, segments)
        ink = directory / INK_LOG
        ink_sha = await asyncio.to_thread(file_sha256, ink) if ink.is_file() else None
        recording = self.catalogue.update(
            recording_id,
            interrupted=int(interrupted),
            ink_path=str(ink) if ink_sha else None,
            ink_size=ink.stat().st_size if ink_sha else None,
            ink_sha256=ink_sha,
        )
        done = await self._join(recording, segments) if await self._room_to_join(segments) else None
        if done is None:
            done = await self._keep_segments(recording, segments)
        self._bus.publish("recording.finished", recording=done.to_json())
        return done

    async def _room_to_join(self, segments: list[Path]) -> bool:
        """True when the disk can take a joined copy of `segments` and still keep the database reserve."""
        if not await self._disk.tend():
            return False
        needed = await asyncio.to_thread(_total_size, segments) + RESUME_FREE_BYTES
        return await asyncio.to_thread(self._free_bytes, self.root) >= needed

    async def _join(self, recording: Recording, segments: list[Path]) -> Recording | None:
        """Join into the final MP4 and drop the segments; None when the disk filled up meanwhile."""
        final = Path(recording.dir) / FINAL_NAME
        try:
            duration = await asyncio.to_thread(join_segments, segments, final)
        except OSError as err:
            if not is_disk_full(err):
                raise
            log.warning("recording %s: the disk filled up while joining; keeping the segments", recording.id)
            return None
        size, digest = final.stat().st_size, await asyncio.to_thread(file_sha256, final)
        done = self._finished(recording, final, size, digest, duration)
        await asyncio.to_thread(_remove_segments, [*segments, Path(recording.dir) / PLAYLIST_NAME])
        log.info(
            "recording %s finalised: %.1f s, %d bytes, interrupted=%s",
            recording.id,
            duration,
            size,
            bool(recording.interrupted),
        )
        return done

    async def _keep_segments(self, recording: Recording, segments: list[Path]) -> Recording:
        """No room to join: the segments and an HLS playlist are the recording (joined later, when there is room)."""
        playlist = Path(recording.dir) / PLAYLIST_NAME
        duration = await asyncio.to_thread(write_playlist, segments, playlist)
        size = await asyncio.to_thread(_total_size, [*segments, playlist])
        log.warning(
            "recording %s kept as %d segments (%.1f s): no room to join them", recording.id, len(segments), duration
        )
        return self._finished(recording, playlist, size, None, duration)

    def _finished(self, recording: Recording, path: Path, size: int, sha256: str | None, duration: float) -> Recording:
        """Catalogue `recording` as finished in `path`: it ended with its lesson (else `duration` after its start)."""
        lesson = self._lookup.get(recording.lesson_id)
        ended_at = (lesson.ended_at if lesson else None) or recording.started_at + duration
        return self.catalogue.finished(
            recording.id, path=path, size=size, sha256=sha256, duration_s=duration, ended_at=ended_at
        )

    async def _join_kept(self) -> None:
        """Join recordings kept as segments once the disk has room (then they are uploaded like any other)."""
        async with self._joining:
            for recording in self.catalogue.ready():
                if not recording.segmented or recording.error:
                    continue
                segments = await asyncio.to_thread(closed_segments, Path(recording.dir))
                if not await self._room_to_join(segments):
                    return
                try:
                    done = await self._join(recording, segments)
                except Exception:
                    log.exception("joining the kept segments of %s failed; they stay the recording", recording.id)
                    self.catalogue.update(recording.id, error="joining failed; kept as segments")
                    continue
                if done is not None:
                    self._bus.publish("recording.finished", recording=done.to_json())

    async def _catalogue_segments(self, recording_id: str, segments: list[Path]) -> None:
        known = {s.seq for s in self.catalogue.segments(recording_id)}
        for path in segments:
            seq = int(path.name[4:9])
            if seq not in known:
                digest = await asyncio.to_thread(file_sha256, path)
                self.catalogue.add_segment(Segment(recording_id, seq, str(path), path.stat().st_size, digest))

    # -- storage --------------------------------------------------------------------------------

    async def _storage_watch(self) -> None:
        with self._bus.subscribe("recording.uploaded") as uploaded:
            while True:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can lose the cancel that stops this task.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._storage_check_s):
                        await uploaded.get()
                await self._check_storage()

    async def _check_storage(self) -> None:
        await self._disk.tend()  # lesson states a full disk held back; the database reserve once there is room
        if self._disk_full and self._session is None:
            await self._room_to_record()  # room came back: the next lesson records again
        await self._join_kept()
        self._storage = await self.policy.enforce()
        if self._storage.low and not self._alarm:
            self._bus.publish("storage.low", detail=self._storage.detail, unsent=self._storage.unsent)
        elif self._alarm and not self._storage.low:
            self._bus.publish("storage.ok", detail=self._storage.detail)
        self._alarm = self._storage.low
        self._report()

    def _report(self) -> None:
        storage = self._storage
        ready = self.catalogue.ready()
        recording = self._session is not None and not self._session.writer.error
        metrics = {
            "recording": int(recording),
            "recording_disk_full": int(self._disk_full),
            "recordings_on_disk": len(ready),
            "recordings_unsent": storage.unsent,
            "recording_bytes": storage.used_bytes,
            "recording_quota_bytes": storage.quota_bytes,
            "disk_free_bytes": storage.free_bytes,
            "storage_low": int(storage.low),
            "recorder_dropped_packets": self._session.writer.dropped if self._session else 0,
        }
        if self._disk_full:
            self.set_health("degraded", self._disk_full_detail(), **metrics)
        elif storage.low:
            self.set_health("degraded", storage.detail, **metrics)
        elif self._session is not None and self._session.writer.error:
            self.set_health("degraded", f"recording stopped: {self._session.writer.error}", **metrics)
        elif self._session is not None and self._fanout() is None:
            self.set_health("degraded", "recording the lesson's events only: no media component", **metrics)
        else:
            self.set_health("ok", "recording" if self._session else storage.detail, **metrics)

    def _disk_full_detail(self) -> str:
        alarm = self._alarms.now().get(RECORDING_ALARM)
        if alarm:
            return alarm
        return DISK_FULL_NEXT


def _total_size(paths: list[Path]) -> int:
    return sum(path.stat().st_size for path in paths)


def _remove_segments(segments: list[Path]) -> None:
    """Drop the segments once the joined file is durable (their rows stay in the catalogue)."""
    for path in segments:
        path.unlink(missing_ok=True)
    if segments:
        fsync_dir(segments[0].parent)


def _next_seq(directory: Path, known: list[Segment]) -> int:
    on_disk = [int(p.name[4:9]) for p in closed_segments(directory)]
    return max([s.seq for s in known] + on_disk + [0]) + 1
