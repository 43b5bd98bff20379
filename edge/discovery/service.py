"""Discovery: the other boxes this box sees on the LAN, and its courseware peers."""

from __future__ import annotations

from typing import Any, Protocol

from sync.peers import PeerDirectory


class DiscoveryPort(Protocol):
    """What the service layer asks of the discovery component (edge.discovery.lan.Discovery)."""

    @property
    def peers(self) -> PeerDirectory | None: ...
    def boxes(self) -> list[dict[str, Any]]: ...
    def peer_urls(self) -> list[str]: ...


def lan_boxes(discovery: DiscoveryPort | None) -> dict[str, Any]:
    """The other boxes seen now, keyed by box id, and whether this box looks at all."""
    listed = discovery.boxes() if discovery is not None else []
    return {"discovering": discovery is not None and discovery.peers is not None, "boxes": listed}


def peer_urls(discovery: DiscoveryPort | None) -> list[str]:
    """Base URLs of the courseware peers seen now ([] without discovery)."""
    return discovery.peer_urls() if discovery is not None else []
