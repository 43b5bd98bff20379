"""The student page `/watch/{join_code}`: a WHEP player that needs nothing but the link.

It speaks the student's language (`edge.doors.web.i18n.page_language`: the switch, then the browser's
`Accept-Language`, then the box default); its script reads the same catalog (`/static/i18n.js`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from edge.box import Box
from edge.doors.web.deps import BoxDep, TeacherDep
from edge.doors.web.i18n import page_language, render_page

CODE_RE = re.compile(r"^[A-Za-z0-9]{4,16}$")
RETRY_MS = 5000

router = APIRouter()


async def page(box: Box, join_code: str, language: str) -> str:
    """The watch page for `join_code` in `language`."""
    lesson = box.lesson_by_code(join_code)
    config = {"join_code": join_code.lower(), "retry_ms": RETRY_MS}
    # </script> cannot appear inside the JSON island: escape the slash.
    config_json = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    return await render_page("watch.html", language, title=lesson.title if lesson else "", config_json=config_json)


@router.get("/watch/{join_code}", response_class=HTMLResponse)
async def watch_page(request: Request, box: BoxDep, join_code: str) -> HTMLResponse:
    """The student page (any state: it shows 'not started' or 'ended' itself)."""
    if not CODE_RE.match(join_code):
        raise HTTPException(404, "not a join code")
    language = page_language(request, box, student=True)
    return HTMLResponse(await page(box, join_code, language), headers={"Cache-Control": "no-store"})


@router.get("/api/viewers")
async def viewers(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """The students watching, with their layer, bitrate, loss and raised hands (for the panel)."""
    return {"viewers": [viewer.to_json() for viewer in box.viewers()]}


@router.post("/api/viewers/{viewer_id}/hand/acknowledge")
async def acknowledge_hand(box: BoxDep, who: TeacherDep, viewer_id: str) -> dict[str, Any]:
    """The teacher answers a raised hand; the student's page shows it."""
    box.acknowledge_hand(viewer_id)
    return {"acknowledged": viewer_id}
