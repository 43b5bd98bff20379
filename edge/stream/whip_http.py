"""The HTTP side of WHIP (RFC 9725): the offer POSTed with the bearer token, the ICE restart PATCH, the DELETE.

Errors come out in plain words an admin can act on, never with the token or the URL in them (the URL
may carry a secret). `edge.stream.whip` runs the uplink's sessions over this.
"""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.parse
from dataclasses import dataclass, field

import httpx
from aiortc import RTCIceServer

from edge.stream.ice_restart import SDPFRAG, IceAnswer, parse_sdpfrag

log = logging.getLogger(__name__)

SDP = "application/sdp"
HTTP_TIMEOUT_S = 10.0
HTTP_CONNECT_S = 3.0  # a cut link fails a new session this soon, not after the whole answer's time
MAX_ANSWER_BYTES = 64 * 1024
RESTART_HTTP_S = 4.0  # the PATCH's whole time: on a kept-alive connection a dead link shows only as no answer
BUSY = (429, 503)  # the server is there but busy (simple-whip-server while it reconnects to Janus): try again
LINK_RE = re.compile(r'<([^>]*)>((?:\s*;\s*[\w-]+(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,]*))?)*)')
PARAM_RE = re.compile(r';\s*([\w-]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,]*)))?')


class WhipError(Exception):
    """Publishing failed; the message is plain words with no secret in it."""


class WhipRefused(WhipError):
    """The WHIP server refused the token (401/403): trying again will not help until it changes."""


class WhipUnreachable(WhipError):
    """The WHIP server could not be reached at all (the link is down): the session may still be there."""


@dataclass
class WhipResource:
    """A published session on the WHIP server."""

    location: str
    etag: str = ""
    ice_servers: list[RTCIceServer] = field(default_factory=list)
    restartable: bool = False  # the server takes an ICE restart by PATCH (it said Accept-Patch)


def parse_ice_links(values: list[str]) -> list[RTCIceServer]:
    """The ICE servers in `Link` header values (`<url>; rel="ice-server"; username=...; credential=...`)."""
    servers = []
    for value in values:
        for match in LINK_RE.finditer(value):
            url, params = match.group(1).strip(), dict(_link_params(match.group(2)))
            if params.get("rel", "").lower() != "ice-server" or not re.match(r"^(stun|stuns|turn|turns):", url):
                continue
            servers.append(RTCIceServer(urls=url, username=params.get("username"), credential=params.get("credential")))
    return servers


def _link_params(text: str) -> list[tuple[str, str]]:
    found = []
    for match in PARAM_RE.finditer(text):
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else (bare or "").strip()
        found.append((match.group(1).lower(), value))
    return found


def _refusal(status: int, body: str, what: str = "") -> WhipError:
    """The error for a refused request (the offer's, or `what`), in words an admin can act on."""
    said = re.sub(r"\s+", " ", body).strip()[:120]
    said = f" (it said: {said})" if said and not said.lstrip().startswith("<") else ""
    if what:  # the session is there or it is not: either way a new one is next, the token is not in doubt
        return WhipError(f"the cloud server refused {what} (HTTP {status}){said}")
    if status in (401, 403) and "in use" not in said:
        return WhipRefused(f"the cloud server refused the token (HTTP {status}): check the token{said}")
    if status == 404:
        return WhipError(f"the cloud server has no WHIP endpoint at this address (HTTP 404){said}")
    if status == 403:
        return WhipError(f"the cloud server refused the session (HTTP 403){said}")
    return WhipError(f"the cloud server answered HTTP {status}{said}")


class WhipClient:
    """The HTTP side of WHIP for one endpoint URL and token (never logged, never in an error)."""

    def __init__(self, url: str, token: str, client: httpx.AsyncClient) -> None:
        self.url, self._token, self._client = url, token, client

    def _headers(self, **extra: str) -> dict[str, str]:
        return {**({"Authorization": f"Bearer {self._token}"} if self._token else {}), **extra}

    async def ice_servers(self) -> list[RTCIceServer]:
        """The ICE servers the endpoint offers before a POST (none when it does not answer OPTIONS)."""
        try:
            response = await self._client.options(self.url, headers=self._headers())
        except httpx.HTTPError:
            return []
        return parse_ice_links(response.headers.get_list("link")) if response.status_code < 300 else []

    async def publish(self, offer: str) -> tuple[str, WhipResource]:
        """POST the offer; (answer, resource) on 201, else raise WhipError/WhipRefused."""
        try:
            response = await self._client.post(self.url, content=offer, headers=self._headers(**{"Content-Type": SDP}))
        except httpx.HTTPError as err:
            raise WhipError(f"cannot reach the cloud server: {_reason(err)}") from err
        if response.status_code != 201:
            raise _refusal(response.status_code, response.text)
        location = response.headers.get("location")
        if not location:
            raise WhipError("the cloud server's answer has no Location (the session cannot be ended)")
        answer = response.text
        if len(answer) > MAX_ANSWER_BYTES or not answer.lstrip().startswith("v=0"):
            raise WhipError("the cloud server's answer is not an SDP answer")
        resource = WhipResource(
            location=urllib.parse.urljoin(str(response.url), location),
            etag=response.headers.get("etag", ""),
            ice_servers=parse_ice_links(response.headers.get_list("link")),
            restartable=SDPFRAG in response.headers.get("accept-patch", "").lower(),
        )
        return answer, resource

    async def restart_ice(self, resource: WhipResource, fragment: str) -> IceAnswer:
        """PATCH the session with new ICE credentials (RFC 9725 section 4.3.2); the server's new ones.

        WhipUnreachable when the server cannot be reached; WhipError when it answers with anything
        but 200 (it lost the session, or cannot restart): a new session is what is left.
        """
        try:
            async with asyncio.timeout(RESTART_HTTP_S):
                response = await self._patch(resource, fragment, "*")  # RFC 9110's bare "*"
                if response.status_code == 412:  # nothing was applied: some servers want it quoted
                    response = await self._patch(resource, fragment, '"*"')
        except (httpx.HTTPError, TimeoutError) as err:
            raise WhipUnreachable(f"cannot reach the cloud server: {_reason(err)}") from err
        if response.status_code in BUSY:
            raise WhipUnreachable(f"the cloud server is busy (HTTP {response.status_code})")
        if response.status_code == 204:  # it took the body for trickled candidates: no restart there
            raise WhipError("the cloud server did not restart ICE (HTTP 204)")
        if response.status_code != 200:
            raise _refusal(response.status_code, response.text, "the ICE restart")
        try:
            answer = parse_sdpfrag(response.text)
        except ValueError as err:
            raise WhipError(str(err)) from err
        resource.etag = response.headers.get("etag", resource.etag)
        return answer

    async def _patch(self, resource: WhipResource, fragment: str, if_match: str) -> httpx.Response:
        headers = self._headers(**{"Content-Type": SDPFRAG, "If-Match": if_match})
        return await self._client.patch(resource.location, content=fragment, headers=headers)

    async def delete(self, resource: WhipResource) -> bool:
        """End the session on the server; False when the server could not be reached (try again later)."""
        try:
            await self._client.delete(resource.location, headers=self._headers(), timeout=2.0)
        except httpx.HTTPError as err:
            log.debug("uplink: DELETE of the session failed: %s", _reason(err))
            return False
        return True


async def new_http_client() -> httpx.AsyncClient:
    """An HTTP client for WHIP, made off the loop (loading the CA bundle takes longer than a loop may wait)."""
    timeout = httpx.Timeout(HTTP_TIMEOUT_S, connect=HTTP_CONNECT_S)
    return await asyncio.to_thread(httpx.AsyncClient, timeout=timeout, follow_redirects=False)


def _reason(err: Exception) -> str:
    """An HTTP error in words, without the URL (it may carry a secret)."""
    if isinstance(err, httpx.TimeoutException | TimeoutError):
        return "timed out"
    if isinstance(err, httpx.ConnectError):
        return "connection refused or unreachable"
    return type(err).__name__
