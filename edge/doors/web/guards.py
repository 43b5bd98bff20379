"""ASGI guards in front of every web door: request body limits and same-origin state changes.

The teacher is recognised by source address, so a page from any other origin open in the panel's
own browser could otherwise send it requests that change state. Browsers name the page that sent a
request (`Origin`, `Sec-Fetch-Site`); a request that names another origin is refused, and JSON
bodies must say so (`application/json`), which a plain HTML form cannot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CORS_OPEN_PREFIXES = ("/whep/",)  # students' WHEP players may be served from anywhere
# The admin pages' plain HTML forms (sign-in without a script; every change there shows its session's CSRF token).
FORM_PREFIXES = ("/admin/",)
FORM_TYPE = "application/x-www-form-urlencoded"
SAME_ORIGIN_SITES = frozenset({"same-origin", "none"})


async def _refuse(send: Send, status: int, detail: str, cors: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if cors:  # so that a student's player on another origin can read why
        headers.append((b"access-control-allow-origin", b"*"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


class BodyLimit:
    """Refuse bodies over `limit` bytes: at once when declared, else as soon as the count passes it."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await _refuse(send, 413, _too_large(self.limit), cors=scope.get("path", "").startswith(CORS_OPEN_PREFIXES))
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Raised inside whoever reads the body; the app's exception handling answers 413.
                    raise HTTPException(413, _too_large(self.limit))
            return message

        return counted


def own_origins(host: str | None, scheme: str, public_urls: Iterable[str]) -> set[str]:
    """The origins a page of this box has: the one the request was addressed to, and the public URL's."""
    origins = {f"{scheme}://{host.lower()}"} if host else set()
    for url in public_urls:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            origins.add(f"{parts.scheme}://{parts.netloc.lower()}")
    return origins


def cross_origin_reason(scope: Scope, public_urls: Iterable[str]) -> tuple[int, str] | None:
    """(status, reason) when a state-changing request must be refused; None when it may go on."""
    headers = Headers(scope=scope)
    site = headers.get("sec-fetch-site")
    if site is not None and site not in SAME_ORIGIN_SITES:
        return 403, f"refused: a request that changes state must come from the box's own pages (it is {site})"
    origin = headers.get("origin")
    if origin is not None and origin.lower() not in own_origins(headers.get("host"), scope["scheme"], public_urls):
        return 403, "refused: a request that changes state must come from the box's own pages"
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    is_form = media_type == FORM_TYPE and scope.get("path", "").startswith(FORM_PREFIXES)
    if has_body and media_type != "application/json" and not is_form:
        return 415, "a request body must be sent as application/json"
    return None


class SameOriginGuard:
    """Refuse state-changing requests from other origins (outside the CORS-open student endpoints)."""

    def __init__(self, app: ASGIApp, public_urls: Callable[[], Iterable[str]] = tuple) -> None:
        self.app, self.public_urls = app, public_urls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING and not path.startswith(CORS_OPEN_PREFIXES):
            refusal = cross_origin_reason(scope, self.public_urls())
            if refusal is not None:
                await _refuse(send, *refusal)
                return
        await self.app(scope, receive, send)
