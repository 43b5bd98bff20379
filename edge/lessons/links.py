"""The join link: the address students open for a lesson, one their phones and tablets can reach."""

from __future__ import annotations

import ipaddress
import socket

from edge.core.config import WebSection

WILDCARD_HOSTS = ("0.0.0.0", "::")


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def lan_address() -> str | None:
    """The box's address on the network its default route leads to (no packet is sent), or None when offline."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: a UDP connect only picks the outgoing interface
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if is_loopback(address) else address


def join_url(web: WebSection, join_code: str, seen_as: str | None = None) -> str:
    """The link students open for `join_code`: the public URL, else an address of the box their devices reach.

    `seen_as` is the host (and port) the asking page was loaded from; a loopback one (the panel's own
    kiosk) is no use to a student's phone, so the box's LAN address stands in for it.
    """
    path = f"/watch/{join_code}"
    if web.public_url:
        return web.public_url.rstrip("/") + path
    host = seen_as or f"{web.host}:{web.port}"
    if not is_loopback(host.rsplit(":", 1)[0].strip("[]")) or web.host not in WILDCARD_HOSTS:
        return f"http://{host}{path}"
    lan = lan_address()
    return f"http://{lan}:{web.port}{path}" if lan else f"http://{host}{path}"
