"""Devices over HTTP for the admin page and the panel: the cameras and microphones this box can use."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from edge.doors.web.deps import BoxDep, TeacherDep

router = APIRouter()


@router.get("/api/devices")
async def list_devices(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """Cameras (V4L2 names and modes) and microphones (PortAudio names, channels, rates), and what is configured."""
    return await box.devices()
