"""The board: what the panel shows on it (`board.open`; the board's own door listens for it)."""

from __future__ import annotations

from typing import Any

from edge.events import EventBus
from edge.service import courseware
from edge.service.courseware import CoursewarePort
from sync.chunks import COURSE_RE, valid_item_path
from sync.errors import NotInStore


async def open_item(cw: CoursewarePort | None, bus: EventBus, course: str, path: str) -> dict[str, Any]:
    """Show a cached courseware item on the board: publishes `board.open`; NotInStore, StoreClosed while restarting."""
    if not COURSE_RE.match(course) or not valid_item_path(path):
        raise NotInStore("not a courseware item")
    running = courseware.running(cw)
    hold = await running.open(course, path)  # the item is there (and now counts as used)
    try:
        content_type = hold.item.content_type
    finally:
        await running.release(hold)
    shown = {"course": course, "path": path, "url": f"/courseware/{course}/{path}", "type": content_type}
    bus.publish("board.open", **shown)
    return shown
