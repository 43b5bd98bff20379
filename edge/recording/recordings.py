"""Recordings: the catalogue with upload states, the recorder's storage figures, and the files to download."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from edge.board import export as board_export
from edge.board import state as board
from edge.core.component import Health
from edge.core.errors import RecordingNotFound, RecordingNotReady
from edge.courseware.service import CoursewarePort
from edge.recording.catalogue import Catalogue, Recording
from edge.recording.segments import SEGMENT_RE, closed_segments


class RecorderPort(Protocol):
    """What the service layer asks of the recorder (edge.recording.recorder.Recorder)."""

    def health(self) -> Health: ...


def listing(db: sqlite_utils.Database, recorder: RecorderPort | None) -> dict[str, Any]:
    """Every recording, newest first, with its upload state, and the recorder's storage figures."""
    storage = recorder.health().metrics if recorder is not None else {}
    return {"recordings": [r.to_json() for r in Catalogue(db).recent()], "storage": storage}


def ready(db: sqlite_utils.Database, recording_id: str) -> Recording:
    """A finished recording; RecordingNotFound or RecordingNotReady otherwise."""
    recording = Catalogue(db).get(recording_id)
    if recording is None:
        raise RecordingNotFound("no such recording")
    if recording.state != "ready":
        raise RecordingNotReady(f"the recording is {recording.state}, not ready to download")
    return recording


def _stem(recording: Recording) -> str:
    return f"lesson-{recording.started_at:.0f}-{recording.id[:8]}"


def file(recording: Recording, kind: str) -> tuple[Path, str]:
    """(path, download name) of a finished recording's `video` (MP4), `ink` log or HLS `playlist`."""
    if kind == "ink":
        path, name = recording.ink_path, f"lesson-{recording.id[:8]}-ink.jsonl"
    elif kind == "playlist":
        path, name = (recording.path if recording.segmented else None), f"{_stem(recording)}.m3u8"
    else:
        path, name = (None if recording.segmented else recording.path), f"{_stem(recording)}.mp4"
    if not path or not Path(path).is_file():
        raise RecordingNotFound("the file is no longer on the box")
    return Path(path), name


def parts(recording: Recording) -> tuple[list[Path], str]:
    """A finished recording's video as files to send one after another, and its download name.

    One MP4, or (kept as segments for want of room) its MPEG-TS segments, which make one
    playable MPEG-TS stream when sent in order.
    """
    if not recording.segmented:
        path, name = file(recording, "video")
        return [path], name
    segments = closed_segments(Path(recording.dir))
    if not segments:
        raise RecordingNotFound("the file is no longer on the box")
    return segments, f"{_stem(recording)}.ts"


def segment(recording: Recording, name: str) -> Path:
    """One segment file of a recording kept as segments (what its HLS playlist names)."""
    path = Path(recording.dir) / name
    if not recording.segmented or not SEGMENT_RE.match(name) or not path.is_file():
        raise RecordingNotFound("no such segment")
    return path


async def board_pdf(db: sqlite_utils.Database, cw: CoursewarePort | None, recording_id: str) -> bytes:
    """A finished recording's board as PDF pages (its ink log replayed); RecordingNotFound without one."""
    ink, _ = file(ready(db, recording_id), "ink")
    return await board_export.export(ink, lambda page: board.page_picture(cw, page))


async def save_board_pdf(db: sqlite_utils.Database, cw: CoursewarePort | None, recording_id: str) -> Path | None:
    """Write `board.pdf` beside a finished recording (to upload with it); None when it has no ink log."""
    recording = ready(db, recording_id)
    if not recording.ink_path:
        return None
    data = await board_pdf(db, cw, recording_id)
    return await asyncio.to_thread(board_export.save, Path(recording.dir), data)
