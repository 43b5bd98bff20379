"""LAN peers: each box advertises itself by zeroconf (`_classbox._tcp`) and browses for the others.

The zeroconf instance is handed in by its owner (the daemon's discovery component): one per box,
shared with the box's other advertisements; `PeerDirectory` registers and browses on it but never
closes it.

A peer's chunk endpoint (`GET <peer>/api/chunks/<sha256>`) needs no trust: the puller checks every
chunk against the sha256 its verified index names. So a school downloads a course over its WAN
once and its other boxes copy it over the LAN. During a pull, `PullPeers` stops asking a peer that
lied (wrong bytes, too long) or stalled.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

import ifaddr
from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_classbox._tcp.local."
RESOLVE_TIMEOUT_MS = 3000


def lan_addresses() -> list[str]:
    """The box's IPv4 addresses other than loopback."""
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback:
                found.append(ip.ip)
    return found


class PeerDirectory:
    """Advertises this box's web port and keeps the base URLs of the other boxes seen on the LAN."""

    def __init__(self, zc: AsyncZeroconf, box_id: str, port: int, addresses: list[str]) -> None:
        self.box_id = box_id
        self.port = port
        self.addresses = list(addresses)
        self.name = f"{box_id}.{SERVICE_TYPE}"
        self._owner_zc = zc
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._peers: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def urls(self) -> list[str]:
        """Base URLs of the peers seen now (e.g. http://10.0.0.12:8080)."""
        return sorted(self._peers.values())

    async def start(self) -> None:
        """Register this box and start browsing."""
        self._zc = self._owner_zc
        self._info = self._service_info()
        await self._zc.async_register_service(self._info)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE_TYPE, handlers=[self._changed])
        log.info("courseware: advertising %s on port %d", self.name, self.port)

    def _service_info(self) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            self.name,
            addresses=[socket.inet_aton(a) for a in self.addresses if ":" not in a],
            port=self.port,
            properties={"id": self.box_id, "chunks": "/api/chunks/"},
            server=f"{self.box_id}.local.",
        )

    async def readdress(self, addresses: list[str]) -> None:
        """Announce this box again at `addresses` (the box's addresses changed)."""
        self.addresses = list(addresses)
        if self._zc is not None and self._info is not None:
            self._info = self._service_info()
            await self._zc.async_update_service(self._info)

    def _changed(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if name == self.name:
            return
        if state_change is ServiceStateChange.Removed:
            self._peers.pop(name, None)
            return
        task = asyncio.get_running_loop().create_task(self._resolve(service_type, name), name=f"peer-resolve:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        if self._zc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, RESOLVE_TIMEOUT_MS):
            return
        addresses = info.parsed_addresses()
        if addresses and info.port:
            host = addresses[0]
            self._peers[name] = f"http://{f'[{host}]' if ':' in host else host}:{info.port}"
            log.info("courseware: LAN peer %s at %s", name, self._peers[name])

    async def close(self) -> None:
        """Unregister and stop browsing (idempotent); the zeroconf instance stays its owner's."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        browser, self._browser = self._browser, None
        if browser is not None:
            await browser.async_cancel()
        zc, self._zc = self._zc, None
        if zc is not None and self._info is not None:
            await zc.async_unregister_service(self._info)
        self._info = None
        self._peers.clear()


class PullPeers:
    """One pull's view of its LAN peers: a peer is probed once before parallel use; one that lied or stalled is dropped.

    A peer is "proven" once it answered a request properly (a good chunk, or "not here"). Until then
    one request at a time probes it and the other workers wait for that answer, so a bad peer costs
    one request per pull, not one per worker or per chunk.
    """

    def __init__(self) -> None:
        self.dropped: dict[str, str] = {}  # peer -> why, for the rest of this pull
        self._proven: set[str] = set()
        self._probes: dict[str, asyncio.Event] = {}

    async def turn(self, peer: str) -> bool:
        """Wait until `peer` may be asked; False when it has been dropped."""
        while peer not in self._proven and peer not in self.dropped:
            probe = self._probes.get(peer)
            if probe is None:
                self._probes[peer] = asyncio.Event()
                return True  # this caller's request is the probe
            await probe.wait()
        return peer not in self.dropped

    def answered(self, peer: str, problem: str | None) -> None:
        """Record how `peer` answered: None for properly, else why it is dropped."""
        if problem is None:
            self._proven.add(peer)
        elif peer not in self.dropped:
            self.dropped[peer] = problem
            log.warning("courseware: LAN peer %s not asked again in this pull: %s", peer, problem)
        self.release(peer)

    def release(self, peer: str) -> None:
        """End a probe of `peer` without a verdict (cancelled): the next caller probes it."""
        probe = self._probes.pop(peer, None)
        if probe is not None:
            probe.set()
