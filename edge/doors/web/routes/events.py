"""`GET /api/events`: the event bus as Server-Sent Events, filtered by who listens.

Each stream opens with `event: state` (a snapshot of what that listener may know), then one
`event: <topic>` + `data: <json>` per bus event the listener may see. Anyone gets `lesson.started`
and `lesson.ended` reduced to state and title; the teacher (a panel address, or a browser with a
teacher session) also gets the lesson's details, viewers, hands, the microphone's level, alarms,
devices, uploads and recordings, and `event: status` whenever the status strip changes. A stream
has the bus's bounded queue: a browser that reads too slowly loses the oldest events and is sent a
fresh `state` instead. A comment line every KEEPALIVE_S keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from edge.box import Box
from edge.core.events import ENDED, Event, Subscription, SubscriptionGroup
from edge.doors.web.deps import BoxDep, EventStreamsDep, MaybeTeacherDep
from edge.doors.web.i18n import page_language, translations
from edge.doors.web.routes.accounts import is_admin

KEEPALIVE_S = 15.0
TICK_S = 1.0  # how often a quiet teacher stream looks at the status strip
QUEUE_EVENTS = 256
RETRY_MS = 3000
PUBLIC_TOPICS = ("lesson.started", "lesson.ended")
TEACHER_TOPICS = (
    "lesson.", "viewer.", "hand.", "audio.level", "microphone.", "alarm.", "device.", "component.",
    "upload.", "recording.", "storage.", "courseware.", "board.", "clock.", "signal.",
    "timetable.", "uplink.",
)  # fmt: skip

ADMIN_TOPICS = (*TEACHER_TOPICS, "metrics.", "settings.")  # the dashboard's graphs and the settings pages

# After these the teacher's page gets a fresh `state` too (the join link, today's recordings).
RESYNC_TOPICS = ("lesson.", "recording.finished", "recording.uploaded", "upload.done", "upload.failed")

router = APIRouter()


@dataclass(frozen=True)
class Listener:
    """Who reads a stream: the teacher or anyone, in which language, from which host."""

    teacher: bool
    language: str
    host: str | None = None
    admin: bool = False  # a signed-in admin: the teacher's events and the dashboard's

    @property
    def gettext(self) -> Callable[[str], str]:
        """The translation of a service-layer message into the listener's language."""
        return translations(self.language).gettext


def frame(topic: str, data: Any) -> bytes:
    """One Server-Sent Event."""
    return f"event: {topic}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


def visible(event: Event, listener: Listener) -> dict[str, Any] | None:
    """What `listener` may see of `event`, or None when it is not theirs to see."""
    if not listener.teacher:
        if event.topic not in PUBLIC_TOPICS:
            return None
        lesson = event.data.get("lesson") or {}
        return {"state": "live" if event.topic == "lesson.started" else "ended", "title": lesson.get("title", "")}
    if not event.topic.startswith(ADMIN_TOPICS if listener.admin else TEACHER_TOPICS):
        return None
    data = dict(event.data)
    if event.topic == "alarm.raised":
        data["text"] = listener.gettext(str(data.get("message", "")))
    return data


def status(box: Box, listener: Listener) -> list[dict[str, Any]]:
    """The status strip in the listener's language."""
    return [line.to_json(listener.gettext) for line in box.status_lines()]


def snapshot(box: Box, listener: Listener) -> dict[str, Any]:
    """Everything the listener's page shows, as it is now (the first event of a stream, and after drops)."""
    lesson = box.current_lesson()
    if not listener.teacher:
        return {"teacher": False, "lesson": lesson.public_json() if lesson else None}
    return {
        "teacher": True,
        "lesson": lesson.to_json() if lesson else None,
        "join_url": box.join_url(lesson.join_code, listener.host) if lesson else None,
        "viewers": [viewer.to_json() for viewer in box.viewers()],
        "status": status(box, listener),
        "alarms": {name: listener.gettext(message) for name, message in box.alarms().items()},
        "microphone": box.microphone_state(),
        "recordings": box.todays_recordings(),
    }


async def stream(box: Box, streams: SubscriptionGroup, listener: Listener) -> AsyncIterator[bytes]:
    """The listener's events until the client goes away or the web door stops."""
    loop = asyncio.get_running_loop()
    with streams.subscribe(box, maxsize=QUEUE_EVENTS) as events:
        yield f"retry: {RETRY_MS}\n\n".encode() + frame("state", snapshot(box, listener))
        lines, dropped = status(box, listener) if listener.teacher else [], 0
        quiet_since = checked = loop.time()
        while True:
            event = await _next(events, min(TICK_S, KEEPALIVE_S))
            if event is not None and event.topic == ENDED:
                return
            out = b""
            data = visible(event, listener) if event is not None else None
            if event is not None and data is not None:
                out += frame(event.topic, data)
            resync = listener.teacher and event is not None and event.topic.startswith(RESYNC_TOPICS)
            if events.dropped > dropped or resync:  # a slow reader lost events: give it the whole picture again
                dropped = events.dropped
                out += frame("state", snapshot(box, listener))
            news = event is not None and event.topic != "audio.level"
            if listener.teacher and (news or loop.time() - checked >= TICK_S):
                checked, now = loop.time(), status(box, listener)
                if now != lines:
                    lines = now
                    out += frame("status", {"lines": now})
            if not out and loop.time() - quiet_since >= KEEPALIVE_S:
                out = b": keep-alive\n\n"
            if out:
                quiet_since = loop.time()
                yield out


async def _next(events: Subscription, within: float) -> Event | None:
    try:
        async with asyncio.timeout(within):
            return await events.get()
    except TimeoutError:
        return None


@router.get("/api/events", response_class=StreamingResponse)
async def events(request: Request, box: BoxDep, streams: EventStreamsDep, who: MaybeTeacherDep) -> StreamingResponse:
    """Live updates for the box's pages (Server-Sent Events), filtered by the listener's credential."""
    language = page_language(request, box)  # the listening page's: alarms and the status strip in its words
    admin = is_admin(request, box)
    host = request.headers.get("host")
    listener = Listener(teacher=who is not None or admin, language=language, host=host, admin=admin)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    body = stream(box, streams, listener)
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)
