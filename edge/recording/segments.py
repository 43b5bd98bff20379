"""Segment files: the live packets remuxed (no second encode) into short MPEG-TS files, then joined to MP4.

A `SegmentWriter` thread owns the files of one recording. It opens a segment at a video
keyframe, closes it at the first keyframe after `segment_seconds`, fsyncs it, renames it from
`.part` to its final name and fsyncs the directory: a power cut loses at most the open segment.
The ink/events log beside it gets one JSON line per event and is fsynced with every segment.
`join_segments` remuxes the closed segments into one MP4 (H.264 + Opus, faststart) for browsers; when the
disk has no room for that copy, `write_playlist` makes the segments themselves the recording (HLS).
A full disk stops the writer cleanly: the open segment is dropped (its room goes back to the disk),
the closed ones stay, and `disk_full` says why it stopped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import av

from edge.media.packets import AUDIO_LAYER, EncodedPacket
from sync.atomic import fsync_dir, write_atomic
from sync.push import file_sha256

log = logging.getLogger(__name__)

SEGMENT_RE = re.compile(r"^seg-(\d{5})\.ts$")
INK_LOG = "ink.jsonl"
FINAL_NAME = "lesson.mp4"
PLAYLIST_NAME = "lesson.m3u8"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
QUEUE_PACKETS = 4000  # ~1 minute of video + audio; a disk that slow drops packets, counted


@dataclass(frozen=True)
class ClosedSegment:
    """A segment file that is complete and durable."""

    seq: int
    path: Path
    size: int
    sha256: str
    duration_s: float


def segment_name(seq: int) -> str:
    """The final file name of segment `seq`."""
    return f"seg-{seq:05d}.ts"


def closed_segments(directory: Path) -> list[Path]:
    """The closed segment files in a recording directory, in order (open `.part` files excluded)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if SEGMENT_RE.match(p.name))


def is_disk_full(err: BaseException) -> bool:
    """True for the errors a full disk (or a used-up quota) raises."""
    return isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS


def fsync_file(path: Path) -> None:
    """Make a file's data durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _OpenSegment:
    """One MPEG-TS file being written."""

    def __init__(self, path: Path, audio_channels: int) -> None:
        self.path = path
        self.container = av.open(str(path), "w", format="mpegts")
        self.video = self.container.add_stream("h264")
        self.audio = self.container.add_stream("opus", rate=48_000)
        self.audio.layout = "stereo" if audio_channels == 2 else "mono"
        self.first_pts: float | None = None
        self.last_pts = 0.0

    def write(self, packet: EncodedPacket) -> None:
        out = av.Packet(packet.data)
        out.stream = self.audio if packet.layer == AUDIO_LAYER else self.video
        out.pts = out.dts = packet.pts
        out.time_base = packet.time_base
        out.is_keyframe = packet.keyframe
        if packet.duration:
            out.duration = packet.duration
        self.container.mux(out)
        if packet.layer != AUDIO_LAYER:
            at = float(packet.pts * packet.time_base)
            self.first_pts = at if self.first_pts is None else self.first_pts
            self.last_pts = at + float(packet.duration * packet.time_base)

    @property
    def seconds(self) -> float:
        return self.last_pts - (self.first_pts or 0.0)

    def close(self) -> None:
        self.container.close()

    def discard(self) -> None:
        """Drop the unfinished file (its bytes were never made durable)."""
        with contextlib.suppress(Exception):
            self.container.close()
        self.path.unlink(missing_ok=True)


class SegmentWriter:
    """The thread that writes one recording's segments and ink log."""

    def __init__(
        self,
        directory: Path,
        segment_seconds: float,
        on_closed: Callable[[ClosedSegment], None],
        *,
        on_failed: Callable[[], None] | None = None,
        video_layer: str = "high",
        audio_channels: int = 1,
        first_seq: int = 1,
    ) -> None:
        self.directory = directory
        self.segment_seconds = segment_seconds
        self.video_layer = video_layer
        self.audio_channels = audio_channels
        self._on_closed = on_closed
        self._on_failed = on_failed
        self._seq = first_seq
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(QUEUE_PACKETS)
        self._thread: threading.Thread | None = None
        self._segment: _OpenSegment | None = None
        self._ink: IO[str] | None = None
        self.dropped = 0
        self.segments_closed = 0
        self.error = ""
        self.disk_full = False

    def start(self) -> None:
        """Start the writer thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fsync_dir(self.directory.parent)
        self._thread = threading.Thread(target=self._run, name=f"recorder:{self.directory.name[:8]}", daemon=True)
        self._thread.start()

    def put_packet(self, packet: EncodedPacket) -> None:
        """Queue a packet (from the event loop); counted as dropped if the disk cannot keep up."""
        self._offer(("packet", packet))

    def put_event(self, t: float, at: float, topic: str, data: dict[str, Any]) -> None:
        """Queue one line for the ink/events log: `t` s on the media clock (pts 0 = 0), `at` the wall-clock label."""
        line = {"t": round(t, 3), "at": at, "topic": topic, "data": data}
        self._offer(("ink", json.dumps(line, default=str)))

    def _offer(self, item: tuple[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Write what is queued, close and fsync the open segment, stop the thread (blocking; idempotent)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        while thread.is_alive():  # a writer stopped by a full disk no longer drains its queue
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        thread.join()

    def _run(self) -> None:
        try:
            self._ink = (self.directory / INK_LOG).open("a", encoding="utf-8")
            while (item := self._queue.get()) is not None:
                kind, payload = item
                if kind == "packet":
                    self._write(payload)
                else:
                    self._ink.write(payload + "\n")
            self._close_segment()
        except Exception as err:
            self._failed(err)
        finally:
            if self._ink is not None:
                with contextlib.suppress(OSError):  # a full disk: what the ink log could not flush is lost
                    self._ink.close()

    def _failed(self, err: Exception) -> None:
        segment, self._segment = self._segment, None
        if segment is not None:
            segment.discard()
        self.disk_full = is_disk_full(err)
        if self.disk_full:
            self.error = "disk full"
            log.error("recording to %s stopped: the disk is full (closed segments are kept)", self.directory)  # noqa: TRY400
        else:
            self.error = f"{type(err).__name__}: {err}"
            log.exception("recording to %s failed", self.directory)
        if self._on_failed is not None:
            self._on_failed()

    def _write(self, packet: EncodedPacket) -> None:
        video = packet.layer != AUDIO_LAYER
        if video and packet.layer != self.video_layer:
            return
        if video and packet.keyframe and (self._segment is None or self._segment.seconds >= self.segment_seconds):
            self._close_segment()
            self._segment = _OpenSegment(self.directory / (segment_name(self._seq) + ".part"), self.audio_channels)
        if self._segment is not None:  # audio before the first keyframe has no segment yet
            self._segment.write(packet)

    def _close_segment(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            segment.close()
            if self._ink is not None:
                self._ink.flush()
                os.fsync(self._ink.fileno())
            fsync_file(segment.path)
        except BaseException:
            segment.discard()
            raise
        final = self.directory / segment_name(self._seq)
        os.replace(segment.path, final)
        fsync_dir(self.directory)
        closed = ClosedSegment(self._seq, final, final.stat().st_size, file_sha256(final), round(segment.seconds, 3))
        self._seq += 1
        self.segments_closed += 1
        self._on_closed(closed)


def join_segments(segments: list[Path], target: Path) -> float:
    """Remux segments into one browser-playable MP4 at `target` (written whole, fsynced); its duration in s."""
    temp = target.with_name(f".{target.name}.tmp")
    try:
        duration = _remux(segments, temp)
        fsync_file(temp)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    os.replace(temp, target)
    fsync_dir(target.parent)
    return duration


def _remux(segments: list[Path], temp: Path) -> float:
    first: float | None = None
    last = 0.0
    with av.open(str(temp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        streams: dict[str, Any] = {}
        for path in segments:
            with av.open(str(path)) as source:
                for stream in source.streams:
                    if stream.type not in streams and stream.type in ("video", "audio"):
                        streams[stream.type] = out.add_stream_from_template(stream)
                for packet in source.demux():
                    target_stream = streams.get(packet.stream.type)
                    if packet.dts is None or target_stream is None:
                        continue
                    if packet.stream.type == "video" and packet.pts is not None:
                        at = float(packet.pts * packet.time_base)
                        first = at if first is None else min(first, at)
                        last = max(last, at + float((packet.duration or 0) * packet.time_base))
                    packet.stream = target_stream
                    out.mux(packet)
    return round(last - (first or 0.0), 3)


def video_span(path: Path) -> tuple[float, float]:
    """(first, end) in seconds of a segment's video packets (demuxed, not decoded)."""
    first: float | None = None
    end = 0.0
    with av.open(str(path)) as source:
        for packet in source.demux(video=0):
            if packet.pts is None:
                continue
            at = float(packet.pts * packet.time_base)
            first = at if first is None else min(first, at)
            end = max(end, at + float((packet.duration or 0) * packet.time_base))
    return (first or 0.0, end)


def write_playlist(segments: list[Path], target: Path) -> float:
    """An HLS VOD playlist of the segments beside them at `target` (written atomically); the duration in s."""
    spans = [video_span(path) for path in segments]
    lengths = [max(0.0, end - first) for first, end in spans]
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-PLAYLIST-TYPE:VOD"]
    lines.append(f"#EXT-X-TARGETDURATION:{max(1, math.ceil(max(lengths)))}")
    lines.append("#EXT-X-MEDIA-SEQUENCE:0")
    for path, length in zip(segments, lengths, strict=True):
        lines += [f"#EXTINF:{length:.3f},", path.name]
    lines.append("#EXT-X-ENDLIST")
    write_atomic(target, ("\n".join(lines) + "\n").encode())
    return round(max(end for _, end in spans) - min(first for first, _ in spans), 3)
