"""LAN peers: each box advertises itself by zeroconf (`_classbox._tcp`) and browses for the others.

The zeroconf instance is handed in by its owner (the daemon's discovery component): one per box,
shared with the box's other advertisements; `PeerDirectory` registers and browses on it but never
closes it. `ServiceWatch` is the browse-and-resolve loop it shares with the daemon's discovery.

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
from collections.abc import Callable

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


def service_url(scheme: str, host: str, port: int) -> str:
    """The base URL of a service at `host` (an IPv6 address in brackets) and `port`."""
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


class ServiceWatch:
    """Browses zeroconf service types: `found` gets each service that appears, resolved; `lost` each one that goes.

    `skip` is this box's own instance name, never reported. A resolve asks the LAN, so each runs in a
    task the watch owns; `close()` stops the browser and cancels them. The zeroconf instance stays
    its owner's.
    """

    def __init__(
        self,
        types: list[str],
        found: Callable[[str, str, AsyncServiceInfo], None],
        lost: Callable[[str, str], None],
        *,
        task_prefix: str,
        skip: str = "",
    ) -> None:
        self.types = list(types)
        self._found = found
        self._lost = lost
        self._task_prefix = task_prefix
        self._skip = skip
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, zc: AsyncZeroconf) -> None:
        """Start browsing on `zc`."""
        self._zc = zc
        self._browser = AsyncServiceBrowser(zc.zeroconf, self.types, handlers=[self._changed])

    def _changed(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if self._zc is None or name == self._skip:
            return
        if state_change is ServiceStateChange.Removed:
            self._lost(service_type, name)
            return
        task = asyncio.get_running_loop().create_task(
            self._resolve(self._zc, service_type, name), name=f"{self._task_prefix}:{name}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, zc: AsyncZeroconf, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if await info.async_request(zc.zeroconf, RESOLVE_TIMEOUT_MS) and self._zc is not None:
            self._found(service_type, name, info)

    async def close(self) -> None:
        """Stop browsing and cancel the resolves under way (idempotent); nothing is reported after it."""
        self._zc = None  # first: a change the browser reports while it stops starts no new resolve
        browser, self._browser = self._browser, None
        if browser is not None:
            await browser.async_cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class PeerDirectory:
    """Advertises this box's web port and keeps the base URLs of the other boxes seen on the LAN."""

    def __init__(self, zc: AsyncZeroconf, box_id: str, port: int, addresses: list[str]) -> None:
        self.box_id = box_id
        self.port = port
        self.addresses = list(addresses)
        self.name = f"{box_id}.{SERVICE_TYPE}"
        self._owner_zc = zc
        self._zc: AsyncZeroconf | None = None
        self._watch = ServiceWatch([SERVICE_TYPE], self._found, self._lost, task_prefix="peer-resolve", skip=self.name)
        self._info: AsyncServiceInfo | None = None
        self._peers: dict[str, str] = {}

    def urls(self) -> list[str]:
        """Base URLs of the peers seen now (e.g. http://10.0.0.12:8080)."""
        return sorted(self._peers.values())

    async def start(self) -> None:
        """Register this box and start browsing."""
        self._zc = self._owner_zc
        self._info = self._service_info()
        await self._zc.async_register_service(self._info)
        self._watch.start(self._zc)
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

    def _found(self, service_type: str, name: str, info: AsyncServiceInfo) -> None:
        addresses = info.parsed_addresses()
        if addresses and info.port:
            self._peers[name] = service_url("http", addresses[0], info.port)
            log.info("courseware: LAN peer %s at %s", name, self._peers[name])

    def _lost(self, service_type: str, name: str) -> None:
        self._peers.pop(name, None)

    async def close(self) -> None:
        """Unregister and stop browsing (idempotent); the zeroconf instance stays its owner's."""
        await self._watch.close()
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
