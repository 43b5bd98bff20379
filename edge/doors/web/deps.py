"""What every web door's routes depend on: the service layer and who is asking (the teacher or anyone)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Cookie, Depends, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from edge.box import Box
from edge.core.errors import NotAllowed, Overrides
from edge.core.events import SubscriptionGroup

TEACHER_COOKIE = "classbox_teacher"  # the panel's PIN session (POST /api/panel/session): HttpOnly, SameSite=Strict


class Body(BaseModel):
    """A request's JSON body: a field it does not declare is refused."""

    model_config = ConfigDict(extra="forbid")


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


@dataclass(frozen=True)
class Shown:
    """What a request shows of a teacher: where it comes from, the PIN header, the panel's session cookie."""

    address: str | None
    pin: str | None
    session: str | None

    async def teacher(self, box: Box) -> str:
        """The acting teacher it shows; NotAllowed when it shows none."""
        return await box.authorize_teacher(self.address, self.pin, self.session)


def _shown(
    request: Request, x_panel_pin: Annotated[str | None, Header()] = None, teacher_session: SessionCookie = None
) -> Shown:
    """What the request shows of a teacher."""
    return Shown(request.client.host if request.client else None, x_panel_pin, teacher_session)


ShownDep = Annotated[Shown, Depends(_shown)]


async def teacher(box: BoxDep, shown: ShownDep) -> str:
    """The acting teacher: a panel address, a browser with a teacher session, or anyone showing the teacher PIN."""
    try:
        return await shown.teacher(box)
    except NotAllowed as err:
        raise HTTPException(status_code=401 if shown.pin is None else 403, detail=str(err)) from err


TeacherDep = Annotated[str, Depends(teacher)]


async def teacher_or_anyone(box: BoxDep, shown: ShownDep) -> str | None:
    """The acting teacher, or None: a missing or wrong PIN reads as anyone (a wrong one still counts)."""
    try:
        return await shown.teacher(box)
    except NotAllowed:
        return None


MaybeTeacherDep = Annotated[str | None, Depends(teacher_or_anyone)]


@dataclass(frozen=True, eq=False)
class Answers:
    """How a router or route answers errors besides the map: classes it answers otherwise, headers on each answer."""

    overrides: Overrides = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, request: Request) -> None:
        """Add these answers to the request's (a route's on top of its router's), for the error handler."""
        before = answers_of(request)
        request.state.door_answers = Answers({**before.overrides, **self.overrides}, {**before.headers, **self.headers})


NO_ANSWERS = Answers()


def answers_of(request: Request) -> Answers:
    """The answers the request's router and route declared (none: the map alone)."""
    found: Answers = getattr(request.state, "door_answers", NO_ANSWERS)
    return found


def answers(overrides: Overrides | None = None, headers: Mapping[str, str] | None = None) -> Any:
    """A route or router dependency: answer these error classes otherwise than the map, add `headers` to errors."""
    return Depends(Answers(overrides or {}, headers or {}))
