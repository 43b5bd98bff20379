"""Upload recordings and board notes: tus 1.0 resumable uploads from a persistent outbox.

Every file to upload is a row in the outbox's own SQLite file. The upload URL the server hands
out is committed to that row before any data is sent, so a restart (or a power cut) resumes
from the server's offset (HEAD) instead of starting over. The server's `creation` extension
makes the upload; each PATCH carries `Upload-Checksum` (sha1, for servers with the `checksum`
extension) and the whole file's sha256 travels in the metadata so the receiving side can check
the file end to end (a server answers 460 when it does not match). Each chunk first takes its
bytes from an optional WAN budget.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import aiohttp
import aiotus.common
import aiotus.core
import aiotus.creation
import yarl

from sync.clock import wall
from sync.errors import BudgetExhausted, UploadError

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
CHECKSUM_MISMATCH = 460  # tus checksum extension
GONE = (404, 410)  # the upload expired or was removed: create it anew
CHECKSUM_RESTARTS = 3  # whole-file restarts after 460 before backing off
PENDING = ("queued", "sending")


class Budget(Protocol):
    """The WAN budget every chunk goes through (sync/budget.py implements it)."""

    async def take(self, nbytes: int) -> None:
        """Wait until `nbytes` may cross the WAN, then count them."""


@dataclass(frozen=True)
class OutboxItem:
    """One file in the outbox and how far its upload got."""

    id: int
    ref: str  # what it belongs to (a recording id)
    kind: str  # "recording" | "ink"
    path: str
    size: int
    sha256: str
    metadata: dict[str, str]
    state: str  # queued | sending | done | failed
    upload_url: str | None = None
    offset: int = 0
    attempts: int = 0
    error: str = ""
    queued_at: float = 0.0
    done_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form doors and events carry."""
        return asdict(self)


@dataclass
class OutboxStats:
    """Counts for health and metrics."""

    queued: int = 0
    done: int = 0
    failed: int = 0
    bytes_pending: int = 0
    bytes_sent: int = 0
    retries: int = 0
    by_state: dict[str, int] = field(default_factory=dict)


OutboxListener = Callable[[str, OutboxItem], None]  # event: progress | done | failed | retry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ref TEXT NOT NULL,
  kind TEXT NOT NULL,
  path TEXT NOT NULL,
  size INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  metadata TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'queued',
  upload_url TEXT,
  offset INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  queued_at REAL NOT NULL,
  done_at REAL,
  UNIQUE (ref, kind)
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state);
"""


class _Refused(Exception):
    """The server answered with a status we retry later (5xx, 401, 403, ...)."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"server answered {status} to {what}")
        self.status = status


class _Restart(Exception):
    """The upload must be created anew (expired, removed, or refused as corrupt)."""


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks (call in a thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Outbox:
    """A persistent queue of files and the tus client that delivers them, one at a time."""

    def __init__(
        self,
        db_path: Path,
        url: str,
        *,
        chunk_size: int = 1 << 20,
        token: str = "",
        budget: Budget | None = None,
        retry_first_s: float = 1.0,
        retry_max_s: float = 300.0,
        timeout_s: float = 60.0,
    ) -> None:
        self.url = yarl.URL(url)
        self.chunk_size = chunk_size
        self.budget = budget
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        self._listeners: list[OutboxListener] = []
        self._wake: asyncio.Event | None = None
        self.bytes_sent = 0
        self.retries = 0
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an upload URL must survive a power cut
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the queue's database (idempotent)."""
        self._db.close()

    def listen(self, listener: OutboxListener) -> None:
        """Call `listener(event, item)` on progress, done, failed and retry."""
        self._listeners.append(listener)

    # -- the queue ------------------------------------------------------------------------------

    def add(self, path: Path, *, ref: str, kind: str, sha256: str, metadata: dict[str, str]) -> OutboxItem:
        """Queue a finished file (idempotent per ref and kind: the existing row is returned)."""
        existing = self.find(ref, kind)
        if existing is not None:
            return existing
        meta = {**metadata, "sha256": sha256, "filename": path.name, "kind": kind}
        size = path.stat().st_size
        self._db.execute(
            "INSERT INTO outbox (ref, kind, path, size, sha256, metadata, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ref, kind, str(path), size, sha256, json.dumps(meta), wall()),
        )
        if self._wake is not None:
            self._wake.set()
        item = self.find(ref, kind)
        assert item is not None
        log.info("queued %s %s (%d bytes) for upload", kind, ref, size)
        return item

    def find(self, ref: str, kind: str) -> OutboxItem | None:
        """The row for a file, if queued."""
        row = self._db.execute("SELECT * FROM outbox WHERE ref = ? AND kind = ?", (ref, kind)).fetchone()
        return self._item(row) if row else None

    def get(self, item_id: int) -> OutboxItem:
        """A row by id."""
        row = self._db.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise KeyError(item_id)
        return self._item(row)

    def items(self, ref: str | None = None) -> list[OutboxItem]:
        """Every row (of one ref, when given), oldest first."""
        sql = "SELECT * FROM outbox"
        args: tuple[str, ...] = ()
        if ref is not None:
            sql, args = sql + " WHERE ref = ?", (ref,)
        return [self._item(row) for row in self._db.execute(sql + " ORDER BY id", args)]

    def pending(self) -> list[OutboxItem]:
        """Rows still to deliver, oldest first."""
        rows = self._db.execute("SELECT * FROM outbox WHERE state IN (?, ?) ORDER BY id", PENDING)
        return [self._item(row) for row in rows]

    def stats(self) -> OutboxStats:
        """How much is waiting, delivered and refused."""
        stats = OutboxStats(bytes_sent=self.bytes_sent, retries=self.retries)
        for row in self._db.execute("SELECT state, COUNT(*), SUM(size - offset) FROM outbox GROUP BY state"):
            state, count, left = row[0], row[1], row[2] or 0
            stats.by_state[state] = count
            if state in PENDING:
                stats.queued += count
                stats.bytes_pending += left
        stats.done = stats.by_state.get("done", 0)
        stats.failed = stats.by_state.get("failed", 0)
        return stats

    def retry_failed(self) -> int:
        """Queue refused rows again (e.g. after a technician fixed the file or the server); how many."""
        cursor = self._db.execute("UPDATE outbox SET state = 'queued', error = '' WHERE state = 'failed'")
        if self._wake is not None:
            self._wake.set()
        return cursor.rowcount

    def _item(self, row: sqlite3.Row) -> OutboxItem:
        data = dict(row)
        data["metadata"] = json.loads(data["metadata"])
        return OutboxItem(**data)

    def _update(self, item: OutboxItem, **changes: Any) -> OutboxItem:
        columns = ", ".join(f"{key} = ?" for key in changes)
        self._db.execute(f"UPDATE outbox SET {columns} WHERE id = ?", (*changes.values(), item.id))
        return self.get(item.id)

    def _emit(self, event: str, item: OutboxItem) -> None:
        for listener in self._listeners:
            try:
                listener(event, item)
            except Exception:
                log.exception("outbox listener failed on %s", event)

    # -- delivery -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver queued files forever, oldest first; sleep until something is queued."""
        self._wake = asyncio.Event()
        async with self._session() as session:
            while True:
                self._wake.clear()
                queue = self.pending()
                if not queue:
                    await self._wake.wait()
                    continue
                await self._deliver(session, queue[0])

    async def drain(self) -> None:
        """Deliver everything queued now, then return (retrying failures with backoff meanwhile)."""
        async with self._session() as session:
            while queue := self.pending():
                await self._deliver(session, queue[0])

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=self._timeout)

    @property
    def _headers(self) -> dict[str, str]:
        headers = {"Tus-Resumable": TUS_VERSION}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def _deliver(self, session: aiohttp.ClientSession, item: OutboxItem) -> None:
        """Upload one row until it is done or refused for good; network trouble means retry with backoff."""
        while True:
            item = self._update(item, state="sending")
            try:
                item = await self._upload(session, item)
            except UploadError as err:
                log.error("upload of %s %s refused for good: %s", item.kind, item.ref, err)  # noqa: TRY400
                self._emit("failed", self._update(item, state="failed", error=str(err)))
                return
            except (
                aiohttp.ClientError,
                aiotus.common.ProtocolError,
                TimeoutError,
                BudgetExhausted,
                _Refused,
                _Restart,
            ) as err:
                item = self._update(item, state="queued", attempts=item.attempts + 1, error=_describe(err))
                self.retries += 1
                delay = min(self.retry_first_s * 2 ** min(item.attempts - 1, 20), self.retry_max_s)
                log.warning("upload of %s %s: %s; retrying in %.1f s", item.kind, item.ref, item.error, delay)
                self._emit("retry", item)
                await asyncio.sleep(delay)
                continue
            item = self._update(item, state="done", error="", done_at=wall())
            log.info("uploaded %s %s (%d bytes) to %s", item.kind, item.ref, item.size, item.upload_url)
            self._emit("done", item)
            return

    async def _upload(self, session: aiohttp.ClientSession, item: OutboxItem) -> OutboxItem:
        path = Path(item.path)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except OSError as err:
            raise UploadError(f"{path}: cannot read the file: {err.strerror}") from err
        try:
            return await self._send_file(session, item, handle)
        finally:
            await asyncio.to_thread(handle.close)

    async def _send_file(self, session: aiohttp.ClientSession, item: OutboxItem, handle: BinaryIO) -> OutboxItem:
        restarts = 0
        while True:
            try:
                return await self._send_from_offset(session, item, handle)
            except _Restart as err:
                restarts += 1
                log.warning("upload of %s %s starts over: %s", item.kind, item.ref, err)
                if str(err).startswith("checksum"):
                    await self._check_unchanged(item)
                    if restarts >= CHECKSUM_RESTARTS:
                        raise
                item = self._update(item, upload_url=None, offset=0)

    async def _send_from_offset(self, session: aiohttp.ClientSession, item: OutboxItem, handle: BinaryIO) -> OutboxItem:
        if item.upload_url is None:
            item = await self._create(session, item, handle)
        url = yarl.URL(item.upload_url or "")
        offset = await self._server_offset(session, url, item)
        while offset < item.size:
            chunk = await asyncio.to_thread(_read_at, handle, offset, self.chunk_size)
            if self.budget is not None:
                await self.budget.take(len(chunk))
            offset = await self._patch(session, url, item, offset, chunk)
            item = self._update(item, offset=offset)
            self._emit("progress", item)
        return item

    async def _create(self, session: aiohttp.ClientSession, item: OutboxItem, handle: BinaryIO) -> OutboxItem:
        """POST the upload and commit its URL before any data goes (a restart then resumes it)."""
        metadata = {key: value.encode() for key, value in item.metadata.items()}
        try:
            location = await aiotus.creation.create(session, self.url, handle, metadata, headers=self._headers)
        except aiohttp.ClientResponseError as err:
            if err.status == 413:
                raise UploadError(f"the server refuses a file of {item.size} bytes (413)") from err
            raise _Refused(err.status, "creating the upload") from err
        url = self.url.join(location) if not location.is_absolute() else location
        log.info("created upload %s for %s %s", url, item.kind, item.ref)
        return self._update(item, upload_url=str(url), offset=0)

    async def _server_offset(self, session: aiohttp.ClientSession, url: yarl.URL, item: OutboxItem) -> int:
        try:
            offset = await aiotus.core.offset(session, url, headers=self._headers)
        except aiohttp.ClientResponseError as err:
            if err.status in GONE:
                raise _Restart(f"the server no longer has {url} ({err.status})") from err
            raise _Refused(err.status, "HEAD") from err
        if offset > item.size:
            raise _Restart(f"the server holds {offset} bytes of a {item.size}-byte file")
        return offset

    async def _patch(
        self, session: aiohttp.ClientSession, url: yarl.URL, item: OutboxItem, offset: int, chunk: bytes
    ) -> int:
        """Send one chunk; the server's new offset (after a 409, the offset a HEAD reports)."""
        headers = {
            **self._headers,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": "sha1 " + base64.b64encode(hashlib.sha1(chunk).digest()).decode(),
        }
        async with session.patch(url, data=chunk, headers=headers) as response:
            status = response.status
            new_offset = response.headers.get("Upload-Offset", "")
        if status == 204 and new_offset.isdigit():
            self.bytes_sent += int(new_offset) - offset
            return int(new_offset)
        if status == 409:
            log.info("offset mismatch at %d for %s; asking the server", offset, url)
            return await self._server_offset(session, url, item)
        if status == CHECKSUM_MISMATCH:
            raise _Restart(f"checksum mismatch reported by the server at offset {offset}")
        if status in GONE:
            raise _Restart(f"the server no longer has {url} ({status})")
        if status == 413:
            raise UploadError(f"the server refuses a file of {item.size} bytes (413)")
        raise _Refused(status, "PATCH")

    async def _check_unchanged(self, item: OutboxItem) -> None:
        actual = await asyncio.to_thread(file_sha256, Path(item.path))
        if actual != item.sha256:
            raise UploadError(f"{item.path} changed since it was queued (sha256 {actual[:12]}, not {item.sha256[:12]})")


def _read_at(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def _describe(err: Exception) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
