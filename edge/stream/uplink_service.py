"""Live to cloud: what the doors ask of the WHIP uplink (edge.stream.whip.Uplink), and where students watch."""

from __future__ import annotations

from typing import Any, Protocol

from edge.core.config import UplinkSection
from edge.core.errors import StreamUnavailable

NOT_RUNNING = "publishing to the cloud server is not running on this box"


class UplinkPort(Protocol):
    """What the service layer asks of the uplink component."""

    def status(self) -> dict[str, Any]: ...
    def serves_students(self) -> bool: ...
    async def check(self, url: str, token: str) -> str: ...


def status(uplink: UplinkPort | None, config: UplinkSection) -> dict[str, Any]:
    """The uplink's state for the admin page and the panel (mode and target from the config without it)."""
    if uplink is not None:
        return uplink.status()
    return {
        "mode": config.mode,
        "state": "off",
        "error": "",
        "target": "",
        "player_url": config.player_url,
        "layers": list(config.layers),
        "kbps": 0.0,
        "reconnects": 0,
        "sessions": 0,
    }


def player_url(uplink: UplinkPort | None, config: UplinkSection, join_code: str) -> str | None:
    """The SFU's player for `join_code` when students watch the lesson there, else None (the box's own link)."""
    if not config.publishes() or not config.player_url:
        return None
    if config.mode == "both" and (uplink is None or not uplink.serves_students()):
        return None  # local viewers still work: better the box's link than a player with nothing in it
    return config.player_url.replace("{join_code}", join_code)


async def check(uplink: UplinkPort | None, config: UplinkSection) -> str:
    """Try the configured WHIP endpoint and token now; '' when it works, else why not in plain words."""
    if uplink is None:
        raise StreamUnavailable(NOT_RUNNING)
    if not config.whip_url:
        return "no WHIP address is set"
    return await uplink.check(config.whip_url, config.token)
