"""WHEP (WebRTC-HTTP Egress Protocol) for students: POST an offer, get an answer and a session URL.

`POST /whep/{join_code}` (application/sdp) -> 201 with the answer, `Location` of the session and
the ICE servers in `Link` headers; `DELETE` on that location ends it. CORS is open so any WHEP
player can watch. Errors: 404 wrong or ended code, 400 bad offer, 413 too large, 415 wrong type,
503 full or the box cannot serve now; every one says why (the error map's answers, with the CORS headers).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from edge.box import Box
from edge.core.errors import Door, ViewerError
from edge.doors.web.deps import BoxDep, answers
from edge.stream.ice import ice_links
from edge.stream.viewers_service import NOT_STREAMING

SDP = "application/sdp"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, ETag, Accept-Patch, Retry-After",
    "Access-Control-Max-Age": "600",
}

router = APIRouter(dependencies=[answers(headers=CORS)])  # errors through the map carry CORS too


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers={**CORS, **headers})


def _with_links(response: Response, box: Box, who: str) -> Response:
    for link in ice_links(box.config.stream.ice_servers, who):
        response.headers.append("Link", link)
    return response


@router.options("/whep/{join_code}")
async def whep_options(box: BoxDep, join_code: str) -> Response:
    """CORS preflight; for the live lesson's code it also tells the player the ICE servers."""
    response = Response(status_code=204, headers={**CORS, "Accept-Post": SDP})
    lesson = box.current_lesson()
    if lesson is None or lesson.join_code != join_code.lower():
        return response  # no ICE servers (and no TURN credential) for a code that is not live
    return _with_links(response, box, lesson.id)


@router.post("/whep/{join_code}", dependencies=[answers({ViewerError: Door(400)})])
async def whep_join(
    request: Request,
    box: BoxDep,
    join_code: str,
    content_type: Annotated[str, Header()] = "",
    data_saver: Annotated[bool, Query()] = False,
    name: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """A student's player offers; the box answers and starts sending the lesson."""
    if not box.streaming():
        return _error(503, NOT_STREAMING)
    if content_type.split(";")[0].strip().lower() != SDP:
        return _error(415, f"the offer must be sent as {SDP}")
    try:
        body = await request.body()
    except HTTPException as err:  # the body limit, counted while reading
        return _error(err.status_code, str(err.detail))
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        return _error(400, "the offer is not UTF-8 text")
    viewer_id, answer = await box.open_viewer(join_code, offer, name=name, data_saver=data_saver)
    location = f"/whep/{join_code.lower()}/{viewer_id}"
    headers = {**CORS, "Location": location, "ETag": f'"{viewer_id}"'}
    return _with_links(Response(answer, status_code=201, media_type=SDP, headers=headers), box, viewer_id)


@router.options("/whep/{join_code}/{viewer_id}")
async def whep_session_options(join_code: str, viewer_id: str) -> Response:
    """CORS preflight for DELETE/PATCH on a session."""
    return Response(status_code=204, headers=CORS)


@router.delete("/whep/{join_code}/{viewer_id}")
async def whep_leave(box: BoxDep, join_code: str, viewer_id: str) -> Response:
    """The student left: end the session and free what it held."""
    if not box.streaming():
        return _error(503, NOT_STREAMING)
    if not await box.close_viewer(viewer_id, "left"):
        return _error(404, "no such viewing session (it may have ended already)")
    return Response(status_code=200, headers=CORS)


@router.patch("/whep/{join_code}/{viewer_id}")
async def whep_patch(join_code: str, viewer_id: str) -> Response:
    """Trickle ICE and ICE restarts are not offered: the answer carries every candidate."""
    return _error(405, "trickle ICE is not supported; the answer already has all candidates", Allow="DELETE")


@router.get("/api/watch/{join_code}")
async def watch_status(box: BoxDep, join_code: str) -> dict[str, Any]:
    """What the student page shows before and after playing: the lesson's title and state."""
    lesson = box.lesson_by_code(join_code) if len(join_code) <= 32 else None
    if lesson is None:
        return {"state": "unknown", "title": ""}
    return {"state": "live" if lesson.state == "live" else "ended", "title": lesson.title}
