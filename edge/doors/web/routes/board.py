"""The board page `/board` (kiosk on the interactive display) and its API: ink, page turns, rendered PDF pages.

The page shows the courseware item the teacher opened from the panel, under an ink layer driven
by pointer events; its strokes go to `POST /api/board/ink` in small batches and through the same
pipeline as the pen's (`box.board`). It needs the teacher's credential, like the panel. PDF pages
are rendered on the box (`/board/render/...`), so neither the board nor a student's phone needs a
PDF viewer.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field

from edge.board.ink import InkError
from edge.core.errors import Door
from edge.doors.web.deps import Body, BoxDep, MaybeTeacherDep, TeacherDep, answers
from edge.doors.web.i18n import page_language, render_page
from edge.doors.web.routes.recordings import RECORDING_ID_RE

router = APIRouter()
INK_REFUSED = answers({InkError: Door(400, "bad_ink")})  # InkError is a ValueError: the ink routes answer it


class InkBatch(Body):
    """Body of POST /api/board/ink: the page's operations since its last batch (checked by the board)."""

    ops: list[dict[str, Any]] = Field(min_length=1, max_length=256)


class PageTurn(Body):
    """Body of POST /api/board/page: which page of the item on show (from 0)."""

    index: Annotated[int, Field(ge=0, le=100_000)]


@router.get("/board", response_class=HTMLResponse)
async def board_page(request: Request, box: BoxDep, who: MaybeTeacherDep) -> HTMLResponse:
    """The board page, or the PIN screen for a browser that has not shown the teacher PIN."""
    language = page_language(request, box)
    page = await render_page("board.html", language, name=box.config.box.name, teacher=who is not None)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/api/board")
async def board_state(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """The board now: the page on show and its strokes, current to `seq`."""
    return box.board_state()


@router.post("/api/board/ink", dependencies=[INK_REFUSED])
async def board_ink(box: BoxDep, who: TeacherDep, body: InkBatch) -> dict[str, Any]:
    """Apply a batch of ink operations (begin, points, end, undo, clear), all or none."""
    applied = box.board_ink(body.ops)
    return {"applied": applied, "seq": box.board_state()["seq"]}


@router.post("/api/board/page", dependencies=[INK_REFUSED])
async def board_turn(box: BoxDep, who: TeacherDep, body: PageTurn) -> dict[str, Any]:
    """Show another page of the item on the board."""
    return {"page": box.turn_board_page(body.index)}


@router.get("/api/recordings/{recording_id}/board.pdf")
async def board_pdf(box: BoxDep, who: TeacherDep, recording_id: str) -> Response:
    """A finished recording's board as PDF pages: each page shown, its ink drawn over it."""
    if not RECORDING_ID_RE.match(recording_id):
        raise HTTPException(400, "not a recording id")
    data = await box.board_pdf(recording_id)
    name = f"lesson-{recording_id[:8]}-board.pdf"
    return Response(
        data, media_type="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/board/render/{course}/{path:path}")
async def board_render(
    box: BoxDep, course: str, path: str, page: Annotated[int, Query(ge=0, le=100_000)] = 0
) -> Response:
    """Page `page` of a cached PDF as a PNG rendered on the box (open like the courseware it comes from)."""
    png = await box.board_page_png(course, path, page)
    return Response(png, media_type="image/png", headers={"Cache-Control": "public, max-age=3600"})
