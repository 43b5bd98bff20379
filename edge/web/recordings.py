"""Recordings over HTTP for the panel and the admin page: the catalogue and downloads (with Range)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from edge.errors import RecordingNotFound, RecordingNotReady
from edge.web.app import BoxDep, TeacherDep

router = APIRouter()

RECORDING_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MEDIA_TYPES = {"video": "video/mp4", "ink": "application/x-ndjson"}


def _file(box: BoxDep, recording_id: str, kind: str) -> FileResponse:
    if not RECORDING_ID_RE.match(recording_id):
        raise HTTPException(status_code=400, detail="not a recording id")
    try:
        path, filename = box.recording_file(recording_id, kind)
    except RecordingNotFound as err:
        raise HTTPException(status_code=404, detail=str(err)) from err
    except RecordingNotReady as err:
        raise HTTPException(status_code=409, detail=str(err)) from err
    return FileResponse(path, media_type=MEDIA_TYPES[kind], filename=filename)


@router.get("/api/recordings")
async def list_recordings(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """Every recording, newest first, with its state, upload state and download links."""
    return box.recordings()


@router.get("/api/recordings/{recording_id}/download")
async def download(box: BoxDep, who: TeacherDep, recording_id: str) -> FileResponse:
    """The finished MP4 (H.264 + audio); Range requests are answered with 206."""
    return _file(box, recording_id, "video")


@router.get("/api/recordings/{recording_id}/ink")
async def ink(box: BoxDep, who: TeacherDep, recording_id: str) -> FileResponse:
    """The board ink and lesson events logged beside the recording (JSON lines)."""
    return _file(box, recording_id, "ink")
