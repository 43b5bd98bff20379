"""The ICE servers a viewer is given, with TURN credentials minted per viewer when the server shares a secret.

A TURN server set up with coturn's `use-auth-secret` / `static-auth-secret` (the TURN REST API
scheme) checks a username `<unix-expiry>:<who>` and the credential `base64(hmac-sha1(secret,
username))`, so a credential copied out of one lesson expires and the secret never leaves the box.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from aiortc import RTCIceServer

from edge.core.config import IceServer


def credentials(server: IceServer, who: str, now: float | None = None) -> tuple[str, str]:
    """(username, credential) for `who` at this server: minted from its secret, else as configured."""
    if not server.auth_secret:
        return server.username, server.credential
    expiry = int(time.time() if now is None else now) + server.ttl_s
    username = f"{expiry}:{who}"
    digest = hmac.new(server.auth_secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ice_links(servers: list[IceServer], who: str) -> list[str]:
    """One `Link` header value per ICE server URL (WHEP section 4.6), credentials minted for `who`."""
    links = []
    for server in servers:
        username, credential = credentials(server, who)
        for url in server.urls:
            link = f'<{url}>; rel="ice-server"'
            if username:
                link += f"; username={_quote(username)}; credential={_quote(credential)}"
                link += '; credential-type="password"'
            links.append(link)
    return links


def rtc_ice_servers(servers: list[IceServer], who: str) -> list[RTCIceServer]:
    """The servers as the box's own aiortc side wants them (never a default public server)."""
    minted = [(server, *credentials(server, who)) for server in servers]
    return [RTCIceServer(urls=s.urls, username=u or None, credential=c or None) for s, u, c in minted]
