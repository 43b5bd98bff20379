"""The student page `/watch/{join_code}`: a WHEP player that needs nothing but the link.

Every string a person reads on the box's pages comes from a catalog (`locales/<page>.<lang>.json`,
English as the fallback); right-to-left languages get `dir="rtl"` and the CSS uses logical
properties only. `strings()` and `render()` here serve every page.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from edge.errors import ViewerError
from edge.service import Box
from edge.web.deps import BoxDep, TeacherDep

WEB = Path(__file__).resolve().parent
RTL_LANGUAGES = {"ar", "fa", "he", "ur", "ps", "dv", "yi"}
CODE_RE = re.compile(r"^[A-Za-z0-9]{4,16}$")
RETRY_MS = 5000

router = APIRouter()
_templates = Environment(loader=FileSystemLoader(WEB / "templates"), autoescape=select_autoescape(["html"]))


@cache
def strings(language: str, catalog: str = "watch") -> dict[str, str]:
    """A page's strings (`locales/<catalog>.<lang>.json`) in `language`; missing ones fall back to English."""
    english: dict[str, str] = json.loads((WEB / "locales" / f"{catalog}.en.json").read_text("utf-8"))
    path = WEB / "locales" / f"{catalog}.{language.split('-')[0]}.json"
    if language != "en" and path.exists():
        return {**english, **json.loads(path.read_text("utf-8"))}
    return english


def direction(language: str) -> str:
    """`rtl` for right-to-left languages, else `ltr` (the pages' `dir` attribute)."""
    return "rtl" if language.split("-")[0] in RTL_LANGUAGES else "ltr"


def render(template: str, language: str, **values: Any) -> str:
    """A page from `templates/` with the `lang` and `dir` of `language`."""
    return _templates.get_template(template).render(lang=language, direction=direction(language), **values)


def page(box: Box, join_code: str) -> str:
    """The watch page for `join_code` in the box's language."""
    language = box.config.box.language
    catalog = strings(language)
    lesson = box.lesson_by_code(join_code)
    config = {"join_code": join_code.lower(), "strings": catalog, "retry_ms": RETRY_MS}
    # </script> cannot appear inside the JSON island: escape the slash.
    config_json = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    return render(
        "watch.html",
        language,
        strings=catalog,
        title=lesson.title if lesson else "",
        config_json=config_json,
    )


@router.get("/watch/{join_code}", response_class=HTMLResponse)
async def watch_page(box: BoxDep, join_code: str) -> HTMLResponse:
    """The student page (any state: it shows 'not started' or 'ended' itself)."""
    if not CODE_RE.match(join_code):
        raise HTTPException(404, "not a join code")
    return HTMLResponse(page(box, join_code), headers={"Cache-Control": "no-store"})


@router.get("/static/watch.js")
async def watch_script() -> FileResponse:
    """The student page's player."""
    return FileResponse(WEB / "static" / "watch.js", media_type="text/javascript")


@router.get("/static/watch.css")
async def watch_style() -> FileResponse:
    """The student page's style."""
    return FileResponse(WEB / "static" / "watch.css", media_type="text/css")


@router.get("/api/viewers")
async def viewers(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
    """The students watching, with their layer, bitrate, loss and raised hands (for the panel)."""
    return {"viewers": box.viewers()}


@router.post("/api/viewers/{viewer_id}/hand/acknowledge")
async def acknowledge_hand(box: BoxDep, who: TeacherDep, viewer_id: str) -> dict[str, Any]:
    """The teacher answers a raised hand; the student's page shows it."""
    try:
        box.acknowledge_hand(viewer_id)
    except ViewerError as err:
        raise HTTPException(404, str(err)) from err
    return {"acknowledged": viewer_id}
