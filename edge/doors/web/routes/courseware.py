"""Courseware over HTTP: files for the board, panel and tablets (Range, ETag), the listing, chunks for peers.

Every route answers 503 with `Retry-After` while the courseware component is (re)starting (StoreClosed, through
the error map). Course
files are content from outside the box served on the box's own origin: pages that can run scripts
get a sandbox with an opaque origin and no network access of their own, so a course page cannot use
the panel's teacher rights against the API.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from edge.box import Box
from edge.doors.web.deps import BoxDep, TeacherDep
from sync.chunks import COURSE_RE, SHA256_RE, valid_item_path
from sync.store import Hold

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Types a browser runs scripts in. They get an opaque origin (no allow-same-origin) and no fetch/XHR/
# WebSocket/beacon or form posts, so nothing reaches the API with the panel's rights; images and
# media load as usual. Other types (images, PDF, video) keep the browser's viewers: Chromium shows
# no PDF in a sandboxed document.
ACTIVE_TYPES = ("text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml")
SANDBOX_CSP = (
    "sandbox allow-scripts allow-popups allow-modals allow-downloads; "
    "connect-src 'none'; form-action 'none'; base-uri 'none'"
)


router = APIRouter()


def courseware_running(box: BoxDep) -> Box:
    """The service layer, once its courseware cache is open; StoreClosed (503) while it (re)starts."""
    box.courseware_open()
    return box


CoursewareDep = Annotated[Box, Depends(courseware_running)]


@router.get("/api/courseware")
async def listing(box: CoursewareDep) -> dict[str, Any]:
    """Courses and items with their cache state, the WAN budget and the last pull."""
    return await box.courseware_listing()


@router.post("/api/courseware/pull", status_code=202)
async def pull_now(box: CoursewareDep, who: TeacherDep) -> dict[str, Any]:
    """Ask for a pull now."""
    box.pull_courseware()
    return {"accepted": True}


@router.get("/api/chunks/{digest}")
async def chunk(digest: str, box: CoursewareDep) -> Response:
    """A chunk by sha256 for a LAN peer (no trust needed: the peer checks the hash)."""
    if not SHA256_RE.match(digest):
        raise HTTPException(status_code=400, detail="a chunk is named by its lowercase hex sha256")
    data = await box.courseware_chunk(digest)
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


def content_headers(etag: str, content_type: str) -> dict[str, str]:
    """Headers every answer for a course file carries: caching, ranges, no sniffing, the sandbox for pages."""
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if content_type.split(";")[0].strip().lower() in ACTIVE_TYPES:
        headers["Content-Security-Policy"] = SANDBOX_CSP
    return headers


class HeldResponse(StreamingResponse):
    """A streamed course file that lets go of its hold on the item when the response ends, however it ends."""

    def __init__(self, box: Box, hold: Hold, start: int, end: int, **kwargs: Any) -> None:
        super().__init__(box.read_courseware(hold, start, end), **kwargs)
        self._box, self._hold = box, hold

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._box.release_courseware(self._hold)


def _answer(request: Request, box: Box, hold: Hold, range_header: str | None, etags: str | None) -> Response:
    item = hold.item
    headers = content_headers(item.etag, item.content_type)
    if etags and item.etag in [tag.strip() for tag in etags.split(",")]:
        return Response(status_code=304, headers=headers)
    span = _byte_range(range_header, item.size)
    start, end = span or (0, item.size)
    status = 206 if span else 200
    if span:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{item.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=item.content_type)
    return HeldResponse(box, hold, start, end, status_code=status, headers=headers, media_type=item.content_type)


# GET and HEAD as two routes: one route with both methods gives the OpenAPI schema one operation id twice.
@router.get("/courseware/{course}/{path:path}")
@router.head("/courseware/{course}/{path:path}")
async def serve(
    course: str,
    path: str,
    request: Request,
    box: CoursewareDep,
    range_header: Annotated[str | None, Header(alias="range")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """An item straight from the store, with Range, ETag and its Content-Type; held until its body is sent."""
    if not COURSE_RE.match(course) or not valid_item_path(path):
        raise HTTPException(status_code=400, detail="not a courseware path")
    hold = await box.courseware_item(course, path)
    try:
        response = _answer(request, box, hold, range_header, if_none_match)
    except BaseException:
        await box.release_courseware(hold)
        raise
    if not isinstance(response, HeldResponse):
        await box.release_courseware(hold)
    return response
