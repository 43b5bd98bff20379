"""Who may act: the teacher's credential (a panel address, or the PIN checked with a lock-out)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.config import WebSection
from edge.errors import NotAllowed
from sync.clock import monotonic

PIN_FAILURES_ALLOWED = 5  # per address and window
PIN_FAILURES_PER_BOX = 20  # from all addresses together, per window
PIN_LOCKOUT_S = 300.0


class PinGate:
    """Checks a PIN against an argon2 hash, locking an address (and the box) out after repeated failures.

    An attempt is counted before the slow verify is awaited, so parallel guesses cannot pass the
    limit; a right PIN clears its address's count. Only attempts inside the window are
    kept, and the per-box limit bounds how many addresses the table can hold.
    """

    def __init__(
        self,
        per_address: int = PIN_FAILURES_ALLOWED,
        per_box: int = PIN_FAILURES_PER_BOX,
        window_s: float = PIN_LOCKOUT_S,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self._hasher = PasswordHasher()
        self._per_address, self._per_box, self._window_s, self._clock = per_address, per_box, window_s, clock
        self._attempts: dict[str, list[float]] = {}

    async def check(self, pin_hash: str, pin: str | None, address: str) -> None:
        """Raise NotAllowed unless `pin` matches `pin_hash`."""
        now = self._clock()
        self._prune(now)
        if len(self._attempts.get(address, ())) >= self._per_address:
            raise NotAllowed("too many wrong PINs from this address; try again in a few minutes")
        if sum(map(len, self._attempts.values())) >= self._per_box:
            raise NotAllowed("too many wrong PINs on this box; try again in a few minutes")
        if not pin_hash or not pin:
            raise NotAllowed("a PIN is required")
        self._attempts.setdefault(address, []).append(now)
        if not await asyncio.to_thread(self._verify, pin_hash, pin):
            raise NotAllowed("wrong PIN")
        self._attempts.pop(address, None)

    def _prune(self, now: float) -> None:
        for address, times in list(self._attempts.items()):
            recent = [t for t in times if now - t < self._window_s]
            if recent:
                self._attempts[address] = recent
            else:
                del self._attempts[address]

    def _verify(self, pin_hash: str, pin: str) -> bool:
        try:
            return self._hasher.verify(pin_hash, pin)
        except (VerificationError, InvalidHashError):
            return False


def hash_pin(pin: str) -> str:
    """The argon2 hash to store in the config for `pin`."""
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ValueError("a PIN is 4 to 12 digits")
    return PasswordHasher().hash(pin)


def is_panel_address(web: WebSection, address: str | None) -> bool:
    """True when `address` is one of `web`'s panel addresses (acts as the teacher)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    nets = (ipaddress.ip_network(n, strict=False) for n in web.panel_addresses)
    return any(ip in net for net in nets)


class TeacherAccess:
    """The teacher's credential: a panel address acts as the teacher; anyone else shows the PIN."""

    def __init__(self, web: Callable[[], WebSection], pins: PinGate | None = None) -> None:
        self._web = web  # read per request: a saved setting applies without a restart
        self._pins = pins or PinGate()

    async def authorize(self, address: str | None, pin: str | None) -> str:
        """Who is acting as the teacher; raise NotAllowed without the panel address or the PIN."""
        web = self._web()
        if is_panel_address(web, address):
            return "panel"
        await self._pins.check(web.teacher_pin_hash, pin, address or "?")
        return f"teacher@{address}"
