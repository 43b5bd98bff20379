"""The lesson's microphone over HTTP for the panel: mute and unmute, and its level now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from edge.doors.web.deps import Body, BoxDep, TeacherDep

router = APIRouter()


class MuteMicrophone(Body):
    """Body of POST /api/microphone."""

    muted: bool


@router.get("/api/microphone")
async def microphone(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """Whether the microphone is muted, and its level now (RMS dBFS)."""
    return box.microphone_state()


@router.post("/api/microphone")
async def mute_microphone(box: BoxDep, who: TeacherDep, body: MuteMicrophone) -> dict[str, Any]:
    """Mute or unmute the microphone: viewers and the recording get silence, at the same cadence, while muted."""
    box.set_microphone_muted(body.muted)
    return box.microphone_state()
