"""Routes of the translation mechanism: the scripts' catalogs (their loader and the switch are static files)."""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse

from edge.doors.web.i18n import messages

LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")

router = APIRouter()


@router.get("/i18n/{language}.json")
async def catalog(language: str) -> JSONResponse:
    """The catalog of `language` for the pages' scripts (`{}` for English or a language with none)."""
    if not LANGUAGE_RE.match(language):
        raise HTTPException(404, "not a language tag")
    found = await asyncio.to_thread(messages, language)  # a first load parses the catalog: not on the loop
    return JSONResponse(found, headers={"Cache-Control": "public, max-age=3600"})
