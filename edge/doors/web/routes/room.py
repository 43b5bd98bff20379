"""The room's devices for the teacher: the PTZ camera's preset buttons and moves, the board display's power.

A device that does not answer gets 503 with a sentence for the teacher (`detail`, translated by the
page) and the device's own words (`reason`); one that is not set up, or a preset that is not, 404
(RoomDeviceError's meaning in the error map).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path

from edge.doors.web.deps import Body, BoxDep, TeacherDep

router = APIRouter()
PresetName = Annotated[str, Path(min_length=1, max_length=40)]
Step = Literal[-1, 0, 1]


class Nudge(Body):
    """Body of POST /api/room/camera/nudge: which way to move a little (-1, 0 or 1 per axis)."""

    pan: Step = 0
    tilt: Step = 0
    zoom: Step = 0


class Power(Body):
    """Body of POST /api/room/display."""

    on: bool


@router.get("/api/room")
async def room(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """The room card: the camera's preset buttons, the display's power, what did not answer last."""
    return box.room_state()


@router.post("/api/room/presets/{name}", response_model=None)
async def recall(box: BoxDep, who: TeacherDep, name: PresetName) -> dict[str, Any]:
    """Point the camera at the named preset (Board, Teacher, Class...)."""
    await box.recall_preset(name)
    return {"preset": name}


@router.put("/api/room/presets/{name}", response_model=None)
async def store(box: BoxDep, who: TeacherDep, name: PresetName) -> dict[str, Any]:
    """Store where the camera points now as the named preset."""
    await box.store_preset(name)
    return {"stored": name}


@router.post("/api/room/camera/nudge", response_model=None)
async def nudge(box: BoxDep, who: TeacherDep, body: Nudge) -> dict[str, Any]:
    """Move the camera a little."""
    await box.nudge_camera(body.pan, body.tilt, body.zoom)
    return {"moved": True}


@router.post("/api/room/camera/home", response_model=None)
async def home(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """Send the camera to its home position."""
    await box.camera_home()
    return {"moved": True}


@router.post("/api/room/display", response_model=None)
async def display_power(box: BoxDep, who: TeacherDep, body: Power) -> dict[str, Any]:
    """Switch the board display on (to the board's input) or off."""
    return {"power": await box.board_power(body.on)}


@router.get("/api/room/display", response_model=None)
async def display_status(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """Ask the display how it is (its power and input)."""
    return await box.display_status()
