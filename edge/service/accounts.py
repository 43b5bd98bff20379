"""Who may act: the teacher's credential (a panel address, the PIN checked with a lock-out, or a session it opened)."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import secrets
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.config import WebSection
from edge.errors import NotAllowed
from sync.clock import monotonic

PIN_FAILURES_ALLOWED = 5  # per address and window
PIN_FAILURES_PER_BOX = 20  # from all addresses together, per window
PIN_LOCKOUT_S = 300.0
TEACHER_SESSION_S = 12 * 3600.0  # a browser that showed the PIN stays the teacher for a school day at most
TEACHER_SESSIONS_MAX = 256


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


class TeacherSessions:
    """Browsers that showed the teacher PIN once: random tokens (kept as their sha256), each valid for a school day.

    A session is bound to the PIN hash it was opened under: setting a new PIN ends every session.
    """

    def __init__(self, lifetime_s: float = TEACHER_SESSION_S, clock: Callable[[], float] = monotonic) -> None:
        self._lifetime_s, self._clock = lifetime_s, clock
        self._sessions: dict[str, tuple[str, str, float]] = {}  # sha256(token) -> (who, pin hash, expiry)

    def open(self, who: str, pin_hash: str) -> str:
        """A new session token for `who` (the oldest session goes when there are too many)."""
        self._prune()
        while len(self._sessions) >= TEACHER_SESSIONS_MAX:
            del self._sessions[next(iter(self._sessions))]
        token = secrets.token_urlsafe(32)
        self._sessions[_digest(token)] = (who, pin_hash, self._clock() + self._lifetime_s)
        return token

    def who(self, token: str | None, pin_hash: str) -> str | None:
        """Who the session `token` belongs to, or None when it is unknown, expired or from an older PIN."""
        if not token or len(token) > 128:
            return None
        entry = self._sessions.get(_digest(token))
        if entry is None or entry[1] != pin_hash or entry[2] <= self._clock():
            return None
        return entry[0]

    def close(self, token: str | None) -> bool:
        """End a session; False when there was no such session."""
        return bool(token) and self._sessions.pop(_digest(str(token)), None) is not None

    def _prune(self) -> None:
        now = self._clock()
        for key, (_, _, expiry) in list(self._sessions.items()):
            if expiry <= now:
                del self._sessions[key]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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
    """The teacher's credential: a panel address acts as the teacher; anyone else shows the PIN (or its session)."""

    def __init__(self, web: Callable[[], WebSection], pins: PinGate | None = None) -> None:
        self._web = web  # read per request: a saved setting applies without a restart
        self._pins = pins or PinGate()
        self._sessions = TeacherSessions()

    async def authorize(self, address: str | None, pin: str | None, session: str | None = None) -> str:
        """Who is acting as the teacher; raise NotAllowed without the panel address, a teacher session or the PIN."""
        web = self._web()
        if is_panel_address(web, address):
            return "panel"
        who = self._sessions.who(session, web.teacher_pin_hash)
        if who is not None and pin is None:
            return who
        await self._pins.check(web.teacher_pin_hash, pin, address or "?")
        return f"teacher@{address}"

    async def open_session(self, address: str | None, pin: str | None) -> str:
        """A session token for a browser that shows the PIN once (the PIN's lock-out applies); raise NotAllowed."""
        who = await self.authorize(address, pin)
        return self._sessions.open(who, self._web().teacher_pin_hash)

    def close_session(self, session: str | None) -> bool:
        """The teacher left this browser: its session no longer counts; False when it had none."""
        return self._sessions.close(session)
