"""Discovery on the LAN: the one owner of the box's zeroconf instance.

`Discovery` (component name `discovery`) advertises the box's web pages as `_http._tcp` and, while
HTTPS is on, its admin page as `_https._tcp`, with TXT records (box id, name, room, version, admin
path) that any mDNS browser shows; it hands the same zeroconf instance to the courseware peers
(`sync.peers.PeerDirectory`, `_classbox._tcp`). It browses both web service types for other boxes
(keyed by box id, for the admin dashboard), announces again when the box's addresses change, and
unregisters everything on stop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ifaddr
from zeroconf import Error as ZeroconfError
from zeroconf import InterfaceChoice
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from edge import __version__
from edge.core.component import Component
from edge.core.ports import ConfigSource, HttpsFingerprint
from sync.peers import PeerDirectory, ServiceWatch, lan_addresses, service_url

log = logging.getLogger(__name__)

HTTP_TYPE = "_http._tcp.local."
HTTPS_TYPE = "_https._tcp.local."
WEB_TYPES = (HTTP_TYPE, HTTPS_TYPE)
PRODUCT = "classbox"
ADMIN_PATH = "/admin"
ADDRESS_CHECK_S = 10.0  # how often the box looks whether its addresses changed
LABEL_BYTES = 63  # a DNS label: the most an instance name may take
TXT_VALUE_BYTES = 200  # a TXT string holds 255 bytes with its key


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, never inside a character."""
    return text.encode()[:limit].decode(errors="ignore")


def instance_name(box_name: str, box_id: str) -> str:
    """The name people see in an mDNS browser: the box's name and its id, within one DNS label."""
    suffix = f" ({box_id})"
    if len(suffix.encode()) >= LABEL_BYTES - 8:
        return _cut(box_id, LABEL_BYTES)
    return _cut(box_name, LABEL_BYTES - len(suffix.encode())).rstrip() + suffix


def host_addresses() -> set[str]:
    """Every address of this machine's interfaces, loopback included."""
    return {
        str(ip.ip if isinstance(ip.ip, str) else ip.ip[0]) for adapter in ifaddr.get_adapters() for ip in adapter.ips
    }


def _text(properties: dict[bytes, bytes | None], key: str) -> str:
    value = properties.get(key.encode())
    return value.decode(errors="replace") if value else ""


@dataclass
class Seen:
    """One web service of another box, as resolved from the LAN."""

    box_id: str
    scheme: str
    url: str
    name: str
    room: str
    version: str
    admin_path: str
    addresses: list[str]


class Discovery(Component):
    """Advertises this box on the LAN and lists the other boxes it sees; owns the box's zeroconf instance."""

    name = "discovery"

    def __init__(
        self,
        config: ConfigSource,
        box_id: str,
        https_fingerprint: HttpsFingerprint,
        addresses: Callable[[], list[str]] | None = None,
    ) -> None:
        """`addresses`: where the box says it is (default: the configured interfaces, else every LAN address)."""
        super().__init__()
        self._config, self._id, self._https_fingerprint = config, box_id, https_fingerprint
        self._host_addresses = addresses
        self.zeroconf: AsyncZeroconf | None = None
        self.peers: PeerDirectory | None = None
        self.addresses: list[str] = []
        self._infos: list[AsyncServiceInfo] = []
        self._watch = ServiceWatch(list(WEB_TYPES), self._found, self._lost, task_prefix="discovery")
        self._seen: dict[tuple[str, str], Seen] = {}  # (service type, instance name) -> what it said

    # -- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if not self._config().discovery.enabled:
            self.set_health("ok", "off")
            return
        await self._open()

    async def _open(self) -> bool:
        """Make the zeroconf instance, advertise, browse; a failure leaves discovery off until the next try."""
        cfg = self._config()
        interfaces = self._interfaces()
        self.addresses = self._current_addresses()
        absent = sorted(set(interfaces) - host_addresses())
        if absent:  # checked first: zeroconf leaks its socket when it fails to bind
            return self._unavailable(f"no interface has the address {', '.join(absent)}")
        try:
            self.zeroconf = AsyncZeroconf(interfaces=interfaces or InterfaceChoice.All)
            self.peers = PeerDirectory(self.zeroconf, self._id, cfg.web.port, self.addresses)
            await asyncio.gather(self._advertise(), self.peers.start())
            self._watch.start(self.zeroconf)
        except (OSError, ZeroconfError) as err:
            await self.stop()
            return self._unavailable(str(err))
        self._report()
        log.info("discovery: advertising %s at %s", self._infos[0].name, ", ".join(self.addresses) or "-")
        return True

    def _unavailable(self, why: str) -> bool:
        log.warning("discovery: unavailable (%s); courseware comes from the repository only, trying again", why)
        self.set_health("degraded", f"LAN discovery unavailable: {why}")
        return False

    async def run(self) -> None:
        if not self._config().discovery.enabled:
            return
        while True:
            await asyncio.sleep(ADDRESS_CHECK_S)
            if self.zeroconf is None:
                await self._open()  # the network was not there at start (no interface up yet)
            else:
                await self.check_addresses()

    async def stop(self) -> None:
        await self._watch.close()
        peers, self.peers = self.peers, None
        if peers is not None:
            await peers.close()
        zc, self.zeroconf = self.zeroconf, None
        if zc is not None:
            await zc.async_close()  # sends the goodbyes of every service registered on it
        self._infos = []
        self._seen.clear()

    # -- what the box advertises --------------------------------------------------------------------

    def _interfaces(self) -> list[str]:
        cfg = self._config()
        interfaces = list(cfg.discovery.interfaces)
        if not interfaces and cfg.web.host not in ("0.0.0.0", "::", ""):
            interfaces = [cfg.web.host]  # advertise only where the web door listens
        return interfaces

    def _current_addresses(self) -> list[str]:
        if self._host_addresses is not None:
            return sorted(self._host_addresses())
        return self._interfaces() or sorted(lan_addresses())

    def _properties(self) -> dict[str, str]:
        box = self._config().box
        return {
            "product": PRODUCT,
            "id": self._id,
            "name": _cut(box.name, TXT_VALUE_BYTES),
            "room": _cut(box.room, TXT_VALUE_BYTES),
            "version": __version__,
            "path": ADMIN_PATH,
        }

    def _service_infos(self) -> list[AsyncServiceInfo]:
        web = self._config().web
        ports = [(HTTP_TYPE, web.port)]
        if web.https_port and self._https_fingerprint() is not None:
            ports.append((HTTPS_TYPE, web.https_port))
        instance = instance_name(self._config().box.name, self._id)
        packed = [socket.inet_aton(a) for a in self.addresses if ":" not in a]
        return [
            AsyncServiceInfo(
                kind,
                f"{instance}.{kind}",
                addresses=packed,
                port=port,
                properties=self._properties(),
                server=f"{self._id}.local.",
            )
            for kind, port in ports
        ]

    async def _advertise(self) -> None:
        """Register the web services side by side: each one's probe for its name takes about a second."""
        assert self.zeroconf is not None
        self._infos = self._service_infos()
        await asyncio.gather(*(self.zeroconf.async_register_service(info) for info in self._infos))

    async def check_addresses(self) -> bool:
        """Announce every service again if the box's addresses changed since the last look; True when they did."""
        now = self._current_addresses()
        if now == self.addresses or self.zeroconf is None:
            return False
        log.info(
            "discovery: addresses now %s (were %s): announcing again", ", ".join(now) or "-", ", ".join(self.addresses)
        )
        self.addresses = now
        self._infos = self._service_infos()
        for info in self._infos:
            await self.zeroconf.async_update_service(info)
        if self.peers is not None:
            await self.peers.readdress(now)
        self._report()
        return True

    # -- the other boxes ------------------------------------------------------------------------

    def _found(self, service_type: str, name: str, info: AsyncServiceInfo) -> None:
        seen = self._parse(service_type, info)
        if seen is not None:
            self._seen[(service_type, name)] = seen
            self._report()

    def _lost(self, service_type: str, name: str) -> None:
        if self._seen.pop((service_type, name), None) is not None:
            self._report()

    def _parse(self, service_type: str, info: AsyncServiceInfo) -> Seen | None:
        """What another box's web service says of itself; None for this box and for what is not a classbox."""
        props = info.properties
        box_id = _text(props, "id")
        addresses = info.parsed_addresses()
        if _text(props, "product") != PRODUCT or not box_id or box_id == self._id or not addresses or not info.port:
            return None
        scheme = "https" if service_type == HTTPS_TYPE else "http"
        path = _text(props, "path") or ADMIN_PATH
        return Seen(
            box_id=box_id,
            scheme=scheme,
            url=service_url(scheme, addresses[0], info.port),
            name=_text(props, "name"),
            room=_text(props, "room"),
            version=_text(props, "version"),
            admin_path=path if path.startswith("/") else "/" + path,
            addresses=addresses,
        )

    def boxes(self) -> list[dict[str, Any]]:
        """The other boxes seen on the LAN now, one per box id, sorted by name: who, where, their admin page."""
        found: dict[str, dict[str, Any]] = {}
        for seen in sorted(self._seen.values(), key=lambda s: s.scheme):  # http first: https overrides the admin link
            entry = found.setdefault(
                seen.box_id,
                {
                    "id": seen.box_id,
                    "name": seen.name,
                    "room": seen.room,
                    "version": seen.version,
                    "url": "",
                    "admin_url": "",
                },
            )
            entry["addresses"] = sorted(set(entry.get("addresses", [])) | set(seen.addresses))
            if seen.scheme == "http":
                entry["url"] = seen.url
            entry["admin_url"] = seen.url + seen.admin_path
        return sorted(found.values(), key=lambda b: (b["name"].casefold(), b["id"]))

    def peer_urls(self) -> list[str]:
        """Base URLs of the courseware peers seen now."""
        return self.peers.urls() if self.peers is not None else []

    def _report(self) -> None:
        self.set_health(
            "ok",
            f"advertising at {', '.join(self.addresses) or '-'}",
            lan_boxes=len({s.box_id for s in self._seen.values()}),
        )
