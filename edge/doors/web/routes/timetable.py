"""The timetable's doors: the panel card's API (today, start early, extend, stop early) and the admin page.

Teacher routes use the teacher credential; the admin page reads with an admin session and changes
with the session's CSRF token. The feed's address is a setting (it may carry a token) and is never
answered here.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import Field

from edge.box import Box
from edge.core.errors import Door, NoScheduledLesson
from edge.doors.web.deps import Body, BoxDep, TeacherDep, answers
from edge.doors.web.routes.accounts import AdminChangeDep, AdminDep
from edge.doors.web.routes.admin import render_admin
from edge.lessons.agenda import DayLesson
from sync.errors import StoreClosed

router = APIRouter()


class Extend(Body):
    """Body of POST /api/timetable/extend."""

    minutes: Literal[5, 10]


class StartEarly(Body):
    """Body of POST /api/timetable/start: the scheduled lesson to start now (default: the next one)."""

    key: Annotated[str, Field(max_length=400)] = ""


class ManualLesson(Body):
    """Body of POST /api/admin/timetable/lessons: a lesson added by hand (start in the school's time zone)."""

    title: Annotated[str, Field(min_length=1, max_length=120)]
    start: dt.datetime
    minutes: Annotated[int, Field(ge=1, le=720)]
    course: Annotated[str, Field(max_length=64)] = ""
    teacher: Annotated[str, Field(max_length=120)] = ""
    mode: Literal["both", "stream", "record"] = "both"


def _with_link(box: Box, lesson: DayLesson, host: str | None) -> dict[str, Any]:
    """A lesson of today with the link students open for it ("" once it cannot be joined)."""
    join_url = box.join_url(lesson.join_code, host) if lesson.join_code else ""
    return lesson.to_json() | {"join_url": join_url}


def _today(box: Box, request: Request) -> dict[str, Any]:
    host = request.headers.get("host")
    upcoming, status = box.next_scheduled_lesson(host), box.timetable_status()
    return {
        "lessons": [_with_link(box, lesson, host) for lesson in box.timetable_today()],
        "next": upcoming.to_json() if upcoming else None,
        "announce_minutes": box.config.timetable.announce_minutes,
        "time_zone": status.time_zone,
        "clock_synchronised": status.clock_synchronised,
        "now": box.now(),
    }


@router.get("/api/timetable/today")
async def today(request: Request, box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """Today's scheduled lessons with their state, and the next one with its join link."""
    return _today(box, request)


@router.post("/api/timetable/start", status_code=201, dependencies=[answers({NoScheduledLesson: Door(404)})])
async def start_early(box: BoxDep, who: TeacherDep, body: StartEarly | None = None) -> dict[str, Any]:
    """Start the next scheduled lesson now (404 when there is none)."""
    lesson = await box.start_scheduled_lesson((body.key if body else "") or None)
    return {"lesson": lesson.to_json()}


@router.post("/api/timetable/extend")
async def extend(box: BoxDep, who: TeacherDep, body: Extend) -> dict[str, Any]:
    """Add 5 or 10 minutes to the live scheduled lesson."""
    return (await box.extend_lesson(body.minutes)).to_json()


@router.post("/api/timetable/stop")
async def stop_early(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """End the live scheduled lesson before its end."""
    lesson = await box.stop_lesson_early()
    return {"lesson": lesson.to_json()}


# -- the admin page -------------------------------------------------------------------------------


@router.get("/admin/timetable", response_class=HTMLResponse)
async def timetable_page(request: Request, box: BoxDep, who: AdminDep) -> HTMLResponse:
    """The timetable: today and the coming days, the feed's status, lessons added by hand, what is missing."""
    return await render_admin(request, box, "timetable")


@router.get("/api/admin/timetable")
async def timetable_view(request: Request, box: BoxDep, who: AdminDep) -> dict[str, Any]:
    """The coming days' lessons, the sources' status and what tomorrow's lessons still lack."""
    days = max(2, box.config.timetable.prefetch_days + 1)
    try:
        missing = await box.timetable_missing(1)
        missing_error = ""
    except StoreClosed as err:
        missing, missing_error = [], str(err)
    return {
        "days": [[lesson.to_json() for lesson in box.timetable_today(offset)] for offset in range(days)],
        "status": box.timetable_status().to_json(),
        "missing_tomorrow": [entry.to_json() for entry in missing],
        "missing_error": missing_error,
        "now": box.now(),
    }


@router.post("/api/admin/timetable/lessons", status_code=201)
async def add_lesson(box: BoxDep, who: AdminChangeDep, body: ManualLesson) -> dict[str, Any]:
    """Add a lesson by hand."""
    extra = {"course": body.course, "teacher": body.teacher, "mode": body.mode}
    return box.add_timetable_lesson(body.title, body.start, body.minutes, **extra).to_json()


@router.delete("/api/admin/timetable/lessons/{lesson_id}")
async def remove_lesson(box: BoxDep, who: AdminChangeDep, lesson_id: str) -> dict[str, bool]:
    """Remove a lesson added by hand."""
    if not box.remove_timetable_lesson(lesson_id):
        raise HTTPException(404, "no lesson added by hand has this id")
    return {"removed": True}


@router.post("/api/admin/timetable/refresh", status_code=202)
async def refresh(box: BoxDep, who: AdminChangeDep) -> dict[str, bool]:
    """Ask the feed and the repository file for the timetable now."""
    box.refresh_timetable()
    return {"asked": True}
