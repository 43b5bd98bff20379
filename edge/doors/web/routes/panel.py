"""The teacher's touch panel `/panel` and the operations only it asks for.

The panel's own addresses act as the teacher; any other browser shows the teacher PIN once and gets
a session cookie (`classbox_teacher`: HttpOnly, SameSite=Strict, for this browser session) that the
`teacher` credential accepts beside `X-Panel-Pin`. The page itself is a template plus an ES module
that follows `/api/events`; its live preview is a WebRTC viewer of the low layer that the viewer hub
marks as a preview, so it never counts as a student, takes no student's place and raises no hand.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

import segno
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import Field

from edge.core.errors import (
    Door,
    LessonFull,
    LessonNotFound,
    NotAllowed,
    StreamUnavailable,
    TooManyAttempts,
    ViewerError,
)
from edge.doors.web.deps import TEACHER_COOKIE, Body, BoxDep, MaybeTeacherDep, SessionCookie, TeacherDep, answers
from edge.doors.web.i18n import page_language, render_page

MAX_SDP_CHARS = 32 * 1024
QR_BORDER = 4  # modules of quiet zone: what a phone's scanner needs to find the code from afar

router = APIRouter()
PIN_REFUSED = answers({NotAllowed: Door(403), TooManyAttempts: Door(403)})  # a lock-out too: the PIN screen says it
# The preview is the teacher's, not a student's: no lesson to preview is a conflict, a full box no retry hint.
PREVIEW_REFUSED = answers(
    {LessonNotFound: Door(409), ViewerError: Door(400), LessonFull: Door(503), StreamUnavailable: Door(503)}
)


class PinBody(Body):
    """Body of POST /api/panel/session."""

    pin: Annotated[str, Field(min_length=1, max_length=12, pattern=r"^[0-9]+$")]


class OfferBody(Body):
    """Body of POST /api/panel/preview: the panel's WebRTC offer (recvonly video and audio)."""

    sdp: Annotated[str, Field(min_length=1, max_length=MAX_SDP_CHARS)]


class BoardItem(Body):
    """Body of POST /api/board/open: a courseware item of the cache."""

    course: Annotated[str, Field(min_length=1, max_length=64)]
    path: Annotated[str, Field(min_length=1, max_length=512)]


@router.get("/panel", response_class=HTMLResponse)
async def panel(request: Request, box: BoxDep, who: MaybeTeacherDep) -> HTMLResponse:
    """The teacher's panel, or the PIN screen for a browser that has not shown the PIN yet."""
    language = page_language(request, box)  # the panel's switch, else the box default
    page = await render_page("panel.html", language, name=box.config.box.name, teacher=who is not None)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.post("/api/panel/session", dependencies=[PIN_REFUSED])
async def open_session(request: Request, box: BoxDep, body: PinBody) -> JSONResponse:
    """Show the PIN once: this browser acts as the teacher for its session (the PIN lock-out applies)."""
    address = request.client.host if request.client else None
    token = await box.open_teacher_session(address, body.pin)
    response = JSONResponse({"teacher": True})
    secure = request.url.scheme == "https"
    response.set_cookie(TEACHER_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")
    return response


@router.delete("/api/panel/session")
async def close_session(box: BoxDep, teacher_session: SessionCookie = None) -> JSONResponse:
    """Leave this browser: its teacher session ends and the cookie goes (401 when it had no session)."""
    closed = box.close_teacher_session(teacher_session)
    response = JSONResponse({"teacher": False} if closed else {"detail": "no teacher session"}, 200 if closed else 401)
    response.delete_cookie(TEACHER_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/api/panel/qr.svg")
async def join_qr(request: Request, box: BoxDep, who: TeacherDep) -> Response:
    """The live lesson's join link as a QR code (SVG: sharp at any size, from the back of the room)."""
    lesson = box.current_lesson()
    if lesson is None:
        raise HTTPException(404, "no lesson is live")
    url = box.join_url(lesson.join_code, request.headers.get("host"))
    svg = io.BytesIO()
    segno.make(url, error="m").save(svg, kind="svg", scale=1, border=QR_BORDER, xmldecl=False, light="#fff")
    headers = {"Cache-Control": "no-store", "X-Join-Url": url}
    return Response(svg.getvalue(), media_type="image/svg+xml", headers=headers)


@router.get("/api/status")
async def status(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """The status strip in plain words (English; the pages get it translated on /api/events)."""
    return {"lines": [line.to_json() for line in box.status_lines()]}


@router.post("/api/panel/preview", status_code=201, dependencies=[PREVIEW_REFUSED])
async def open_preview(box: BoxDep, who: TeacherDep, body: OfferBody) -> dict[str, Any]:
    """The panel's live preview: answer its offer with the low layer (not counted as a student)."""
    session, answer = await box.open_preview(body.sdp)
    return {"id": session, "sdp": answer}


@router.delete("/api/panel/preview/{preview_id}")
async def close_preview(box: BoxDep, who: TeacherDep, preview_id: str) -> dict[str, Any]:
    """End the panel's preview."""
    if len(preview_id) > 32 or not await box.close_preview(preview_id):
        raise HTTPException(404, "no such preview")
    return {"closed": preview_id}


@router.post("/api/viewers/{viewer_id}/hand/dismiss")
async def dismiss_hand(box: BoxDep, who: TeacherDep, viewer_id: str) -> dict[str, Any]:
    """The teacher lowers a raised hand without letting the student speak."""
    box.dismiss_hand(viewer_id)
    return {"dismissed": viewer_id}


@router.post("/api/board/open")
async def open_on_board(box: BoxDep, who: TeacherDep, body: BoardItem) -> dict[str, Any]:
    """Show a courseware item of the cache on the board."""
    return {"opened": await box.open_on_board(body.course, body.path)}
