"""The FastAPI app behind the one HTTP port: health, metrics and the lesson API (doors add routes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from edge import __version__
from edge.box import Box
from edge.errors import LessonAlreadyLive, NoLiveLesson, NotAllowed
from edge.metrics import make_registry, render
from edge.web.guards import BodyLimit, SameOriginGuard


class StartLesson(BaseModel):
    """Body of POST /api/lessons."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(default="", max_length=120)


def get_box(request: Request) -> Box:
    """The service layer this app serves."""
    box: Box = request.app.state.box
    return box


BoxDep = Annotated[Box, Depends(get_box)]


async def teacher(request: Request, box: BoxDep, x_panel_pin: Annotated[str | None, Header()] = None) -> str:
    """The acting teacher: a panel address, or anyone showing the teacher PIN."""
    address = request.client.host if request.client else None
    try:
        return await box.authorize_teacher(address, x_panel_pin)
    except NotAllowed as err:
        raise HTTPException(status_code=401 if x_panel_pin is None else 403, detail=str(err)) from err


TeacherDep = Annotated[str, Depends(teacher)]


async def teacher_or_anyone(
    request: Request, box: BoxDep, x_panel_pin: Annotated[str | None, Header()] = None
) -> str | None:
    """The acting teacher, or None: a missing or wrong PIN reads as anyone (a wrong one still counts)."""
    address = request.client.host if request.client else None
    try:
        return await box.authorize_teacher(address, x_panel_pin)
    except NotAllowed:
        return None


MaybeTeacherDep = Annotated[str | None, Depends(teacher_or_anyone)]


def create_app(box: Box) -> FastAPI:
    """Build the app for `box`; other doors add their routers to it."""
    app = FastAPI(title="classbox", version=__version__, docs_url=None, redoc_url=None)
    app.state.box = box
    app.add_middleware(SameOriginGuard, public_urls=lambda: [box.config.web.public_url])
    app.add_middleware(BodyLimit)  # outermost: a body too large is refused before anything else
    registry = make_registry(box)

    @app.exception_handler(LessonAlreadyLive)
    @app.exception_handler(NoLiveLesson)
    async def _conflict(request: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=409)

    @app.get("/healthz")
    async def healthz(box: BoxDep, who: MaybeTeacherDep) -> dict[str, Any]:
        return box.health() if who else box.public_health()

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

    from edge.stream.whep import router as whep_router

    app.include_router(whep_router)
    from edge.web.watch import router as watch_router

    app.include_router(watch_router)
    from edge.web.courseware import router as courseware_router

    app.include_router(courseware_router)
    from edge.web.recordings import router as recordings_router

    app.include_router(recordings_router)
    from edge.web.devices import router as devices_router

    app.include_router(devices_router)
    from edge.web.home import router as home_router

    app.include_router(home_router)
    from edge.web.languages import router as languages_router

    app.include_router(languages_router)
    return app
