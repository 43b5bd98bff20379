"""Recordings over HTTP for the panel and the admin page: the catalogue and downloads (with Range)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from edge.media.catalogue import Catalogue, Recording
from edge.web.app import BoxDep, TeacherDep

router = APIRouter()

RECORDING_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _ready(box: BoxDep, recording_id: str) -> Recording:
    if not RECORDING_ID_RE.match(recording_id):
        raise HTTPException(status_code=400, detail="not a recording id")
    recording = Catalogue(box.db).get(recording_id)
    if recording is None:
        raise HTTPException(status_code=404, detail="no such recording")
    if recording.state != "ready":
        raise HTTPException(status_code=409, detail=f"the recording is {recording.state}, not ready to download")
    return recording


def _file(path: str | None, media_type: str, filename: str) -> FileResponse:
    if not path or not Path(path).is_file():
        raise HTTPException(status_code=404, detail="the file is no longer on the box")
    return FileResponse(path, media_type=media_type, filename=filename)


@router.get("/api/recordings")
async def list_recordings(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """Every recording, newest first, with its state, upload state and download links."""
    component = box.component("recorder")
    storage = component.health().metrics if component is not None else {}
    return {"recordings": [r.to_json() for r in Catalogue(box.db).recent()], "storage": storage}


@router.get("/api/recordings/{recording_id}/download")
async def download(box: BoxDep, who: TeacherDep, recording_id: str) -> FileResponse:
    """The finished MP4 (H.264 + audio); Range requests are answered with 206."""
    recording = _ready(box, recording_id)
    return _file(recording.path, "video/mp4", f"lesson-{recording.started_at:.0f}-{recording.id[:8]}.mp4")


@router.get("/api/recordings/{recording_id}/ink")
async def ink(box: BoxDep, who: TeacherDep, recording_id: str) -> FileResponse:
    """The board ink and lesson events logged beside the recording (JSON lines)."""
    recording = _ready(box, recording_id)
    return _file(recording.ink_path, "application/x-ndjson", f"lesson-{recording.id[:8]}-ink.jsonl")
