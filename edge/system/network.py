"""Network: the box's addresses and routes, and static/DHCP settings through systemd-networkd, undone unless confirmed.

A change writes one `.network` file (`<console.network_dir>/10-classbox-<interface>.network`,
atomically) and asks networkd to reload (`networkctl reload`, then `reconfigure <interface>`).
It stays pending until `confirm()`; the time-out (`console.net_confirm_s`) brings back the file that was
there before (or removes ours) and reloads again, as does an interface left without an address once
it has settled (the box would be unreachable). Reading addresses needs no tool: the kernel's
/proc files and an ioctl answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import re
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.core.config import ConsoleSection
from edge.core.errors import NotAllowed
from edge.core.texts import N_
from sync.atomic import write_atomic

log = logging.getLogger(__name__)

SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
INTERFACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$")
SETTLE_S = 5.0  # how long an interface may take to get its address before the box counts as unreachable
COMMAND_TIMEOUT_S = 20.0
NETWORKCTL = "networkctl"  # found on PATH
PROC_ROUTE = Path("/proc/net/route")
PROC_ROUTE6 = Path("/proc/net/ipv6_route")
PROC_INET6 = Path("/proc/net/if_inet6")


class NetworkError(Exception):
    """A network change refused or failed; the message is an N_()-marked text a person reads."""


def interfaces() -> list[str]:
    """The names of this machine's network interfaces, loopback left out."""
    return sorted(name for _, name in socket.if_nameindex() if name != "lo")


def _ipv4(name: str) -> str | None:
    packed = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            address = socket.inet_ntoa(fcntl.ioctl(sock.fileno(), SIOCGIFADDR, packed)[20:24])
            mask = socket.inet_ntoa(fcntl.ioctl(sock.fileno(), SIOCGIFNETMASK, packed)[20:24])
        except OSError:
            return None
    return str(ipaddress.ip_interface(f"{address}/{mask}"))


def _ipv6() -> list[tuple[str, str]]:
    found = []
    try:
        lines = PROC_INET6.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) == 6 and parts[5] != "lo" and not parts[0].startswith("fe80"):
            address = ipaddress.ip_address(bytes.fromhex(parts[0]))
            found.append((parts[5], f"{address}/{int(parts[2], 16)}"))
    return found


def addresses() -> list[tuple[str, str]]:
    """(interface, address/prefix) of every address but loopback and IPv6 link-local ones."""
    found = [(name, ip) for name in interfaces() if (ip := _ipv4(name)) is not None]
    return found + _ipv6()


def has_default_route(route: Path = PROC_ROUTE, route6: Path = PROC_ROUTE6) -> bool:
    """True when the kernel has a default route (IPv4 or IPv6)."""
    with contextlib.suppress(OSError):
        for line in route.read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) > 2 and parts[1] == "00000000":
                return True
    with contextlib.suppress(OSError):
        for line in route6.read_text().splitlines():
            parts = line.split()
            if len(parts) > 9 and parts[0] == "0" * 32 and parts[1] == "00" and parts[9] != "lo":
                return True
    return False


def gateways(route: Path = PROC_ROUTE) -> list[tuple[str, str]]:
    """(interface, gateway) of the IPv4 default routes."""
    found = []
    with contextlib.suppress(OSError):
        for line in route.read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) > 2 and parts[1] == "00000000":
                found.append((parts[0], socket.inet_ntoa(struct.pack("<I", int(parts[2], 16)))))
    return found


def dns_servers(resolv: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The name servers the box asks."""
    with contextlib.suppress(OSError):
        return [line.split()[1] for line in resolv.read_text().splitlines() if line.startswith("nameserver ")]
    return []


@dataclass(frozen=True)
class Wanted:
    """Settings for one interface: DHCP, or a static address with an optional gateway and DNS servers."""

    interface: str
    dhcp: bool
    address: str = ""
    gateway: str = ""
    dns: tuple[str, ...] = ()

    def network_file(self) -> str:
        """The systemd.network(5) file for these settings."""
        lines = ["# Written by the classbox console (`net set`).", "[Match]", f"Name={self.interface}", "", "[Network]"]
        if self.dhcp:
            lines.append("DHCP=yes")
        else:
            lines.append(f"Address={self.address}")
            lines += [f"Gateway={self.gateway}"] if self.gateway else []
        lines += [f"DNS={server}" for server in self.dns]
        return "\n".join(lines) + "\n"


USAGE = N_("usage: net set IFACE dhcp | net set IFACE static ADDRESS/PREFIX [gateway GW] [dns SERVER,...]")
BAD_ADDRESS = N_("not a valid address: write ADDRESS/PREFIX, e.g. 192.168.1.20/24 gateway 192.168.1.1")


def parse_wanted(words: list[str], known: list[str]) -> Wanted:
    """`IFACE dhcp` or `IFACE static ADDRESS/PREFIX [gateway GW] [dns A,B]`; raise NetworkError saying what is wrong."""
    if len(words) < 2:
        raise NetworkError(USAGE)
    name, mode, rest = words[0], words[1].lower(), words[2:]
    if not INTERFACE_RE.match(name) or name not in known:
        raise NetworkError(N_("no such interface; `net` lists them"))
    if mode == "dhcp" and not rest:
        return Wanted(name, dhcp=True)
    if mode != "static" or not rest:
        raise NetworkError(N_("say dhcp, or static with an address such as 192.168.1.20/24"))
    try:
        return _static(name, rest)
    except ValueError as err:
        raise NetworkError(BAD_ADDRESS) from err


def _static(name: str, rest: list[str]) -> Wanted:
    """A static address from `ADDRESS/PREFIX [gateway GW] [dns A,B]` (ValueError when any part is wrong)."""
    if "/" not in rest[0] or len(rest[1:]) % 2:
        raise ValueError(rest)
    address = ipaddress.ip_interface(rest[0])
    options = dict(zip(rest[1::2], rest[2::2], strict=True))
    if set(options) - {"gateway", "dns"}:
        raise ValueError(rest)
    gateway = str(ipaddress.ip_address(options["gateway"])) if "gateway" in options else ""
    dns = tuple(str(ipaddress.ip_address(s)) for s in options.get("dns", "").split(",") if s)
    return Wanted(name, dhcp=False, address=str(address), gateway=gateway, dns=dns)


@dataclass(frozen=True)
class Shown:
    """The network as `net` shows it."""

    interfaces: list[str]
    addresses: list[tuple[str, str]]
    gateways: list[tuple[str, str]]
    dns: list[str]
    pending: str  # the .network file waiting for `net confirm`, or ""
    last_rollback: str  # why the last change was undone, or ""


@dataclass
class Pending:
    """A change waiting to be confirmed: what was there before (None: no file of ours)."""

    wanted: Wanted
    path: Path
    before: bytes | None
    deadline_s: float


class Network:
    """Applies network settings through systemd-networkd; one pending change at a time, owned here with its time-out."""

    def __init__(self, config: Callable[[], ConsoleSection], settle_s: float = SETTLE_S) -> None:
        self._config = config
        self._settle_s = settle_s
        self.pending: Pending | None = None
        self._watch: asyncio.Task[None] | None = None
        self.last_rollback = ""  # why the last change was undone, for `net`

    def show(self) -> Shown:
        """Addresses, gateways, DNS servers, and the change waiting to be confirmed."""
        pending = self.pending
        return Shown(
            interfaces(),
            addresses(),
            gateways(),
            dns_servers(),
            pending.wanted.network_file() if pending else "",
            self.last_rollback,
        )

    def path(self, interface: str) -> Path:
        """The `.network` file the console writes for `interface`."""
        return Path(self._config().network_dir) / f"10-classbox-{interface}.network"

    async def apply(self, wanted: Wanted) -> float:
        """Write and load `wanted`; it is undone unless confirmed within the time-out (returned, in seconds)."""
        if self.pending is not None:
            raise NetworkError(N_("a change is waiting: `net confirm` it or `net undo` it first"))
        path = self.path(wanted.interface)
        before = await asyncio.to_thread(_read, path)
        timeout = self._config().net_confirm_s
        await asyncio.to_thread(_write, path, wanted.network_file().encode())
        self.pending = Pending(wanted, path, before, asyncio.get_running_loop().time() + timeout)
        log.warning(
            "network change on %s written to %s; undone in %.0f s unless confirmed", wanted.interface, path, timeout
        )
        try:
            await self._reload(wanted.interface)
        except NetworkError:
            if os.geteuid() == 0:
                await self.undo("networkd refused the change")
                raise
            # Unprivileged (the box image's daemon): networkd will not take a reload from this user, the
            # system applies the file (classbox-network-reload.path); the address check below still guards it.
            log.info("networkctl refused an unprivileged reload: the system applies %s", path)
        self._watch = asyncio.create_task(self._expire(timeout), name=f"network-rollback:{wanted.interface}")
        return timeout

    def confirm(self) -> Wanted:
        """Keep the pending change (raise NetworkError when there is none)."""
        pending = self.pending
        if pending is None:
            raise NetworkError(N_("no change is waiting to be confirmed"))
        self.pending = None
        self._cancel_watch()
        log.warning("network change on %s confirmed", pending.wanted.interface)
        return pending.wanted

    async def undo(self, reason: str = "undone from the console") -> bool:
        """Bring back the settings from before the pending change; False when nothing was pending."""
        pending, self.pending = self.pending, None
        if pending is None:
            return False
        if self._watch is not None and self._watch is not asyncio.current_task():
            self._cancel_watch()
        if pending.before is None:
            await asyncio.to_thread(_remove, pending.path)
        else:
            await asyncio.to_thread(_write, pending.path, pending.before)
        self.last_rollback = reason
        log.warning("network change on %s rolled back: %s", pending.wanted.interface, reason)
        with contextlib.suppress(NetworkError):
            await self._reload(pending.wanted.interface)
        return True

    async def close(self) -> None:
        """Undo an unconfirmed change (the one who made it is gone) and stop the time-out (idempotent)."""
        await self.undo("the console stopped before the change was confirmed")
        self._cancel_watch()

    def _cancel_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    async def _expire(self, wait_s: float) -> None:
        await asyncio.sleep(min(self._settle_s, wait_s))
        pending = self.pending
        if pending is not None and not any(name == pending.wanted.interface for name, _ in addresses()):
            await self.undo("the interface got no address: the box would be unreachable")
            return
        await asyncio.sleep(max(0.0, wait_s - self._settle_s))
        await self.undo("not confirmed in time")

    async def _reload(self, interface: str) -> None:
        for args in (["reload"], ["reconfigure", interface]):
            await _run([NETWORKCTL, *args])


async def _run(argv: list[str]) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
    except OSError as err:
        log.warning("cannot run %s: %s", argv[0], err)
        raise NetworkError(N_("networkctl cannot be run on this box")) from err
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            _, err_output = await proc.communicate()
    except TimeoutError as err:
        proc.kill()
        await proc.wait()
        raise NetworkError(N_("networkd did not answer in time")) from err
    if proc.returncode != 0:
        log.warning("%s failed (%s): %s", " ".join(argv), proc.returncode, err_output.decode(errors="replace")[:300])
        raise NetworkError(N_("networkd refused the change"))


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o644)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def require_confirmable(network: Network) -> None:
    """Raise NotAllowed when the pending change left the box without an address (confirming would strand it)."""
    pending = network.pending
    if pending is not None and not any(name == pending.wanted.interface for name, _ in addresses()):
        raise NotAllowed(N_("the interface has no address: confirming would leave the box unreachable"))
