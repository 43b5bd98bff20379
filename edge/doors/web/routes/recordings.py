"""Recordings over HTTP for the panel and the admin page: the catalogue and downloads (with Range).

A recording kept as segments (the disk had no room to join them) is offered as an HLS playlist with
its segments, and its download is those segments sent one after another (one MPEG-TS file).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, StreamingResponse

from edge.doors.web.deps import BoxDep, TeacherDep

router = APIRouter()

RECORDING_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MEDIA_TYPES = {"video": "video/mp4", "ink": "application/x-ndjson", "playlist": "application/vnd.apple.mpegurl"}
MPEG_TS = "video/mp2t"
READ_PIECE = 256 * 1024
T = TypeVar("T")


def _answer(recording_id: str, lookup: Callable[[], T]) -> T:
    """`lookup()` for a well-formed recording id (400 otherwise; its errors answer through the map)."""
    if not RECORDING_ID_RE.match(recording_id):
        raise HTTPException(status_code=400, detail="not a recording id")
    return lookup()


def _file(box: BoxDep, recording_id: str, kind: str) -> FileResponse:
    path, filename = _answer(recording_id, lambda: box.recording_file(recording_id, kind))
    return FileResponse(path, media_type=MEDIA_TYPES[kind], filename=None if kind == "playlist" else filename)


async def _one_after_another(paths: list[Path]) -> AsyncIterator[bytes]:
    for path in paths:
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            while piece := await asyncio.to_thread(handle.read, READ_PIECE):
                yield piece
        finally:
            handle.close()


@router.get("/api/recordings")
async def list_recordings(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """Every recording, newest first, with its state, upload state and download links."""
    return box.recordings()


@router.get("/api/recordings/{recording_id}/download", response_model=None)
async def download(box: BoxDep, who: TeacherDep, recording_id: str) -> FileResponse | StreamingResponse:
    """The finished MP4 (H.264 + audio; Range answered with 206), or the segments as one MPEG-TS file."""
    parts, filename = _answer(recording_id, lambda: box.recording_parts(recording_id))
    if filename.endswith(".mp4"):
        return FileResponse(parts[0], media_type=MEDIA_TYPES["video"], filename=filename)
    headers = {
        "Content-Length": str(sum(path.stat().st_size for path in parts)),
        "Content-Disposition": f'attachment; filename="{filename}"',
    }
    return StreamingResponse(_one_after_another(parts), media_type=MPEG_TS, headers=headers)


@router.get("/api/recordings/{recording_id}/playlist.m3u8")
async def playlist(box: BoxDep, who: TeacherDep, recording_id: str) -> FileResponse:
    """The HLS playlist of a recording kept as segments (404 for one joined into an MP4)."""
    return _file(box, recording_id, "playlist")


@router.get("/api/recordings/{recording_id}/ink")
async def ink(box: BoxDep, who: TeacherDep, recording_id: str) -> FileResponse:
    """The board ink and lesson events logged beside the recording (JSON lines)."""
    return _file(box, recording_id, "ink")


@router.get("/api/recordings/{recording_id}/{segment}")
async def segment(box: BoxDep, who: TeacherDep, recording_id: str, segment: str) -> FileResponse:
    """One segment a recording's HLS playlist names (`seg-NNNNN.ts`); Range supported."""
    path = _answer(recording_id, lambda: box.recording_segment(recording_id, segment))
    return FileResponse(path, media_type=MPEG_TS)
