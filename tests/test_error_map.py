"""The one error map: every error of ours says what it means at a door, and the web doors answer through it alone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

import edge.box  # noqa: F401  (imports every concern, so every ClassboxError subclass is defined)
from edge.core import errors
from edge.core.errors import (
    DOOR_ERRORS,
    FOREIGN,
    ClassboxError,
    Door,
    DoorError,
    LessonFull,
    NotAllowed,
    RoomDeviceError,
    TooManyAttempts,
    door_meaning,
)
from edge.doors.web.app import add_error_handler
from edge.doors.web.deps import answers
from sync.errors import DiskFloorReached, StoreClosed

ROUTES = Path(__file__).resolve().parent.parent / "edge" / "doors" / "web" / "routes"
CODE = r"^[a-z][a-z0-9_]*$"


def subclasses(cls: type[ClassboxError]) -> list[type[ClassboxError]]:
    """Every subclass of `cls`, however deep."""
    found = cls.__subclasses__()
    return [c for sub in found for c in (sub, *subclasses(sub))]


@pytest.mark.parametrize("cls", subclasses(ClassboxError), ids=lambda cls: cls.__name__)
def test_every_error_of_ours_says_its_status_and_message_id(cls: type[ClassboxError]) -> None:
    if cls.__module__ == errors.__name__:  # declared in the hierarchy itself: its own, not its parent's
        assert "status" in vars(cls), f"{cls.__name__} declares no HTTP status"
        assert "code" in vars(cls), f"{cls.__name__} declares no message id"
    assert 400 <= cls.status < 600
    assert cls.code != ClassboxError.code
    assert re.match(CODE, cls.code), cls.code


def test_message_ids_are_distinct() -> None:
    ours = [cls.code for cls in subclasses(ClassboxError) if cls.__module__ == errors.__name__]
    foreign = [door.code for door in FOREIGN.values()]
    assert len(set(ours + foreign)) == len(ours + foreign)


def test_foreign_errors_answer_as_their_nearest_listed_class() -> None:
    meaning = door_meaning(DiskFloorReached("the disk is full"))
    assert meaning is not None
    assert (meaning.status, meaning.code, meaning.message) == (507, "courseware_storage_full", "the disk is full")
    assert door_meaning(KeyError("x")) is None


def test_a_route_override_gives_way_to_a_nearer_class_with_a_meaning_of_its_own() -> None:
    overrides = {NotAllowed: Door(409)}
    assert door_meaning(NotAllowed("no"), overrides) == DoorError(409, "not_allowed", "no")
    assert door_meaning(TooManyAttempts("wait"), overrides) == DoorError(429, "too_many_attempts", "wait")


def app_raising() -> FastAPI:
    """A real app with the doors' handler and routes that raise what the service layer raises."""
    app = FastAPI()
    add_error_handler(app)
    router = APIRouter(dependencies=[answers(headers={"Access-Control-Allow-Origin": "*"})])

    @app.get("/store")
    async def store() -> None:
        raise StoreClosed("the courseware cache is restarting")

    @app.get("/room")
    async def room() -> None:
        raise RoomDeviceError("the camera did not answer", "timed out")

    @app.get("/restart", dependencies=[answers({NotAllowed: Door(409)})])
    async def restart() -> None:
        raise NotAllowed("this box cannot restart itself")

    @router.get("/whep")
    async def whep() -> None:
        raise LessonFull("this lesson already has 2 viewers")

    app.include_router(router)
    return app


async def get(path: str) -> httpx.Response:
    """GET `path` from the app."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_raising()), base_url="http://box") as client:
        return await client.get(path)


async def test_the_handler_answers_status_body_and_retry_after() -> None:
    answer = await get("/store")
    assert answer.status_code == 503
    assert answer.content == b'{"detail":"the courseware cache is restarting"}'
    assert answer.headers["retry-after"] == "2"


async def test_an_error_s_extra_fields_follow_its_message() -> None:
    answer = await get("/room")
    assert answer.status_code == 503
    assert answer.content == b'{"detail":"the camera did not answer","reason":"timed out"}'
    assert "retry-after" not in answer.headers


async def test_a_route_answers_a_class_otherwise_and_a_router_adds_its_headers() -> None:
    assert (await get("/restart")).status_code == 409
    answer = await get("/whep")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "30"
    assert answer.headers["access-control-allow-origin"] == "*"


def mapped_names() -> set[str]:
    """Names of the classes the map answers (ours and the foreign ones)."""
    return {cls.__name__ for cls in (*subclasses(ClassboxError), *DOOR_ERRORS)}


def caught(handler: ast.ExceptHandler) -> set[str]:
    """The class names an `except` clause catches."""
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return {k.id if isinstance(k, ast.Name) else k.attr for k in kinds if isinstance(k, ast.Name | ast.Attribute)}


def only_translates(handler: ast.ExceptHandler) -> bool:
    """True when the clause's whole body raises or returns an answer carrying the caught error's words."""
    if handler.name is None or len(handler.body) != 1 or not isinstance(handler.body[0], ast.Raise | ast.Return):
        return False
    return f"str({handler.name})" in ast.unparse(handler.body[0])


def test_no_route_translates_a_mapped_error_itself() -> None:
    mapped, found = mapped_names(), []
    for path in sorted(ROUTES.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and caught(node) & mapped and only_translates(node):
                found.append(f"{path.name}:{node.lineno}")
    assert found == [], "these except clauses only put a mapped error's words into an answer: let the map do it"


def test_the_translation_check_sees_one() -> None:
    source = "try:\n    f()\nexcept NotAllowed as err:\n    raise HTTPException(409, str(err)) from err\n"
    handler = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ExceptHandler))
    assert caught(handler) & mapped_names()
    assert only_translates(handler)
