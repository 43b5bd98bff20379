"""Who may act: the teacher (a panel address, the PIN checked with a lock-out, or a session it opened) and the IT staff.

Admin passwords are argon2 hashes in the box's database. A box without an admin account has no
default password: it makes a one-time setup code, keeps only its hash in the database and the code
itself in a 0600 file under the state directory (for the console, `classbox admin setup-code` and
the box's own screen), and spends it on the first admin account. Sessions are random 32-byte
tokens the box keeps only as SHA-256 hashes, in memory (a restart signs everyone out), each with
its own CSRF token, an idle expiry and an absolute one, measured on the monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.core.config import WebSection
from edge.core.db import table
from edge.core.errors import AccountError, NotAllowed, SetupClosed, TooManyAttempts
from edge.core.texts import N_
from sync.atomic import fsync_dir, write_atomic
from sync.clock import monotonic, wall

log = logging.getLogger(__name__)

PIN_FAILURES_ALLOWED = 5  # per address and window
PIN_FAILURES_PER_BOX = 20  # from all addresses together, per window
PIN_LOCKOUT_S = 300.0
USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
PASSWORD_MIN, PASSWORD_MAX = 10, 256
SETUP_CODE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"  # no 0/O, 1/I/L, 2/Z, 5/S, 8/B: read aloud and typed without doubt
SETUP_CODE_GROUPS, SETUP_CODE_GROUP_LEN = 3, 4
SETUP_CODE_FILE = "admin-setup-code"
SESSION_IDLE_S = 30 * 60.0
SESSION_MAX_S = 12 * 3600.0
SESSIONS_KEPT = 64  # the oldest idle session goes first past this
TEACHER_SESSION_S = 12 * 3600.0  # a browser that showed the PIN stays the teacher for a school day at most
TEACHER_SESSIONS_MAX = 256


class GateTexts(NamedTuple):
    """What a gate says, in plain words (marked for translation), for one kind of secret."""

    locked_address: str
    locked_box: str
    missing: str
    wrong: str


PIN_TEXTS = GateTexts(
    N_("too many wrong PINs from this address; try again in a few minutes"),
    N_("too many wrong PINs on this box; try again in a few minutes"),
    N_("a PIN is required"),
    N_("wrong PIN"),
)
LOGIN_TEXTS = GateTexts(
    N_("too many failed sign-ins from this address; try again in a few minutes"),
    N_("too many failed sign-ins on this box; try again in a few minutes"),
    N_("a username and a password are required"),
    N_("wrong username or password"),
)
SETUP_CODE_TEXTS = GateTexts(
    N_("too many wrong setup codes from this address; try again in a few minutes"),
    N_("too many wrong setup codes on this box; try again in a few minutes"),
    N_("the setup code is required"),
    N_("wrong setup code"),
)


class PinGate:
    """Checks a secret against an argon2 hash, locking an address (and the box) out after repeated failures.

    An attempt is counted before the slow verify is awaited, so parallel guesses cannot pass the
    limit; a right secret clears its address's count. Only attempts inside the window are
    kept, and the per-box limit bounds how many addresses the table can hold.
    """

    def __init__(
        self,
        per_address: int = PIN_FAILURES_ALLOWED,
        per_box: int = PIN_FAILURES_PER_BOX,
        window_s: float = PIN_LOCKOUT_S,
        clock: Callable[[], float] = monotonic,
        texts: GateTexts = PIN_TEXTS,
        verify: Callable[[str, str], bool] | None = None,
    ) -> None:
        self._per_address, self._per_box, self._window_s, self._clock = per_address, per_box, window_s, clock
        self._texts = texts
        self._verify = verify or argon2_matches
        self._attempts: dict[str, list[float]] = {}

    @property
    def window_s(self) -> float:
        """How long a failure counts (and a lock-out lasts at most)."""
        return self._window_s

    async def check(self, pin_hash: str, pin: str | None, address: str) -> None:
        """Raise NotAllowed unless `pin` matches `pin_hash` (TooManyAttempts while locked out)."""
        now = self._clock()
        self._prune(now)
        if len(self._attempts.get(address, ())) >= self._per_address:
            raise TooManyAttempts(self._texts.locked_address)
        if sum(map(len, self._attempts.values())) >= self._per_box:
            raise TooManyAttempts(self._texts.locked_box)
        if not pin_hash or not pin:
            raise NotAllowed(self._texts.missing)
        self._attempts.setdefault(address, []).append(now)
        if not await asyncio.to_thread(self._verify, pin_hash, pin):
            raise NotAllowed(self._texts.wrong)
        self._attempts.pop(address, None)

    def _prune(self, now: float) -> None:
        for address, times in list(self._attempts.items()):
            recent = [t for t in times if now - t < self._window_s]
            if recent:
                self._attempts[address] = recent
            else:
                del self._attempts[address]


def argon2_matches(stored: str, secret: str) -> bool:
    """True when `secret` matches the argon2 hash `stored` (slow on purpose: call it in a thread)."""
    try:
        return PasswordHasher().verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


def digest_matches(stored: str, secret: str) -> bool:
    """True when `secret`'s SHA-256 is `stored`: enough for a long random code, which needs no slow hash."""
    return hmac.compare_digest(stored.encode(), secret_digest(secret).encode())


def read_setup_code(state_dir: Path) -> str | None:
    """The setup code from its file under `state_dir` (gone once the first admin account exists)."""
    try:
        return (state_dir / SETUP_CODE_FILE).read_text().strip() or None
    except OSError:
        return None


def secret_digest(secret: str) -> str:
    """The SHA-256 (hex) a random token or code is kept as; the secret itself stays with its holder."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_pin(pin: str) -> str:
    """The argon2 hash to store in the config for `pin`."""
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ValueError("a PIN is 4 to 12 digits")
    return PasswordHasher().hash(pin)


def client_ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A client's address as an IP (an IPv4-mapped IPv6 one as its IPv4), or None when it is not one."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def is_panel_address(web: WebSection, address: str | None) -> bool:
    """True when `address` is one of `web`'s panel addresses (acts as the teacher)."""
    ip = client_ip(address)
    if ip is None:
        return False
    nets = (ipaddress.ip_network(n, strict=False) for n in web.panel_addresses)
    return any(ip in net for net in nets)


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
        self._sessions[secret_digest(token)] = (who, pin_hash, self._clock() + self._lifetime_s)
        return token

    def who(self, token: str | None, pin_hash: str) -> str | None:
        """Who the session `token` belongs to, or None when it is unknown, expired or from an older PIN."""
        if not token or len(token) > 128:
            return None
        entry = self._sessions.get(secret_digest(token))
        if entry is None or entry[1] != pin_hash or entry[2] <= self._clock():
            return None
        return entry[0]

    def close(self, token: str | None) -> bool:
        """End a session; False when there was no such session."""
        return bool(token) and self._sessions.pop(secret_digest(str(token)), None) is not None

    def _prune(self) -> None:
        now = self._clock()
        for key, (_, _, expiry) in list(self._sessions.items()):
            if expiry <= now:
                del self._sessions[key]


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


def normalise_username(user: str) -> str:
    """A username as typed, in the form it is kept: no surrounding spaces, lower case (phones capitalise)."""
    return user.strip().lower()


def check_username(user: str) -> str:
    """`user` if it is a valid admin username; raise AccountError saying what a username is."""
    if not USERNAME_RE.match(user):
        raise AccountError(N_("a username is 2 to 32 characters: a-z first, then a-z, 0-9, '.', '_' or '-'"))
    return user


def check_password(password: str) -> str:
    """`password` if it is long enough (and not absurdly long); raise AccountError otherwise."""
    if len(password) < PASSWORD_MIN:
        raise AccountError(N_("a password has at least 10 characters"))
    if len(password) > PASSWORD_MAX:
        raise AccountError(N_("a password has at most 256 characters"))
    return password


def new_setup_code() -> str:
    """A one-time setup code: 3 groups of 4 from an alphabet without look-alikes, e.g. `KX4M-9TQA-WD7C`."""
    groups = ("".join(secrets.choice(SETUP_CODE_ALPHABET) for _ in range(SETUP_CODE_GROUP_LEN)) for _ in range(3))
    return "-".join(groups)


def normalise_setup_code(code: str) -> str:
    """A typed code in the form it was issued: upper case, dashes between groups (typed spaces and dashes ignored)."""
    letters = re.sub(r"[\s-]", "", code).upper()
    size = SETUP_CODE_GROUP_LEN
    return "-".join(letters[i : i + size] for i in range(0, len(letters), size))


@dataclass
class AdminSession:
    """A signed-in admin: who, the CSRF token every change shows, when (monotonic) it began and was last used."""

    user: str
    csrf: str
    created: float
    seen: float


class AdminAccounts:
    """The admin accounts of the box, its first-boot setup code and the sessions signed in."""

    def __init__(
        self,
        state_dir: Path,
        clock: Callable[[], float] = monotonic,
        idle_s: Callable[[], float] = lambda: SESSION_IDLE_S,
    ) -> None:
        self.code_path = state_dir / SETUP_CODE_FILE
        self._clock, self._idle_s = clock, idle_s
        self._db: sqlite_utils.Database | None = None
        self._hasher = PasswordHasher()
        self._logins = PinGate(clock=lambda: self._clock(), texts=LOGIN_TEXTS)
        self._codes = PinGate(clock=lambda: self._clock(), texts=SETUP_CODE_TEXTS, verify=digest_matches)
        self._sessions: dict[str, AdminSession] = {}
        self._unknown_user_hash = ""  # verified against for an unknown username, so it costs the same time
        self._lock = asyncio.Lock()

    @property
    def lockout_s(self) -> float:
        """How long a locked-out address waits at most."""
        return self._logins.window_s

    # -- first boot -----------------------------------------------------------------------------

    def open(self, db: sqlite_utils.Database) -> None:
        """Use `db`; on a box without an admin account make sure a setup code exists (and its file)."""
        self._db = db
        if self.has_admin():
            self.code_path.unlink(missing_ok=True)
            return
        if self._stored_code_hash() and self.code_path.is_file():
            return
        code = new_setup_code()
        write_atomic(self.code_path, (code + "\n").encode(), mode=0o600)
        table(db, "admin_setup").insert({"id": 1, "code_hash": secret_digest(code), "created_at": wall()}, replace=True)
        log.warning("no admin account yet: the setup code is in %s (`classbox admin setup-code`)", self.code_path)

    @property
    def _database(self) -> sqlite_utils.Database:
        if self._db is None:
            raise RuntimeError("the accounts are not open")
        return self._db

    def has_admin(self) -> bool:
        """True once the box has at least one admin account."""
        return table(self._database, "admins").count > 0

    def _stored_code_hash(self) -> str:
        rows = list(table(self._database, "admin_setup").rows_where("id = 1"))
        return str(rows[0]["code_hash"]) if rows else ""

    def setup_code(self) -> str | None:
        """The one-time setup code while the box has no admin account (for local doors only), else None."""
        return None if self.has_admin() else read_setup_code(self.code_path.parent)

    async def create_first_admin(self, code: str, user: str, password: str, address: str) -> str:
        """Spend the setup code on the first admin account; raise SetupClosed once one exists."""
        user = check_username(normalise_username(user))
        check_password(password)
        async with self._lock:
            if self.has_admin():
                raise SetupClosed(N_("the box already has an admin account: sign in instead"))
            await self._codes.check(self._stored_code_hash(), normalise_setup_code(code), address)
            password_hash = await asyncio.to_thread(self._hasher.hash, password)
            with transaction(self._database) as conn:  # the account and the spent code: both or neither
                conn.execute(
                    "INSERT INTO admins (username, password_hash, created_at) VALUES (?, ?, ?)",
                    [user, password_hash, wall()],
                )
                conn.execute("DELETE FROM admin_setup WHERE id = 1")
            self.code_path.unlink(missing_ok=True)
            fsync_dir(self.code_path.parent)
        log.info("first admin account created: %s", user)
        return user

    # -- signing in -----------------------------------------------------------------------------

    async def login(self, user: str, password: str, address: str) -> tuple[str, AdminSession]:
        """A new session (its token and state) for the right username and password; NotAllowed otherwise."""
        user = normalise_username(user)
        stored = self._password_hash(user) or await self._unknown_hash()
        await self._logins.check(stored, password, address)
        if not self._password_hash(user):  # the dummy hash matched nothing real: never a session
            raise NotAllowed(LOGIN_TEXTS.wrong)
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = AdminSession(user=user, csrf=secrets.token_urlsafe(32), created=now, seen=now)
        self._keep(secret_digest(token), session)
        log.info("admin %s signed in from %s", user, address)
        return token, session

    # -- managing accounts (a signed-in admin) ---------------------------------------------------

    def accounts(self) -> list[dict[str, Any]]:
        """Every admin account: its username and when it was made (never a hash)."""
        rows = table(self._database, "admins").rows_where(order_by="username")
        return [{"user": row["username"], "created_at": row["created_at"]} for row in rows]

    async def add_admin(self, user: str, password: str) -> str:
        """Another admin account; AccountError for a bad or taken username or a short password."""
        user = check_username(normalise_username(user))
        check_password(password)
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        async with self._lock:
            if self._password_hash(user):
                raise AccountError(N_("that username is taken"))
            table(self._database, "admins").insert(
                {"username": user, "password_hash": password_hash, "created_at": wall()}
            )
        log.info("admin account created: %s", user)
        return user

    async def remove_admin(self, user: str, by: str) -> None:
        """Delete an account and end its sessions; never the last one, nor the caller's own."""
        async with self._lock:
            if not self._password_hash(user):
                raise AccountError(N_("no such admin account"))
            if user == by or table(self._database, "admins").count <= 1:
                raise AccountError(N_("an admin cannot delete their own account, nor the last one"))
            table(self._database, "admins").delete_where("username = ?", [user])
        self._end_sessions(user)
        log.info("admin account %s deleted by %s", user, by)

    async def change_password(self, user: str, current: str, new: str, address: str) -> None:
        """Set `user`'s password after checking the current one (counted like a sign-in); ends all their sessions."""
        check_password(new)
        await self._logins.check(self._password_hash(user) or await self._unknown_hash(), current, address)
        password_hash = await asyncio.to_thread(self._hasher.hash, new)
        table(self._database, "admins").update(user, {"password_hash": password_hash})
        self._end_sessions(user)
        log.info("admin %s changed their password", user)

    def _end_sessions(self, user: str) -> None:
        for key, session in list(self._sessions.items()):
            if session.user == user:
                del self._sessions[key]

    def _password_hash(self, user: str) -> str:
        if not USERNAME_RE.match(user):
            return ""
        rows = list(table(self._database, "admins").rows_where("username = ?", [user], limit=1))
        return str(rows[0]["password_hash"]) if rows else ""

    async def _unknown_hash(self) -> str:
        if not self._unknown_user_hash:
            self._unknown_user_hash = await asyncio.to_thread(self._hasher.hash, secrets.token_urlsafe(16))
        return self._unknown_user_hash

    def _keep(self, key: str, session: AdminSession) -> None:
        self._expire()
        while len(self._sessions) >= SESSIONS_KEPT:
            oldest = min(self._sessions, key=lambda k: self._sessions[k].seen)
            del self._sessions[oldest]
        self._sessions[key] = session

    def _expire(self) -> None:
        now = self._clock()
        for key, session in list(self._sessions.items()):
            if now - session.seen > self._idle_s() or now - session.created > SESSION_MAX_S:
                del self._sessions[key]

    def session(self, token: str | None) -> AdminSession | None:
        """The live session of `token` (now marked as used), or None: unknown, idle too long or too old."""
        if not token:
            return None
        self._expire()
        session = self._sessions.get(secret_digest(token))
        if session is not None:
            session.seen = self._clock()
        return session

    def logout(self, token: str) -> None:
        """End the session of `token` (nothing if it has already ended)."""
        self._sessions.pop(secret_digest(token), None)


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite3.Connection]:
    """One SQLite transaction on the box database (it runs in autocommit mode otherwise)."""
    with db.conn:
        db.conn.execute("BEGIN IMMEDIATE")
        yield db.conn


def csrf_matches(session: AdminSession, token: str | None) -> bool:
    """True when `token` is the session's CSRF token (compared in constant time)."""
    return bool(token) and hmac.compare_digest(session.csrf.encode(), (token or "").encode())
