"""Courseware over HTTP: files for the board, panel and tablets (Range, ETag), the listing, chunks for peers."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from edge.courseware import CoursewareComponent
from edge.web.app import BoxDep, TeacherDep
from sync.chunks import COURSE_RE, SHA256_RE, valid_item_path
from sync.errors import NotInStore

router = APIRouter()

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def courseware(box: BoxDep) -> CoursewareComponent:
    """The courseware component, or 503 while it is not running."""
    component = box.component("courseware")
    if not isinstance(component, CoursewareComponent) or component.store is None:
        raise HTTPException(status_code=503, detail="the courseware cache is not running")
    return component


CoursewareDep = Annotated[CoursewareComponent, Depends(courseware)]


@router.get("/api/courseware")
async def listing(cw: CoursewareDep) -> dict[str, Any]:
    """Courses and items with their cache state, the WAN budget and the last pull."""
    return await cw.listing()


@router.post("/api/courseware/pull", status_code=202)
async def pull_now(cw: CoursewareDep, who: TeacherDep) -> dict[str, Any]:
    """Ask for a pull now."""
    cw.pull_now()
    return {"accepted": True}


@router.get("/api/chunks/{digest}")
async def chunk(digest: str, cw: CoursewareDep) -> Response:
    """A chunk by sha256 for a LAN peer (no trust needed: the peer checks the hash)."""
    if not SHA256_RE.match(digest):
        raise HTTPException(status_code=400, detail="a chunk is named by its lowercase hex sha256")
    data = await cw.chunk(digest)
    if data is None:
        raise HTTPException(status_code=404, detail="chunk not in this box's cache")
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": "max-age=31536000"})


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) from a single `Range: bytes=` header; None for the whole; 416 when unsatisfiable."""
    if not header:
        return None
    match = RANGE_RE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None  # unsupported forms (multiple ranges) get the whole file, as RFC 9110 allows
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start, end = int(first), size if last == "" else min(int(last) + 1, size)
    if start >= size or start >= end:
        raise HTTPException(
            status_code=416, detail="range not satisfiable", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, end


@router.api_route("/courseware/{course}/{path:path}", methods=["GET", "HEAD"])
async def serve(
    course: str,
    path: str,
    request: Request,
    cw: CoursewareDep,
    range_header: Annotated[str | None, Header(alias="range")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """An item straight from the store, with Range, ETag and its Content-Type."""
    if not COURSE_RE.match(course) or not valid_item_path(path):
        raise HTTPException(status_code=400, detail="not a courseware path")
    try:
        item = await cw.item(course, path)
    except NotInStore as err:
        raise HTTPException(status_code=404, detail=str(err)) from err
    headers = {"ETag": item.etag, "Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
    if if_none_match and item.etag in [tag.strip() for tag in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    span = _byte_range(range_header, item.size)
    start, end = span or (0, item.size)
    status = 206 if span else 200
    if span:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{item.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=item.content_type)
    return StreamingResponse(
        cw.read(item, start, end), status_code=status, headers=headers, media_type=item.content_type
    )
