"""Every route of the app, called without credentials and with wrong ones: nothing changes, nothing private answers.

The walk takes its routes from the app itself (the OpenAPI schema and `app.routes`, which also
holds what the schema leaves out), so a route added later is walked without touching this file.
What anyone may read is listed below, each with what it may show; anything else must refuse.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from edge.doors.web.server import WebDoor
from edge.system.accounts import SESSION_IDLE_S, hash_pin
from tests.stream_fixture import LiveBox, live_box, small_config
from tests.test_accounts import PASSWORD, SYSTEM_CAS, setup_code

PIN = "2468"
PIN_HASH = hash_pin(PIN)  # at import: argon2 would block the test's loop
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
REFUSED = {401, 403, 429}
PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")

Check = Callable[[httpx.Response, "Walk"], None]


def shows_no_secret(response: httpx.Response, walk: Walk) -> None:
    """A public answer never carries the live lesson's join code, a session token or a CSRF token."""
    for secret in (walk.join_code, walk.session_token, walk.csrf):
        assert secret not in response.text, f"{response.request.url} shows a secret"


def reduced_health(response: httpx.Response, walk: Walk) -> None:
    body = response.json()
    assert set(body) == {"status", "components"}
    assert all(set(component) == {"status"} for component in body["components"].values())


def reduced_lesson(response: httpx.Response, walk: Walk) -> None:
    assert response.json() == {"lesson": {"state": "live", "title": "Walk"}}


def anything(response: httpx.Response, walk: Walk) -> None:
    """Public by design (the student's own join code is its credential; static files; catalogs)."""


# What anyone on the LAN may read (GET/HEAD/OPTIONS), by route path, and what it may show.
PUBLIC: dict[str, Check] = {
    "/": shows_no_secret,
    "/healthz": reduced_health,
    "/metrics": shows_no_secret,
    "/openapi.json": shows_no_secret,
    "/api/lessons/current": reduced_lesson,
    "/watch/{join_code}": anything,  # the join code is the student's credential
    "/api/watch/{join_code}": anything,
    "/whep/{join_code}": anything,  # OPTIONS: the CORS preflight of the live lesson's students
    "/whep/{join_code}/{viewer_id}": anything,
    "/i18n/{language}.json": anything,
    "/api/courseware": shows_no_secret,  # what the cache holds, for the board and the LAN
    "/courseware/{course}/{path}": anything,
    "/api/chunks/{digest}": anything,  # peer boxes fetch chunks; they verify each hash
    "/admin/login": shows_no_secret,
    "/admin/setup": shows_no_secret,
    "/panel": shows_no_secret,  # elsewhere than a panel address: the PIN screen
    "/board": shows_no_secret,  # the board page: the same PIN screen
    "/board/render/{course}/{path}": anything,  # a cached PDF's page, as open as the courseware it comes from
    "/api/events": anything,  # anyone's stream is lesson state and title only (tests/test_events.py reads it)
}
PUBLIC_PREFIXES = ("/static/",)


@dataclass
class Walk:
    """The live lesson and the credentials the walk tries: none, wrong ones, a forged and an expired session."""

    join_code: str
    session_token: str
    csrf: str
    expired_token: str
    expired_csrf: str

    def credentials(self) -> dict[str, dict[str, str]]:
        return {
            "none": {},
            "wrong PIN": {"X-Panel-Pin": "0000"},
            "forged cookies": {
                "Cookie": "classbox_admin=" + "A" * 43 + "; classbox_teacher=" + "B" * 43,
                "X-CSRF-Token": "C" * 43,
            },
            "expired session": {"Cookie": f"classbox_admin={self.expired_token}", "X-CSRF-Token": self.expired_csrf},
            "another session's CSRF token on a forged cookie": {
                "Cookie": "classbox_admin=" + "D" * 43,
                "X-CSRF-Token": self.csrf,
            },
        }


def concrete(path: str, walk: Walk) -> str:
    """A route path with its parameters filled in (the live lesson's code where one is asked for)."""

    def value(match: re.Match[str]) -> str:
        name, converter = match.group(1), match.group(2)
        if "code" in name:
            return walk.join_code
        if converter == "path":
            return "course/item.html"
        return "0" * 64 if name == "digest" else "x"

    return PARAM.sub(value, path)


def routes_of(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path template) of every route, those the OpenAPI schema leaves out included."""
    seen: set[tuple[str, str]] = set()
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            seen.add((method.upper(), path))
    for route in app.routes:
        if isinstance(route, APIRoute | Route):
            seen.update((method, route.path) for method in route.methods or ())
        elif isinstance(route, Mount):
            seen.add(("GET", route.path + "/x"))
    yield from sorted(seen, key=lambda item: (item[1], item[0]))


def template_of(path: str) -> str:
    return PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


async def call(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
    """One request; an event stream is judged by its status and headers, not read to its end."""
    body = {"json": {}} if method in STATE_CHANGING else {}
    async with client.stream(method, url, headers=headers, **body) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            await response.aread()
    return response


def judge(method: str, path: str, response: httpx.Response, walk: Walk) -> str | None:
    """What is wrong with this answer to someone without the credential, or None."""
    status = response.status_code
    if method in STATE_CHANGING:
        return None if not 200 <= status < 300 else f"changed state: {status}"
    template = template_of(path)
    if template in PUBLIC or path.startswith(PUBLIC_PREFIXES):
        if 200 <= status < 300 and template in PUBLIC and method != "OPTIONS":
            PUBLIC[template](response, walk)
        return None
    if status in REFUSED:
        return None
    if status == 303 and response.headers.get("location", "").endswith("/admin/login"):
        return None  # an admin page sends the visitor to sign in
    return f"answered {status} without the credential"


async def prepare(live: LiveBox, client: httpx.AsyncClient) -> Walk:
    """An admin account, a live lesson, a signed-in session and one left idle until it expired."""
    box = live.box
    code = setup_code(box.config.box.state_dir)
    answer = await client.post("/api/admin/setup", json={"code": code, "user": "it", "password": PASSWORD})
    assert answer.status_code == 201
    expired = answer.json()["csrf"], answer.cookies["classbox_admin"]
    offset = [0.0]
    real = box.clock.monotonic
    box.clock.monotonic = lambda: real() + offset[0]
    offset[0] += SESSION_IDLE_S + 1
    assert box.admin_session(expired[1]) is None
    client.cookies.clear()
    answer = await client.post("/api/admin/login", json={"user": "it", "password": PASSWORD})
    token, csrf = answer.cookies["classbox_admin"], answer.json()["csrf"]
    client.cookies.clear()
    started = await client.post("/api/lessons", json={"title": "Walk"}, headers={"X-Panel-Pin": PIN})
    assert started.status_code == 201
    return Walk(started.json()["join_code"], token, csrf, expired[1], expired[0])


async def test_no_route_answers_without_its_credential(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    config.web.panel_addresses = ["192.0.2.1/32"]  # this test's loopback client is just someone on the LAN
    config.web.teacher_pin_hash = PIN_HASH
    async with live_box(config, with_devices=False) as live:
        async with httpx.AsyncClient(base_url=live.base, verify=SYSTEM_CAS, timeout=30) as client:
            walk = await prepare(live, client)
            assert (await client.get("/api/admin/session", headers=admin_cookie(walk))).status_code == 200
            assert (await client.get("/api/recordings", headers={"X-Panel-Pin": PIN})).status_code == 200
            web = live.daemon.supervisor.get("web")
            assert isinstance(web, WebDoor)
            # The daemon's own app; its schema's first build is slow, so not on the loop.
            routes = await asyncio.to_thread(lambda: list(routes_of(web.app)))
            problems, walked = [], set()
            for method, path in routes:
                url = concrete(path, walk)
                for name, headers in walk.credentials().items():
                    client.cookies.clear()
                    response = await call(client, method, url, headers)
                    walked.add(template_of(path))
                    problem = judge(method, path, response, walk)
                    if problem:
                        problems.append(f"{method} {path} ({name}): {problem}")
        assert problems == []
        assert {"/api/lessons", "/api/admin/session", "/api/admin/logout", "/admin/login"} <= walked
        assert len(routes) >= 30
        lesson = live.box.current_lesson()
        assert lesson is not None  # nobody stopped it
        assert lesson.join_code == walk.join_code
        assert live.box.admin_session(walk.session_token) is not None  # nobody signed it out


def admin_cookie(walk: Walk) -> dict[str, str]:
    return {"Cookie": f"classbox_admin={walk.session_token}"}
