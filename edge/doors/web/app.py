"""The FastAPI app behind the one HTTP port: health, metrics and the lesson API (doors add routes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import Field

from edge import __version__
from edge.board.ink import InkError
from edge.box import Box
from edge.core.errors import DOOR_ERRORS, door_meaning
from edge.core.events import SubscriptionGroup
from edge.doors.web.deps import Body, BoxDep, MaybeTeacherDep, TeacherDep, answers_of
from edge.doors.web.guards import BodyLimit, SameOriginGuard
from edge.doors.web.routes import (
    accounts,
    admin,
    board,
    cloud,
    courseware,
    devices,
    events,
    home,
    languages,
    microphone,
    panel,
    recordings,
    room,
    timetable,
    watch,
    whep,
)
from edge.doors.web.static_files import URL as STATIC_URL
from edge.doors.web.static_files import StaticFolder
from edge.health.metrics import make_registry, render

# The doors' routes, in the order they are matched.
ROUTERS: tuple[APIRouter, ...] = (
    whep.router,
    watch.router,
    courseware.router,
    board.router,  # before recordings: its /api/recordings/<id>/board.pdf is not a segment
    recordings.router,
    devices.router,
    microphone.router,
    home.router,
    languages.router,
    accounts.router,  # before admin: its /admin/login and /admin/setup are not admin pages
    admin.router,
    cloud.router,
    events.router,
    timetable.router,
    panel.router,
    room.router,
)


class StartLesson(Body):
    """Body of POST /api/lessons."""

    title: str = Field(default="", max_length=120)


# Errors the one handler answers: the map's, and ink the board's routes refuse (a ValueError: they say how).
ANSWERED: tuple[type[Exception], ...] = (*DOOR_ERRORS, InkError)


async def answer_error(request: Request, err: Exception) -> JSONResponse:
    """`{"detail": message}` (and the error's extra fields) with its status, Retry-After and the route's headers."""
    declared = answers_of(request)
    meaning = door_meaning(err, declared.overrides)
    if meaning is None:
        raise err  # not an error a door answers: the server's 500
    headers = dict(declared.headers)
    if meaning.retry_after is not None:
        headers["Retry-After"] = str(meaning.retry_after)
    return JSONResponse({"detail": meaning.message, **meaning.extra}, status_code=meaning.status, headers=headers)


def add_error_handler(app: FastAPI) -> None:
    """Answer every error of ANSWERED through the map, the one way (`answer_error`)."""
    for error in ANSWERED:
        app.add_exception_handler(error, answer_error)


def end_event_streams(app: FastAPI) -> None:
    """End the app's open event streams now (the web door is stopping: they would hold uvicorn's shutdown up)."""
    app.state.event_streams.end_all()


def create_app(box: Box) -> FastAPI:
    """Build the app for `box`; other doors add their routers to it."""
    app = FastAPI(title="classbox", version=__version__, docs_url=None, redoc_url=None)
    app.state.box = box
    app.state.event_streams = SubscriptionGroup()
    app.add_middleware(SameOriginGuard, public_urls=lambda: [box.config.web.public_url])
    app.add_middleware(BodyLimit)  # outermost: a body too large is refused before anything else
    registry = make_registry(box)

    @app.get("/healthz")
    async def healthz(box: BoxDep, who: MaybeTeacherDep) -> dict[str, Any]:
        return (box.health() if who else box.public_health()).to_json()

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(render(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/lessons/current")
    async def current_lesson(box: BoxDep, who: MaybeTeacherDep) -> dict[str, Any]:
        lesson = box.current_lesson()
        if lesson is None:
            return {"lesson": None}
        return {"lesson": lesson.to_json() if who else lesson.public_json()}

    @app.post("/api/lessons", status_code=201)
    async def start_lesson(box: BoxDep, who: TeacherDep, body: StartLesson | None = None) -> dict[str, Any]:
        lesson = await box.start_lesson(body.title if body else None, who)
        return {"id": lesson.id, "join_code": lesson.join_code, "lesson": lesson.to_json()}

    @app.post("/api/lessons/current/stop")
    async def stop_lesson(box: BoxDep, who: TeacherDep) -> dict[str, Any]:
        lesson = await box.stop_lesson(who)
        return {"lesson": lesson.to_json()}

    add_error_handler(app)
    for error, handler in admin.EXCEPTION_HANDLERS.items():
        app.add_exception_handler(error, handler)
    # The pages' scripts, styles and fonts first: a file is served without walking every route before it.
    app.mount(STATIC_URL, StaticFolder(), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app
