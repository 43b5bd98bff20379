"""The recordings catalogue in the box database: recordings, their segments, sizes, hashes, upload state."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from edge.core.db import table
from sync.clock import wall

UPLOAD_STATES = ("local", "queued", "uploading", "uploaded", "failed")


@dataclass(frozen=True)
class Recording:
    """One lesson's recording as the doors see it."""

    id: str
    lesson_id: str
    title: str
    started_at: float
    state: str  # recording | ready | failed | deleted
    dir: str
    upload_state: str  # local | queued | uploading | uploaded | failed
    ended_at: float | None = None
    duration_s: float | None = None
    interrupted: int = 0
    path: str | None = None
    size: int | None = None
    sha256: str | None = None
    ink_path: str | None = None
    ink_size: int | None = None
    ink_sha256: str | None = None
    uploaded_bytes: int | None = None
    upload_error: str | None = None
    uploaded_at: float | None = None
    deleted_at: float | None = None
    error: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Recording:
        """Build from a `recordings` row."""
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})

    @property
    def segmented(self) -> bool:
        """True when the recording is its segments and an HLS playlist (no room was left to join them)."""
        return bool(self.path) and str(self.path).endswith(".m3u8")

    @property
    def confirmed(self) -> bool:
        """True once the server has the whole recording (it may then be deleted locally)."""
        return self.upload_state == "uploaded"

    def to_json(self) -> dict[str, Any]:
        """The JSON form the API answers with (paths stay on the box)."""
        data = asdict(self)
        for key in ("dir", "path", "ink_path"):
            data.pop(key)
        data["interrupted"] = bool(self.interrupted)
        ready = self.state == "ready"
        data["download"] = f"/api/recordings/{self.id}/download" if ready else None
        data["format"] = ("hls" if self.segmented else "mp4") if ready else None
        data["playlist"] = f"/api/recordings/{self.id}/playlist.m3u8" if ready and self.segmented else None
        data["ink"] = f"/api/recordings/{self.id}/ink" if self.state == "ready" and self.ink_path else None
        data["board"] = f"/api/recordings/{self.id}/board.pdf" if self.state == "ready" and self.ink_path else None
        return data


@dataclass(frozen=True)
class Segment:
    """One closed, fsynced segment file of a recording."""

    recording_id: str
    seq: int
    path: str
    size: int
    sha256: str
    duration_s: float | None = None
    closed_at: float | None = None


class Catalogue:
    """Reads and writes the catalogue tables (a thin layer over the box database, built per use)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    @property
    def _recordings(self) -> sqlite_utils.db.Table:
        return table(self._db, "recordings")

    @property
    def _segments(self) -> sqlite_utils.db.Table:
        return table(self._db, "recording_segments")

    def begin(self, recording_id: str, lesson_id: str, title: str, started_at: float, directory: Path) -> Recording:
        """Catalogue a recording that starts now (or return the one a restart left open)."""
        existing = self.get(recording_id)
        if existing is not None:
            return existing
        row = {
            "id": recording_id,
            "lesson_id": lesson_id,
            "title": title,
            "started_at": started_at,
            "state": "recording",
            "interrupted": 0,
            "dir": str(directory),
            "upload_state": "local",
        }
        self._recordings.insert(row)
        return self.require(recording_id)

    def get(self, recording_id: str) -> Recording | None:
        """A recording by id."""
        rows = list(self._recordings.rows_where("id = ?", [recording_id], limit=1))
        return Recording.from_row(rows[0]) if rows else None

    def require(self, recording_id: str) -> Recording:
        """A recording by id; KeyError when unknown."""
        found = self.get(recording_id)
        if found is None:
            raise KeyError(recording_id)
        return found

    def recent(self, limit: int = 200) -> list[Recording]:
        """Recordings, newest first."""
        rows = self._recordings.rows_where(order_by="started_at desc", limit=limit)
        return [Recording.from_row(row) for row in rows]

    def unfinished(self) -> list[Recording]:
        """Recordings still marked as recording (a crash or power cut left them open)."""
        return [Recording.from_row(row) for row in self._recordings.rows_where("state = ?", ["recording"])]

    def ready(self) -> list[Recording]:
        """Finished recordings still on disk, oldest first."""
        rows = self._recordings.rows_where("state = ?", ["ready"], order_by="started_at")
        return [Recording.from_row(row) for row in rows]

    def update(self, recording_id: str, **changes: Any) -> Recording:
        """Change some columns of a recording."""
        self._recordings.update(recording_id, changes)
        return self.require(recording_id)

    def add_segment(self, segment: Segment) -> None:
        """Catalogue a closed segment (idempotent)."""
        self._segments.insert(asdict(segment), replace=True)

    def segments(self, recording_id: str) -> list[Segment]:
        """A recording's closed segments in order."""
        rows = self._segments.rows_where("recording_id = ?", [recording_id], order_by="seq")
        return [Segment(**row) for row in rows]

    def finished(
        self, recording_id: str, *, path: Path, size: int, sha256: str | None, duration_s: float, ended_at: float
    ) -> Recording:
        """Mark a recording finished: its joined file (or its playlist: no sha256, nothing to upload yet) is durable."""
        changes = {"path": str(path), "size": size, "sha256": sha256, "duration_s": duration_s, "ended_at": ended_at}
        return self.update(recording_id, state="ready", **changes)

    def deleted(self, recording_id: str) -> Recording:
        """Mark a recording's files removed from the box."""
        return self.update(recording_id, state="deleted", deleted_at=wall())

    def bytes_on_disk(self) -> int:
        """What the recordings catalogued as on disk take (joined files, ink logs, open segments)."""
        total = 0
        for row in self._db.execute(
            "SELECT COALESCE(SUM(COALESCE(size, 0) + COALESCE(ink_size, 0)), 0) FROM recordings WHERE state = 'ready'"
        ):
            total += int(row[0])
        for row in self._db.execute(
            "SELECT COALESCE(SUM(s.size), 0) FROM recording_segments s JOIN recordings r ON r.id = s.recording_id"
            " WHERE r.state = 'recording'"
        ):
            total += int(row[0])
        return total
