"""Routes of the translation mechanism: the scripts' catalogs, their loader and the language switch."""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, JSONResponse

from edge.doors.web.i18n import WEB, messages

LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
FONT_RE = re.compile(r"^[a-z0-9-]{1,64}\.woff2$")
FONT_CACHE = "public, max-age=604800"  # a week: the faces change only with a release

router = APIRouter()


@router.get("/i18n/{language}.json")
async def catalog(language: str) -> JSONResponse:
    """The catalog of `language` for the pages' scripts (`{}` for English or a language with none)."""
    if not LANGUAGE_RE.match(language):
        raise HTTPException(404, "not a language tag")
    found = await asyncio.to_thread(messages, language)  # a first load parses the catalog: not on the loop
    return JSONResponse(found, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/static/i18n.js")
async def loader() -> FileResponse:
    """The pages' translation module (`_`, `format`, `Intl` formatters in the page's language)."""
    return FileResponse(WEB / "static" / "i18n.js", media_type="text/javascript")


@router.get("/static/language.js")
async def switch() -> FileResponse:
    """The language switch's script (`templates/_language.html`)."""
    return FileResponse(WEB / "static" / "language.js", media_type="text/javascript")


@router.get("/static/fonts.css")
async def fonts() -> FileResponse:
    """The pages' web fonts (`edge.devtools.fonts`): one `@font-face` per script, downloaded only when shown."""
    return FileResponse(WEB / "static" / "fonts.css", media_type="text/css", headers={"Cache-Control": FONT_CACHE})


@router.get("/static/fonts/{name}")
async def font(name: str) -> FileResponse:
    """One subset face (woff2)."""
    path = WEB / "static" / "fonts" / name
    if not FONT_RE.match(name) or not path.is_file():
        raise HTTPException(404, "no such font")
    return FileResponse(path, media_type="font/woff2", headers={"Cache-Control": FONT_CACHE})
