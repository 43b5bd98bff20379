"""What every web door's routes depend on: the service layer and who is asking (the teacher or anyone)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from edge.errors import NotAllowed
from edge.service import Box


def get_box(request: Request) -> Box:
    """The service layer this app serves."""
    box: Box = request.app.state.box
    return box


BoxDep = Annotated[Box, Depends(get_box)]


async def teacher(request: Request, box: BoxDep, x_panel_pin: Annotated[str | None, Header()] = None) -> str:
    """The acting teacher: a panel address, or anyone showing the teacher PIN."""
    address = request.client.host if request.client else None
    try:
        return await box.authorize_teacher(address, x_panel_pin)
    except NotAllowed as err:
        raise HTTPException(status_code=401 if x_panel_pin is None else 403, detail=str(err)) from err


TeacherDep = Annotated[str, Depends(teacher)]


async def teacher_or_anyone(
    request: Request, box: BoxDep, x_panel_pin: Annotated[str | None, Header()] = None
) -> str | None:
    """The acting teacher, or None: a missing or wrong PIN reads as anyone (a wrong one still counts)."""
    address = request.client.host if request.client else None
    try:
        return await box.authorize_teacher(address, x_panel_pin)
    except NotAllowed:
        return None


MaybeTeacherDep = Annotated[str | None, Depends(teacher_or_anyone)]
