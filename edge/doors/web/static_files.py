"""The pages' static files: one mount, `/static/<path>` serves `static/<path>`, only the types allowed below.

Scripts and styles are revalidated on every load (`no-cache` with the ETag: a box's update shows at once);
the fonts change only with a release, so they are kept for a week. Nothing outside the folder, no
directory listing, no hidden files; any other path or type is a 404.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from edge.doors.web.i18n import WEB

FOLDER = WEB / "static"
URL = "/static"
FONT_CACHE = "public, max-age=604800"  # a week: the faces change only with a release
REVALIDATE = "no-cache"
# What the mount serves, by the file name's ending: (Content-Type, Cache-Control).
TYPES: dict[str, tuple[str, str]] = {
    ".js": ("text/javascript; charset=utf-8", REVALIDATE),
    ".css": ("text/css; charset=utf-8", REVALIDATE),
    ".woff2": ("font/woff2", FONT_CACHE),
}
KEPT_LONGER = {PurePosixPath("fonts.css"): FONT_CACHE}  # the faces' declarations travel with the faces


def allowed(path: str) -> bool:
    """Whether `path` (relative to the folder, `/`-separated) is of a type the mount serves: no hidden part."""
    parts = PurePosixPath(path).parts
    return bool(parts) and not any(part.startswith(".") for part in parts) and PurePosixPath(path).suffix in TYPES


class StaticFolder(StaticFiles):
    """`StaticFiles` of the pages' folder with the allow-list, the Content-Types and the caching above."""

    def __init__(self, folder: Path = FOLDER) -> None:
        super().__init__(directory=folder, html=False, follow_symlink=False)
        self.folder = folder.resolve()

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file at `path`, or a 404 for a type not allowed (before the disk is looked at)."""
        if not allowed(path.replace(os.sep, "/")):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        """The file with its Content-Type, Cache-Control and nosniff; a 304 when the browser's copy is current."""
        path = PurePosixPath(os.fspath(full_path)).relative_to(self.folder)
        media_type, cache = TYPES[path.suffix]
        headers = {"Cache-Control": KEPT_LONGER.get(path, cache), "X-Content-Type-Options": "nosniff"}
        response = FileResponse(
            full_path, status_code=status_code, headers=headers, media_type=media_type, stat_result=stat_result
        )
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response
