"""Segment files: the live packets remuxed (no second encode) into short MPEG-TS files, then joined to MP4.

A `SegmentWriter` thread owns the files of one recording. It opens a segment at a video
keyframe, closes it at the first keyframe after `segment_seconds`, fsyncs it, renames it from
`.part` to its final name and fsyncs the directory: a power cut loses at most the open segment.
The ink/events log beside it gets one JSON line per event and is fsynced with every segment.
`join_segments` remuxes the closed segments into one MP4 (H.264 + Opus, faststart) for browsers.
"""

from __future__ import annotations

import json
import logging
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
from sync.atomic import fsync_dir
from sync.push import file_sha256

log = logging.getLogger(__name__)

SEGMENT_RE = re.compile(r"^seg-(\d{5})\.ts$")
INK_LOG = "ink.jsonl"
FINAL_NAME = "lesson.mp4"
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


class SegmentWriter:
    """The thread that writes one recording's segments and ink log."""

    def __init__(
        self,
        directory: Path,
        segment_seconds: float,
        on_closed: Callable[[ClosedSegment], None],
        *,
        video_layer: str = "high",
        audio_channels: int = 1,
        first_seq: int = 1,
    ) -> None:
        self.directory = directory
        self.segment_seconds = segment_seconds
        self.video_layer = video_layer
        self.audio_channels = audio_channels
        self._on_closed = on_closed
        self._seq = first_seq
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(QUEUE_PACKETS)
        self._thread: threading.Thread | None = None
        self._segment: _OpenSegment | None = None
        self._ink: IO[str] | None = None
        self.dropped = 0
        self.segments_closed = 0
        self.error = ""

    def start(self) -> None:
        """Start the writer thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fsync_dir(self.directory.parent)
        self._thread = threading.Thread(target=self._run, name=f"recorder:{self.directory.name[:8]}", daemon=True)
        self._thread.start()

    def put_packet(self, packet: EncodedPacket) -> None:
        """Queue a packet (from the event loop); counted as dropped if the disk cannot keep up."""
        self._offer(("packet", packet))

    def put_event(self, at: float, topic: str, data: dict[str, Any]) -> None:
        """Queue one line for the ink/events log (timestamps: time.time(), the packets' capture clock)."""
        self._offer(("ink", json.dumps({"at": at, "topic": topic, "data": data}, default=str)))

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
        self._queue.put(None)
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
            self.error = f"{type(err).__name__}: {err}"
            log.exception("recording to %s failed", self.directory)
        finally:
            if self._ink is not None:
                self._ink.close()

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
        segment.close()
        if self._ink is not None:
            self._ink.flush()
            os.fsync(self._ink.fileno())
        fsync_file(segment.path)
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
    fsync_file(temp)
    os.replace(temp, target)
    fsync_dir(target.parent)
    return round(last - (first or 0.0), 3)
