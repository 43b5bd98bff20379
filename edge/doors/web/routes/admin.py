"""The IT staff's admin door: `/admin` pages and the JSON API under `/api/admin` they use (and nothing else).

The pages are templates with one ES module (`static/admin.js`) that draws the dashboard's graphs
as inline SVG and generates every settings form from the config's JSON schema: a new setting
needs no page code. Every change goes through `AdminChangeDep` (the admin session and its CSRF token).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from edge.box import Box
from edge.core.errors import ConfigError, Door, NotAllowed
from edge.doors.web.deps import Body, BoxDep, answers
from edge.doors.web.i18n import page_language, render_page, translations
from edge.doors.web.routes.accounts import AdminChangeDep, AdminDep
from edge.system.settings import GROUP_BY_NAME, GROUPS, Group, NoConfigFile, schema

router = APIRouter()

LOG_LEVELS = Literal["", "debug", "info", "warning", "error", "critical"]


# -- the admin credential ---------------------------------------------------------------------------


class LoginNeeded(Exception):
    """A page asked for without an admin session: the browser goes to the login page."""


# -- bodies and answers ---------------------------------------------------------------------------


class FieldError(BaseModel):
    """One refused field: its dotted path in the config and the schema's message."""

    loc: str
    msg: str


class Refused(BaseModel):
    """A change the schema refused: one message per field (422)."""

    detail: str
    errors: list[FieldError]


class SettingsChange(Body):
    """Body of PUT /api/admin/settings/{group}: the group's values ("" keeps a secret as it is)."""

    values: dict[str, Any]


class Saved(BaseModel):
    """A saved change: the config version it made and what needs a restart to apply."""

    version: int
    changed: list[str]
    restart_needed: bool
    restart_for: list[str]


class PinChange(Body):
    """Body of POST /api/admin/pins."""

    which: Literal["teacher", "technician"]
    pin: str = Field(max_length=64)


class Rollback(Body):
    """Body of POST /api/admin/config/rollback."""

    version: int = Field(ge=1)


class GroupInfo(BaseModel):
    """A settings page."""

    name: str
    title: str
    description: str
    paths: list[str]


class GroupValues(BaseModel):
    """A settings page's current values."""

    group: GroupInfo
    values: dict[str, Any]
    secrets_set: list[str]


class ConfigVersion(BaseModel):
    """A kept version of the config file."""

    version: int
    at: float | None
    by: str
    changed: list[str]
    note: str


class Finding(BaseModel):
    """Something wrong with the box and its fix, in words."""

    key: str
    area: str
    problem: str
    fix: str


class LogLine(BaseModel):
    """One log record (secrets masked)."""

    at: float
    level: str
    name: str
    message: str


class History(BaseModel):
    """The dashboard's samples, oldest first."""

    interval_s: float
    samples: list[dict[str, Any]]


class Dashboard(BaseModel):
    """What the dashboard shows besides its graphs."""

    health: dict[str, Any]
    uploads: dict[str, Any]
    courseware: dict[str, Any]
    budget: dict[str, Any] | None


def _group(name: str) -> Group:
    group = GROUP_BY_NAME.get(name)
    if group is None:
        raise HTTPException(404, "no such settings page")
    return group


def _info(group: Group) -> GroupInfo:
    return GroupInfo(name=group.name, title=group.title, description=group.description, paths=list(group.paths))


def _saving(action: Callable[[], dict[str, Any]]) -> Saved:
    return Saved(**action())  # NoConfigFile is a ConfigError: 409 with its words


# -- the JSON API -----------------------------------------------------------------------------------


@router.get("/api/admin/dashboard")
async def dashboard(box: BoxDep, who: AdminDep) -> Dashboard:
    """Health of every component, the upload queue, the last courseware pull, the month's data against the cap."""
    return Dashboard(**box.dashboard())


@router.get("/api/admin/doctor")
async def doctor(request: Request, box: BoxDep, who: AdminDep) -> list[Finding]:
    """What is wrong with the box, each with its fix, in the page's language (the same as `classbox doctor`)."""
    gettext = translations(page_language(request, box)).gettext
    return [Finding(**finding.to_json(gettext)) for finding in await box.doctor()]


class LanBox(BaseModel):
    """Another box seen on the LAN."""

    id: str
    name: str
    room: str
    version: str
    url: str
    admin_url: str
    addresses: list[str]


class LanBoxes(BaseModel):
    """The other boxes seen on the LAN, and whether this box looks for them."""

    discovering: bool
    boxes: list[LanBox]


@router.get("/api/admin/boxes")
async def lan_boxes(box: BoxDep, who: AdminDep) -> LanBoxes:
    """The other boxes seen on the LAN now, one per box id, with their admin pages."""
    return LanBoxes(**box.lan_boxes())


@router.get("/api/admin/history")
async def history(box: BoxDep, who: AdminDep, hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24) -> History:
    """CPU, memory, disk, link estimate, sync throughput and viewers sampled over the last `hours`."""
    return History(interval_s=box.config.metrics.interval_s, samples=await box.metrics_history(hours))


@router.get("/api/admin/settings")
async def settings_groups(box: BoxDep, who: AdminDep) -> list[GroupInfo]:
    """Every settings page."""
    return [_info(group) for group in GROUPS]


@router.get("/api/admin/settings/schema")
async def settings_schema(who: AdminDep) -> dict[str, Any]:
    """The config's JSON schema (titles, descriptions, limits, enums; secrets `writeOnly`)."""
    return schema()


@router.get("/api/admin/settings/{group}")
async def settings_values(box: BoxDep, who: AdminDep, group: str) -> GroupValues:
    """A settings page's values; secrets as "" (and named in `secrets_set` when they hold one)."""
    found = _group(group)
    return GroupValues(group=_info(found), **box.setting_values(found))


@router.put("/api/admin/settings/{group}", responses={422: {"model": Refused}})
async def change_settings(box: BoxDep, who: AdminChangeDep, group: str, body: SettingsChange) -> Saved:
    """Validate and save a page's values; 422 names each refused field with the schema's message."""
    found = _group(group)
    return _saving(lambda: box.change_settings(found, body.values, who))


@router.post("/api/admin/pins", responses={422: {"model": Refused}})
async def set_pin(box: BoxDep, who: AdminChangeDep, body: PinChange) -> Saved:
    """Set the teacher or the technician PIN (4 to 12 digits; stored as an argon2 hash)."""
    return _saving(lambda: box.set_pin(body.which, body.pin, who))


@router.get("/api/admin/config/history")
async def config_history(box: BoxDep, who: AdminDep) -> list[ConfigVersion]:
    """The kept versions of the config file, newest first."""
    try:
        return [ConfigVersion(**version) for version in box.config_versions()]
    except NoConfigFile:
        return []


@router.post("/api/admin/config/rollback")
async def rollback(box: BoxDep, who: AdminChangeDep, body: Rollback) -> Saved:
    """Make a kept version the current config again (saved as a new version)."""
    try:
        return _saving(lambda: box.roll_back_config(body.version, who))
    except KeyError as err:
        raise HTTPException(404, "that version is not kept") from err
    except NoConfigFile:
        raise  # the map's 409 with its own words, not the old version's problems
    except ConfigError as err:
        raise HTTPException(409, "that version is no longer valid: " + "; ".join(err.problems)) from err


@router.get("/api/admin/logs")
async def logs(
    box: BoxDep,
    who: AdminDep,
    level: LOG_LEVELS = "",
    contains: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=2000)] = 200,
) -> list[LogLine]:
    """The newest log records at `level` or above that contain `contains`, oldest first (secrets masked)."""
    return [LogLine(**line) for line in box.log_lines(limit, level, contains)]


@router.get("/api/admin/diagnostics", response_class=Response)
async def diagnostics(box: BoxDep, who: AdminDep) -> Response:
    """A zip for support: the config without its secrets, health, recent logs, versions, config history."""
    data = box.diagnostics()
    name = f"classbox-diagnostics-{box.id}.zip"
    return Response(
        data, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.post("/api/admin/restart", status_code=202, dependencies=[answers({NotAllowed: Door(409)})])
async def restart(box: BoxDep, who: AdminChangeDep) -> dict[str, str]:
    """Restart the daemon: every part stops in order and starts again (a live lesson ends; 409 when it cannot)."""
    box.restart(who)
    return {"status": "restarting"}


@router.get("/api/admin/devices")
async def devices(box: BoxDep, who: AdminDep) -> dict[str, Any]:
    """The cameras and microphones this machine has, and the configured ones."""
    return await box.devices()


@router.get("/api/admin/devices/cameras/{name}/snapshot", response_class=Response)
async def snapshot(box: BoxDep, who: AdminDep, name: str) -> Response:
    """The configured camera's newest picture (JPEG)."""
    picture = await box.camera_snapshot(name)
    return Response(picture, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/api/admin/devices/microphones/{name}/level")
async def level(box: BoxDep, who: AdminDep, name: str) -> dict[str, Any]:
    """The configured microphone's level now (dBFS) and its status."""
    return box.microphone_level(name)


# -- the pages --------------------------------------------------------------------------------------


async def _page(request: Request, box: Box, page: str, group: Group | None = None) -> HTMLResponse:
    language = page_language(request, box)
    body = await render_page(
        "admin.html",
        language,
        page=page,
        group=group,
        groups=GROUPS,
        name=box.config.box.name,
        title=translations(language).gettext(group.title) if group else "",
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


async def render_admin(request: Request, box: Box, page: str) -> HTMLResponse:
    """An admin page of another door's module (e.g. the timetable), in the admin layout."""
    return await _page(request, box, page)


@router.get("/admin", response_class=HTMLResponse)
async def admin_home(request: Request, box: BoxDep, who: AdminDep) -> HTMLResponse:
    """The dashboard: health, graphs of the last 24 h, uploads, courseware, data used this month."""
    return await _page(request, box, "dashboard")


@router.get("/admin/settings/{group}", response_class=HTMLResponse)
async def settings_page(request: Request, box: BoxDep, who: AdminDep, group: str) -> HTMLResponse:
    """A settings page, its form generated from the schema."""
    return await _page(request, box, "settings", _group(group))


@router.get("/admin/pins", response_class=HTMLResponse)
async def pins_page(request: Request, box: BoxDep, who: AdminDep) -> HTMLResponse:
    """The teacher's and the technician's PINs."""
    return await _page(request, box, "pins")


@router.get("/admin/logs", response_class=HTMLResponse)
async def logs_page(request: Request, box: BoxDep, who: AdminDep) -> HTMLResponse:
    """The log tail with a filter."""
    return await _page(request, box, "logs")


@router.get("/admin/maintenance", response_class=HTMLResponse)
async def maintenance_page(request: Request, box: BoxDep, who: AdminDep) -> HTMLResponse:
    """Restart, the diagnostics bundle, the config history with rollback."""
    return await _page(request, box, "maintenance")


async def login_needed(request: Request, err: Exception) -> RedirectResponse:
    """A page without an admin session goes to the login page."""
    return RedirectResponse("/admin/login", status_code=303)


EXCEPTION_HANDLERS = {LoginNeeded: login_needed}  # a page without a session: a redirect, not an error answer
