"""The box's home page `/`: names the box and links the doors it has (the live lesson's join page for the teacher)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from edge.doors.web.deps import BoxDep, MaybeTeacherDep
from edge.doors.web.i18n import page_language, render_page

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, box: BoxDep, who: MaybeTeacherDep) -> HTMLResponse:
    """The home page; only the teacher sees the live lesson's join link and code."""
    lesson = box.current_lesson()
    page = await render_page(
        "home.html",
        page_language(request, box),
        name=box.config.box.name,
        lesson=lesson,
        join_url=f"/watch/{lesson.join_code}" if lesson and who else None,
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
