"""The IT staff's credential at the web door: sign-in and setup pages, the admin session cookie, CSRF.

`AdminDep` is the signed-in admin's username (401 JSON under `/api`, a redirect to the sign-in
page elsewhere); `AdminChangeDep` also needs the session's CSRF token (header `X-CSRF-Token` or
form field `csrf`), else 403. Admins sign in only over HTTPS, or on the box itself (loopback).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import Field

from edge.box import Box
from edge.core.errors import AccountError, ClassboxError, Door, NotAllowed, Overrides, TooManyAttempts, door_meaning
from edge.core.texts import N_
from edge.doors.web.deps import Answers, Body, BoxDep, answers
from edge.doors.web.guards import FORM_TYPE
from edge.doors.web.i18n import page_language, render_page, translate
from edge.system.accounts import PASSWORD_MAX, AdminSession, client_ip, csrf_matches

COOKIE = "classbox_admin"
CSRF_HEADER = "x-csrf-token"
HTTPS_ONLY = N_("Admins sign in only over HTTPS: open %(url)s")
HTTPS_OFF = N_("HTTPS is off on this box: admins sign in on the box itself")
SIGN_IN_FIRST = N_("sign in as an admin first")
BAD_CSRF = N_("the CSRF token is missing or wrong: reload the page and try again")
PASSWORDS_DIFFER = N_("the two passwords differ")
DASHBOARD = "/admin"

router = APIRouter()


class Login(Body):
    """Body of POST /api/admin/login."""

    user: str = Field(max_length=64)
    password: str = Field(max_length=PASSWORD_MAX)


class NewAccount(Login):
    """Body of POST /api/admin/accounts."""


class NewPassword(Body):
    """Body of POST /api/admin/password."""

    current: str = Field(max_length=PASSWORD_MAX)
    password: str = Field(max_length=PASSWORD_MAX)


class Setup(Login):
    """Body of POST /api/admin/setup: the first admin account and the box's one-time setup code."""

    code: str = Field(max_length=32)


# -- the transport ---------------------------------------------------------------------------------


def _address(request: Request) -> str:
    return request.client.host if request.client else "?"


def is_loopback(address: str) -> bool:
    """True for the box's own addresses (127.0.0.0/8, ::1, IPv4-mapped loopback)."""
    ip = client_ip(address)
    return ip is not None and ip.is_loopback


def https_url(request: Request, box: Box, path: str = "/admin/login") -> str | None:
    """The address of `path` on the box's HTTPS port, as this request named the box; None while HTTPS is off."""
    port = box.config.web.https_port
    if not port or box.https_certificate() is None:
        return None
    host = request.url.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{port}{path}"


def transport_refusal(request: Request, box: Box, language: str = "en") -> str | None:
    """Why an admin may not sign in over this connection (plain HTTP from another machine), or None."""
    if request.url.scheme == "https" or is_loopback(_address(request)):
        return None
    url = https_url(request, box)
    text = translate(HTTPS_ONLY if url else HTTPS_OFF, language)
    return text % {"url": url} if url else text


# -- the dependencies others build on --------------------------------------------------------------


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def admin_session(request: Request, box: BoxDep) -> str:
    """The signed-in admin's username (401 for the API, a redirect to sign in for pages)."""
    refusal = transport_refusal(request, box)
    if refusal is not None:
        if _is_api(request):
            raise HTTPException(403, refusal)
        raise HTTPException(303, refusal, headers={"Location": https_url(request, box) or "/admin/login"})
    session = box.admin_session(request.cookies.get(COOKIE))
    if session is None:
        if _is_api(request):
            raise HTTPException(401, SIGN_IN_FIRST)
        raise HTTPException(303, SIGN_IN_FIRST, headers={"Location": "/admin/login"})
    request.state.admin_session = session
    return session.user


AdminDep = Annotated[str, Depends(admin_session)]


def is_admin(request: Request, box: Box) -> bool:
    """True for a signed-in admin on a transport the admin page allows (for doors that serve anyone too)."""
    return transport_refusal(request, box) is None and box.admin_session(request.cookies.get(COOKIE)) is not None


async def form_fields(request: Request) -> dict[str, str]:
    """A URL-encoded form body as {name: first value} ({} for any other body)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_TYPE:
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[0] for key, values in parse_qs(body, keep_blank_values=True).items()}


async def admin_change(request: Request, user: AdminDep) -> str:
    """The signed-in admin, for a change: the session's CSRF token must come with it (else 403)."""
    session: AdminSession = request.state.admin_session
    token = request.headers.get(CSRF_HEADER) or (await form_fields(request)).get("csrf")
    if not csrf_matches(session, token):
        raise HTTPException(403, BAD_CSRF)
    return user


AdminChangeDep = Annotated[str, Depends(admin_change)]


# -- sessions --------------------------------------------------------------------------------------


def _signed_in(response: Response, request: Request, token: str) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")


def _signed_out(response: Response, request: Request) -> None:
    secure = request.url.scheme == "https"
    response.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=secure, path="/")


def sign_in_refusals(box: Box) -> Overrides:
    """How signing in answers a refused credential: 401, and 429 with the lock-out's length as Retry-After."""
    return {NotAllowed: Door(401), TooManyAttempts: Door(429, retry_after=int(box.accounts.lockout_s))}


async def _sign_in_answers(request: Request, box: BoxDep) -> None:
    Answers(sign_in_refusals(box))(request)


SIGN_IN_ANSWERS = Depends(_sign_in_answers)


def _refusal(err: HTTPException | ClassboxError, box: Box) -> tuple[int, str]:
    """The status and words a sign-in or setup page shows for a refusal (the API's, through the same map)."""
    if isinstance(err, HTTPException):
        return err.status_code, str(err.detail)
    meaning = door_meaning(err, sign_in_refusals(box)) or err.door_error()
    return meaning.status, meaning.message


async def _sign_in(request: Request, box: Box, user: str, password: str) -> tuple[str, AdminSession]:
    refusal = transport_refusal(request, box)
    if refusal is not None:
        raise HTTPException(403, refusal)
    return await box.admin_login(user, password, _address(request))


async def _set_up(request: Request, box: Box, code: str, user: str, password: str) -> None:
    refusal = transport_refusal(request, box)
    if refusal is not None:
        raise HTTPException(403, refusal)
    await box.create_first_admin(code, user, password, _address(request))


@router.post("/api/admin/login", dependencies=[SIGN_IN_ANSWERS])
async def api_login(request: Request, box: BoxDep, body: Login) -> JSONResponse:
    """Sign in: the session cookie and the session's CSRF token."""
    token, session = await _sign_in(request, box, body.user, body.password)
    response = JSONResponse({"user": session.user, "csrf": session.csrf})
    _signed_in(response, request, token)
    return response


@router.post("/api/admin/setup", status_code=201, dependencies=[SIGN_IN_ANSWERS])
async def api_setup(request: Request, box: BoxDep, body: Setup) -> JSONResponse:
    """Create the first admin account with the setup code, and sign it in."""
    await _set_up(request, box, body.code, body.user, body.password)
    token, session = await _sign_in(request, box, body.user, body.password)
    response = JSONResponse({"user": session.user, "csrf": session.csrf}, status_code=201)
    _signed_in(response, request, token)
    return response


@router.get("/api/admin/session")
async def api_session(request: Request, user: AdminDep) -> dict[str, Any]:
    """Who is signed in, and the CSRF token the page sends with every change."""
    session: AdminSession = request.state.admin_session
    return {"user": user, "csrf": session.csrf}


@router.post("/api/admin/logout")
async def api_logout(request: Request, box: BoxDep, user: AdminChangeDep) -> JSONResponse:
    """Sign out: the session ends on the box and the cookie goes."""
    box.admin_logout(request.cookies.get(COOKIE, ""))
    response = JSONResponse({"user": None})
    _signed_out(response, request)
    return response


@router.get("/api/admin/accounts")
async def api_accounts(box: BoxDep, user: AdminDep) -> dict[str, Any]:
    """The admin accounts."""
    return {"accounts": box.admin_accounts()}


@router.post("/api/admin/accounts", status_code=201)
async def api_add_account(box: BoxDep, user: AdminChangeDep, body: NewAccount) -> dict[str, Any]:
    """Another admin account."""
    made = await box.add_admin(body.user, body.password)
    return {"user": made}


@router.delete("/api/admin/accounts/{name}", dependencies=[answers({AccountError: Door(409)})])
async def api_remove_account(name: str, box: BoxDep, user: AdminChangeDep) -> dict[str, Any]:
    """Delete an admin account (not one's own, not the last: 409)."""
    await box.remove_admin(name, user)
    return {"accounts": box.admin_accounts()}


@router.post("/api/admin/password", dependencies=[SIGN_IN_ANSWERS])
async def api_password(request: Request, box: BoxDep, user: AdminChangeDep, body: NewPassword) -> JSONResponse:
    """Change one's own password; every session of that admin ends (sign in again)."""
    await box.change_admin_password(user, body.current, body.password, _address(request))
    response = JSONResponse({"user": None})
    _signed_out(response, request)
    return response


# -- the pages -------------------------------------------------------------------------------------


async def _page(request: Request, box: Box, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    language = page_language(request, box)
    error = values.pop("error", None)
    page = await render_page(
        template,
        language,
        name=box.config.box.name,
        notice=transport_refusal(request, box, language),
        https_url=https_url(request, box, request.url.path),
        on_https=request.url.scheme == "https",
        error=translate(error, language) if error else None,
        **values,
    )
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


async def _form_sign_in(
    request: Request, box: Box, user: str, password: str, setup_code: str | None = None
) -> Response:
    """Sign in from a page's form (creating the first account first with a `setup_code`), then the dashboard."""
    template = "login.html" if setup_code is None else "setup.html"
    try:
        if setup_code is not None:
            await _set_up(request, box, setup_code, user, password)
        token, _ = await _sign_in(request, box, user, password)
    except (HTTPException, ClassboxError) as err:  # the page shows the refusal the API would answer
        status, message = _refusal(err, box)
        return await _page(request, box, template, status, error=message, user=user)
    response = RedirectResponse(DASHBOARD, status_code=303)
    _signed_in(response, request, token)
    return response


@router.get("/admin/login", response_class=HTMLResponse)
async def login_page(request: Request, box: BoxDep) -> Response:
    """The sign-in page (the setup page instead while the box has no admin account)."""
    if box.needs_setup():
        return RedirectResponse("/admin/setup", status_code=303)
    return await _page(request, box, "login.html", 403 if transport_refusal(request, box) else 200, user="")


@router.post("/admin/login", response_class=HTMLResponse)
async def login_form(request: Request, box: BoxDep) -> Response:
    """Sign in from the page's form; back to the page with the reason when refused."""
    form = await form_fields(request)
    return await _form_sign_in(request, box, form.get("user", ""), form.get("password", ""))


@router.get("/admin/setup", response_class=HTMLResponse)
async def setup_page(request: Request, box: BoxDep) -> Response:
    """The first-boot page: the setup code and the first admin account (the sign-in page once one exists)."""
    if not box.needs_setup():
        return RedirectResponse("/admin/login", status_code=303)
    return await _page(request, box, "setup.html", 403 if transport_refusal(request, box) else 200, user="")


@router.post("/admin/setup", response_class=HTMLResponse)
async def setup_form(request: Request, box: BoxDep) -> Response:
    """Create the first admin account from the page's form, then sign it in."""
    form = await form_fields(request)
    user, password = form.get("user", ""), form.get("password", "")
    if password != form.get("password2", ""):
        return await _page(request, box, "setup.html", 400, error=PASSWORDS_DIFFER, user=user)
    return await _form_sign_in(request, box, user, password, setup_code=form.get("code", ""))


@router.post("/admin/logout")
async def logout_form(request: Request, box: BoxDep, user: AdminChangeDep) -> Response:
    """Sign out from a page's form (it carries the `csrf` field); back to the sign-in page."""
    box.admin_logout(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/admin/login", status_code=303)
    _signed_out(response, request)
    return response
