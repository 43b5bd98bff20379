"""The box's own SQLite database (lessons, recordings catalogue): WAL, checked, migrated; headroom for commits."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import sqlite_utils
from sqlite_utils.db import Table

from sync.atomic import fsync_dir

log = logging.getLogger(__name__)

Migration = Callable[[sqlite_utils.Database], None]


def table(db: sqlite_utils.Database, name: str) -> Table:
    """A table of `db` by name, typed as a table (sqlite-utils types lookups as table-or-view)."""
    return Table(db, name)


def _v1_lessons(db: sqlite_utils.Database) -> None:
    table(db, "lessons").create(
        {
            "id": str,
            "title": str,
            "join_code": str,
            "state": str,
            "started_at": float,
            "ended_at": float,
            "started_by": str,
        },
        pk="id",
        not_null={"id", "title", "join_code", "state", "started_at"},
    )
    table(db, "lessons").create_index(["join_code"], unique=True)
    table(db, "lessons").create_index(["state"])


def _v2_recordings(db: sqlite_utils.Database) -> None:
    table(db, "recordings").create(
        {
            "id": str,
            "lesson_id": str,
            "title": str,
            "started_at": float,
            "ended_at": float,
            "duration_s": float,
            "state": str,  # recording | ready | failed | deleted
            "interrupted": int,
            "dir": str,
            "path": str,
            "size": int,
            "sha256": str,
            "ink_path": str,
            "ink_size": int,
            "ink_sha256": str,
            "upload_state": str,  # local | queued | uploading | uploaded | failed
            "uploaded_bytes": int,
            "upload_error": str,
            "uploaded_at": float,
            "deleted_at": float,
            "error": str,
        },
        pk="id",
        not_null={"id", "lesson_id", "title", "started_at", "state", "dir", "upload_state"},
    )
    table(db, "recordings").create_index(["state"])
    table(db, "recording_segments").create(
        {
            "recording_id": str,
            "seq": int,
            "path": str,
            "size": int,
            "sha256": str,
            "duration_s": float,
            "closed_at": float,
        },
        pk=("recording_id", "seq"),
        not_null={"recording_id", "seq", "path", "size", "sha256"},
    )


def _v3_lesson_durations(db: sqlite_utils.Database) -> None:
    table(db, "lessons").add_column("duration_s", float)  # measured on the monotonic clock


def _v4_admin_accounts(db: sqlite_utils.Database) -> None:
    table(db, "admins").create(
        {"username": str, "password_hash": str, "created_at": float}, pk="username", not_null={"password_hash"}
    )
    # The first-boot setup code while there is no admin yet: its SHA-256 only (the code is in a 0600 file).
    table(db, "admin_setup").create({"id": int, "code_hash": str, "created_at": float}, pk="id")


# Append only: the position of a migration is its schema version.
MIGRATIONS: list[Migration] = [_v1_lessons, _v2_recordings, _v3_lesson_durations, _v4_admin_accounts]


class DatabaseError(Exception):
    """The database file is unusable."""


def open_db(path: Path) -> sqlite_utils.Database:
    """Open (creating if needed), check integrity and migrate the box database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error:
        conn.close()
        raise
    if result != "ok":
        conn.close()
        raise DatabaseError(f"{path}: integrity check failed: {result}")
    db = sqlite_utils.Database(conn)
    migrate(db)
    return db


def migrate(db: sqlite_utils.Database) -> None:
    """Run the migrations this database has not seen yet, each in its own transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
        with db.conn:
            db.conn.execute("BEGIN")
            migration(db)
            db.conn.execute(f"PRAGMA user_version={number}")
        log.info("database migrated to schema version %d", number)


class Headroom:
    """A reserve file beside the databases: released when the disk runs out so they can still commit.

    `restore()` makes it again only once the disk has room for it twice over, so a box that has
    just released it does not take back the space its databases need.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.held = path.is_file()

    def free_bytes(self) -> int:
        """Free bytes on the file system of the reserve (the state directory)."""
        return shutil.disk_usage(self.path.parent).free

    def release(self) -> bool:
        """Give the reserve's space back to the databases; True if there was one to give."""
        if not self.held:
            return False
        self.path.unlink(missing_ok=True)  # not fsynced: after a power cut the reserve is only back, unharmed
        self.held = False
        log.warning("disk full: released the %d MB kept for the databases", self.size // (1024 * 1024))
        return True

    def restore(self) -> bool:
        """Make the reserve again if the disk has room for it twice over; True when it is held."""
        if self.held or self.size == 0:
            return True
        if self.free_bytes() < 2 * self.size:
            return False
        temp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            _allocate(temp, self.size)
            os.replace(temp, self.path)
            fsync_dir(self.path.parent)
        except OSError as err:
            temp.unlink(missing_ok=True)
            log.warning("could not make the database reserve: %s", err.strerror)
            return False
        self.held = True
        return True


def _allocate(path: Path, size: int) -> None:
    """A file of `size` bytes whose blocks are really taken (not a sparse file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            block = bytes(1024 * 1024)
            for offset in range(0, size, len(block)):
                os.write(fd, block[: size - offset])
        os.fsync(fd)
    finally:
        os.close(fd)
