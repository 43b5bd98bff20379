"""What every web door's routes depend on: the service layer and who is asking (the teacher or anyone)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Cookie, Depends, Header, HTTPException, Request

from edge.box import Box
from edge.core.errors import NotAllowed
from edge.core.events import SubscriptionGroup

TEACHER_COOKIE = "classbox_teacher"  # the panel's PIN session (POST /api/panel/session): HttpOnly, SameSite=Strict


def get_box(request: Request) -> Box:
    """The service layer this app serves."""
    box: Box = request.app.state.box
    return box


BoxDep = Annotated[Box, Depends(get_box)]
SessionCookie = Annotated[str | None, Cookie(alias=TEACHER_COOKIE, include_in_schema=False)]


def event_streams(request: Request) -> SubscriptionGroup:
    """The bus subscriptions of this app's open event streams (`/api/events`)."""
    streams: SubscriptionGroup = request.app.state.event_streams
    return streams


EventStreamsDep = Annotated[SubscriptionGroup, Depends(event_streams)]


async def teacher(
    request: Request,
    box: BoxDep,
    x_panel_pin: Annotated[str | None, Header()] = None,
    teacher_session: SessionCookie = None,
) -> str:
    """The acting teacher: a panel address, a browser with a teacher session, or anyone showing the teacher PIN."""
    address = request.client.host if request.client else None
    try:
        return await box.authorize_teacher(address, x_panel_pin, teacher_session)
    except NotAllowed as err:
        raise HTTPException(status_code=401 if x_panel_pin is None else 403, detail=str(err)) from err


TeacherDep = Annotated[str, Depends(teacher)]


async def teacher_or_anyone(
    request: Request,
    box: BoxDep,
    x_panel_pin: Annotated[str | None, Header()] = None,
    teacher_session: SessionCookie = None,
) -> str | None:
    """The acting teacher, or None: a missing or wrong PIN reads as anyone (a wrong one still counts)."""
    address = request.client.host if request.client else None
    try:
        return await box.authorize_teacher(address, x_panel_pin, teacher_session)
    except NotAllowed:
        return None


MaybeTeacherDep = Annotated[str | None, Depends(teacher_or_anyone)]
