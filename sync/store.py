"""The courseware store: one SQLite file (WAL) holding chunks by sha256, item indexes, courses and pins.

An item has a `current` index (complete: every chunk present, what the doors serve) and may have a
`pending` one (being pulled). The pending index becomes current only once all its chunks are in,
so a box keeps serving the old version until the new one is whole. A quota bounds the chunk bytes;
room is made by evicting the least recently used items that are not pinned and not being pulled.
A free-space floor (`min_free_bytes`) stops new chunks well before the disk is full.
A version being served is held (`hold`): an eviction or a newer version takes it out of the
catalogue at once, but its bytes stay until its last reader lets go, so no response is cut short
(the store may exceed its quota by those bytes meanwhile). Items being read are evicted last.
All methods are blocking and thread-safe (one connection behind a lock): call them from a thread.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from sync.chunks import ItemIndex
from sync.errors import CorruptChunk, DiskFloorReached, NotInStore, QuotaExceeded, StoreClosed, StoreError

log = logging.getLogger(__name__)

MB = 1024 * 1024
# What SQLite may write beside a chunk (B-tree pages, its journal before a checkpoint): kept clear of the floor too.
FLOOR_SLACK = 1 * MB

Migration = Callable[[sqlite_utils.Database], None]


def _v1(db: sqlite_utils.Database) -> None:
    for statement in (
        "CREATE TABLE chunks (hash TEXT PRIMARY KEY, size INTEGER NOT NULL, data BLOB NOT NULL)",
        "CREATE TABLE indexes (digest TEXT PRIMARY KEY, course TEXT NOT NULL, path TEXT NOT NULL,"
        " size INTEGER NOT NULL, sha256 TEXT NOT NULL, content_type TEXT NOT NULL)",
        "CREATE TABLE index_chunks (digest TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,"
        " offset INTEGER NOT NULL, length INTEGER NOT NULL, PRIMARY KEY (digest, seq))",
        "CREATE INDEX index_chunks_hash ON index_chunks (hash)",
        "CREATE TABLE items (course TEXT NOT NULL, path TEXT NOT NULL, current TEXT, pending TEXT,"
        " last_used REAL NOT NULL DEFAULT 0, PRIMARY KEY (course, path))",
        "CREATE TABLE courses (id TEXT PRIMARY KEY, title TEXT NOT NULL, updated_at REAL)",
        "CREATE TABLE pins (course TEXT PRIMARY KEY, until REAL NOT NULL, reason TEXT)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    ):
        db.execute(statement)


_LIVE = "SELECT current FROM items WHERE current IS NOT NULL UNION SELECT pending FROM items WHERE pending IS NOT NULL"

# Append only: the position of a migration is its schema version.
MIGRATIONS: list[Migration] = [_v1]


@dataclass(frozen=True)
class StoredItem:
    """A servable item: its metadata and its chunks as (hash, offset, length) in order."""

    course: str
    path: str
    size: int
    sha256: str
    content_type: str
    chunks: list[tuple[str, int, int]]
    digest: str = ""  # the chunk index this version comes from

    @property
    def etag(self) -> str:
        """A strong ETag: the content's sha256."""
        return f'"{self.sha256}"'


class Hold:
    """A reader's hold on one version of an item: its bytes stay in the store until `release()` (idempotent)."""

    def __init__(self, store: Store, item: StoredItem) -> None:
        self.store = store
        self.item = item
        self.released = False

    def read(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes [start, end) of the held version, chunk by chunk."""
        return self.store.read(self.item, start, end)

    def release(self) -> None:
        """This reader is done; bytes evicted meanwhile are freed when it was the last one."""
        self.store._let_go(self)


class Store:
    """The SQLite courseware store."""

    def __init__(
        self,
        path: Path,
        quota_bytes: int = 10_000 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        min_free_bytes: int = 0,
    ):
        self.path = Path(path)
        self.quota_bytes = quota_bytes
        self.min_free_bytes = min_free_bytes
        self._clock = clock
        self._lock = threading.RLock()
        self._readers: Counter[str] = Counter()  # index digest -> holds on it
        self._idle = threading.Condition(self._lock)  # notified when the last hold is let go
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._prepare(conn)
        except sqlite3.DatabaseError as err:
            conn.close()
            raise StoreError(f"{self.path}: {err}") from err
        self._database = sqlite_utils.Database(conn)
        self._migrate()
        self.collect_garbage()  # bytes a reader held when the process ended (their items were evicted meanwhile)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise StoreError(f"{self.path}: integrity check failed: {result}")

    def _migrate(self) -> None:
        version = int(self._one("PRAGMA user_version"))
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._tx():
                migration(self._db)
                self._db.execute(f"PRAGMA user_version={number}")
            log.info("courseware store migrated to schema version %d", number)

    def close(self, drain_s: float = 0.0) -> None:
        """Close once readers let go (waiting up to `drain_s`); idempotent; later calls raise StoreClosed."""
        with self._lock:
            self._idle.wait_for(lambda: not self._readers, drain_s)
            self._closed = True
            self._database.conn.close()

    @property
    def _db(self) -> sqlite_utils.Database:
        if self._closed:
            raise StoreClosed(f"{self.path.name} is closed (the courseware cache is restarting)")
        return self._database

    def _one(self, sql: str, params: Iterable[Any] = ()) -> Any:
        with self._lock:
            row = self._db.execute(sql, list(params)).fetchone()
        return row[0] if row else None

    def _tx(self) -> _Transaction:
        return _Transaction(self)

    def integrity(self) -> str:
        """`PRAGMA integrity_check` ('ok' when healthy)."""
        return str(self._one("PRAGMA integrity_check"))

    # -- chunks ---------------------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        """Bytes of chunk data held."""
        return self._used

    def has_chunk(self, digest: str) -> bool:
        """True when the chunk is stored."""
        return self._one("SELECT 1 FROM chunks WHERE hash = ?", [digest]) is not None

    def get_chunk(self, digest: str) -> bytes | None:
        """A chunk's bytes, or None."""
        data = self._one("SELECT data FROM chunks WHERE hash = ?", [digest])
        return bytes(data) if data is not None else None

    def check_floor(self, nbytes: int) -> None:
        """Raise DiskFloorReached if storing `nbytes` more would leave less free disk than the floor."""
        if not self.min_free_bytes:
            return
        free = shutil.disk_usage(self.path.parent).free
        if free - nbytes - FLOOR_SLACK < self.min_free_bytes:
            raise DiskFloorReached(
                f"disk nearly full: courseware sync stopped with {free // MB} MB free"
                f" (it keeps {self.min_free_bytes // MB} MB free for recordings)"
            )

    def put_chunk(self, digest: str, data: bytes) -> None:
        """Store a chunk after checking its hash and the free-space floor, making room by LRU eviction for the quota."""
        if hashlib.sha256(data).hexdigest() != digest:
            raise CorruptChunk(f"chunk {digest[:12]}: content does not match its sha256, refused")
        with self._lock:
            if self.has_chunk(digest):
                return
            self.check_floor(len(data))
            self._make_room(len(data))
            with self._tx():
                self._db.execute("INSERT INTO chunks (hash, size, data) VALUES (?, ?, ?)", [digest, len(data), data])
            self._used += len(data)

    # -- items ----------------------------------------------------------------------------------

    def set_course(self, course: str, title: str) -> None:
        """Record (or retitle) a course."""
        with self._tx():
            self._db.execute(
                "INSERT INTO courses (id, title, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET title = excluded.title, updated_at = excluded.updated_at",
                [course, title, self._clock()],
            )

    def want(self, index: ItemIndex) -> bool:
        """Register `index` as the version to have; return True if chunks may be missing (pull it)."""
        digest = index.digest
        with self._lock, self._tx():
            row = self._item_row(index.course, index.path)
            if row and row["current"] == digest:
                self._db.execute(
                    "UPDATE items SET pending = NULL WHERE course = ? AND path = ?", [index.course, index.path]
                )
                return False
            self._save_index(index, digest)
            if row is None:
                self._db.execute(
                    "INSERT INTO items (course, path, current, pending, last_used) VALUES (?, ?, NULL, ?, 0)",
                    [index.course, index.path, digest],
                )
            else:
                self._db.execute(
                    "UPDATE items SET pending = ? WHERE course = ? AND path = ?", [digest, index.course, index.path]
                )
        return True

    def _save_index(self, index: ItemIndex, digest: str) -> None:
        if self._db.execute("SELECT 1 FROM indexes WHERE digest = ?", [digest]).fetchone():
            return
        self._db.execute(
            "INSERT INTO indexes (digest, course, path, size, sha256, content_type) VALUES (?, ?, ?, ?, ?, ?)",
            [digest, index.course, index.path, index.size, index.sha256, index.content_type],
        )
        offset, rows = 0, []
        for seq, (chunk, length) in enumerate(index.chunks):
            rows.append((digest, seq, chunk, offset, length))
            offset += length
        self._db.conn.executemany("INSERT INTO index_chunks VALUES (?, ?, ?, ?, ?)", rows)

    def _item_row(self, course: str, path: str) -> dict[str, Any] | None:
        cursor = self._db.execute("SELECT * FROM items WHERE course = ? AND path = ?", [course, path])
        row = cursor.fetchone()
        return dict(zip([c[0] for c in cursor.description], row, strict=True)) if row else None

    def missing(self, index: ItemIndex) -> list[tuple[str, int]]:
        """The chunks of `index` not yet stored, unique, in order."""
        seen: set[str] = set()
        out = []
        for digest, length in index.chunks:
            if digest not in seen and not self.has_chunk(digest):
                out.append((digest, length))
            seen.add(digest)
        return out

    def complete(self, course: str, path: str) -> bool:
        """Make the pending index current if every chunk is in; True when the item is current and whole."""
        with self._lock, self._tx():
            row = self._item_row(course, path)
            if row is None:
                return False
            if row["pending"] is None:
                return row["current"] is not None
            absent = self._one(
                "SELECT COUNT(*) FROM index_chunks ic LEFT JOIN chunks c ON c.hash = ic.hash "
                "WHERE ic.digest = ? AND c.hash IS NULL",
                [row["pending"]],
            )
            if absent:
                return False
            self._db.execute(  # new content counts as just used: it is not the first to be evicted
                "UPDATE items SET current = pending, pending = NULL, last_used = ? WHERE course = ? AND path = ?",
                [self._clock(), course, path],
            )
        self.collect_garbage()
        return True

    def retain(self, wanted: set[tuple[str, str]]) -> int:
        """Forget items no longer published (not in `wanted`); return how many were dropped."""
        with self._lock:
            rows = list(self._db.execute("SELECT course, path FROM items"))
            gone = [(c, p) for c, p in rows if (c, p) not in wanted]
            with self._tx():
                for course, path in gone:
                    self._db.execute("DELETE FROM items WHERE course = ? AND path = ?", [course, path])
                courses = {c for c, _ in wanted}
                for (course,) in list(self._db.execute("SELECT id FROM courses")):
                    if course not in courses:
                        self._db.execute("DELETE FROM courses WHERE id = ?", [course])
        if gone:
            self.collect_garbage()
        return len(gone)

    def item(self, course: str, path: str) -> StoredItem:
        """The current (whole) version of an item; raise NotInStore if there is none."""
        with self._lock:
            row = self._item_row(course, path)
            if row is None or row["current"] is None:
                raise NotInStore(f"{course}/{path} is not in the courseware cache")
            meta = self._db.execute(
                "SELECT size, sha256, content_type FROM indexes WHERE digest = ?", [row["current"]]
            ).fetchone()
            chunks = list(
                self._db.execute(
                    "SELECT hash, offset, length FROM index_chunks WHERE digest = ? ORDER BY seq", [row["current"]]
                )
            )
        return StoredItem(course, path, meta[0], meta[1], meta[2], [(h, o, n) for h, o, n in chunks], row["current"])

    def hold(self, course: str, path: str) -> Hold:
        """The current version of an item, held for one reader until `Hold.release()`; raise NotInStore."""
        with self._lock:
            item = self.item(course, path)
            self._readers[item.digest] += 1
        return Hold(self, item)

    def _let_go(self, hold: Hold) -> None:
        with self._lock:
            if hold.released:
                return
            hold.released = True
            digest = hold.item.digest
            self._readers[digest] -= 1
            if self._readers[digest] > 0:
                return
            del self._readers[digest]
            if not self._closed and not self._is_live(digest):
                self.collect_garbage()
            self._idle.notify_all()

    def _is_live(self, digest: str) -> bool:
        return self._one("SELECT 1 FROM items WHERE current = ? OR pending = ?", [digest, digest]) is not None

    def touch(self, course: str, path: str) -> None:
        """Mark an item as just used (for LRU eviction)."""
        with self._tx():
            self._db.execute(
                "UPDATE items SET last_used = ? WHERE course = ? AND path = ?", [self._clock(), course, path]
            )

    def read(self, item: StoredItem, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes [start, end) of `item` chunk by chunk (end defaults to the size)."""
        end = item.size if end is None else min(end, item.size)
        for digest, offset, length in item.chunks:
            if offset + length <= start or offset >= end:
                continue
            data = self.get_chunk(digest)
            if data is None:
                raise NotInStore(f"{item.course}/{item.path}: chunk {digest[:12]} is missing")
            yield data[max(0, start - offset) : min(length, end - offset)]

    # -- courses, pins, quota -------------------------------------------------------------------

    def pin(self, course: str, until: float, reason: str = "") -> None:
        """Keep `course` from eviction until the epoch time `until` (e.g. the end of its lesson)."""
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO pins (course, until, reason) VALUES (?, ?, ?)", [course, until, reason]
            )

    def unpin(self, course: str) -> None:
        """Let `course` be evicted again."""
        with self._tx():
            self._db.execute("DELETE FROM pins WHERE course = ?", [course])

    def pinned(self) -> set[str]:
        """Courses pinned now."""
        with self._lock:
            rows = self._db.execute("SELECT course FROM pins WHERE until > ?", [self._clock()])
            return {r[0] for r in rows}

    def _make_room(self, nbytes: int) -> None:
        if self._used + nbytes <= self.quota_bytes or self._kept_bytes() + nbytes <= self.quota_bytes:
            return
        pinned = self.pinned()
        rows = self._db.execute(
            "SELECT course, path, current FROM items WHERE current IS NOT NULL AND pending IS NULL ORDER BY last_used"
        )
        candidates = [(c, p, d in self._readers) for c, p, d in rows if c not in pinned]
        for course, path, _ in sorted(candidates, key=lambda row: row[2]):  # items being read go last
            self.evict(course, path)
            if self._kept_bytes() + nbytes <= self.quota_bytes:
                return
        raise QuotaExceeded(f"courseware quota of {self.quota_bytes} bytes is full of pinned or in-use items")

    def _kept_bytes(self) -> int:
        """Bytes that stay once every reader let go (what is held for readers only is on its way out)."""
        if not self._readers:
            return self._used
        live_chunks = f"SELECT hash FROM index_chunks WHERE digest IN ({_LIVE})"
        return int(self._one(f"SELECT COALESCE(SUM(size), 0) FROM chunks WHERE hash IN ({live_chunks})"))

    def evict(self, course: str, path: str) -> None:
        """Drop an item's cached bytes (it stays known and will be pulled again); a held version's bytes go later."""
        with self._lock:
            with self._tx():
                self._db.execute("UPDATE items SET current = NULL WHERE course = ? AND path = ?", [course, path])
            log.info("courseware: evicted %s/%s (least recently used)", course, path)
            self.collect_garbage()

    def collect_garbage(self) -> None:
        """Delete chunks and indexes that no current or pending item, and no reader, refers to."""
        with self._lock, self._tx():
            unused = self._db.execute(f"SELECT digest FROM indexes WHERE digest NOT IN ({_LIVE})").fetchall()
            doomed = [(digest,) for (digest,) in unused if digest not in self._readers]
            self._db.conn.executemany("DELETE FROM indexes WHERE digest = ?", doomed)
            self._db.conn.executemany("DELETE FROM index_chunks WHERE digest = ?", doomed)
            self._db.execute("DELETE FROM chunks WHERE hash NOT IN (SELECT hash FROM index_chunks)")
            self._used = int(self._one("SELECT COALESCE(SUM(size), 0) FROM chunks"))

    def courses(self) -> list[dict[str, Any]]:
        """Every course with its items and their cache state (cached | pulling | missing)."""
        pinned = self.pinned()
        with self._lock:
            titles = dict(self._db.execute("SELECT id, title FROM courses ORDER BY id"))
            rows = list(
                self._db.execute(
                    "SELECT i.course, i.path, i.current, i.pending, i.last_used, x.size, x.content_type "
                    "FROM items i LEFT JOIN indexes x ON x.digest = COALESCE(i.current, i.pending) ORDER BY i.path"
                )
            )
        out = {c: {"id": c, "title": t, "pinned": c in pinned, "items": []} for c, t in titles.items()}
        for course, path, current, pending, used, size, ctype in rows:
            state = "pulling" if pending else ("cached" if current else "missing")
            entry = {"path": path, "state": state, "size": size, "content_type": ctype, "last_used": used}
            out.setdefault(course, {"id": course, "title": course, "pinned": course in pinned, "items": []})
            out[course]["items"].append(entry)
        return list(out.values())

    def get_meta(self, key: str) -> str | None:
        """A small persistent value (e.g. the last catalog applied)."""
        value = self._one("SELECT value FROM meta WHERE key = ?", [key])
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        """Persist a small value."""
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])


class _Transaction:
    """BEGIN IMMEDIATE .. COMMIT (or ROLLBACK) under the store's lock; nests by joining the outer one."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._outer = False

    def __enter__(self) -> None:
        self._store._lock.acquire()
        try:
            conn = self._store._db.conn
        except StoreClosed:
            self._store._lock.release()
            raise
        self._outer = not conn.in_transaction
        if self._outer:
            conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        try:
            if self._outer:
                self._store._db.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self._store._lock.release()
