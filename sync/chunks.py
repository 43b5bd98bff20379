"""Content-defined chunking (pinned: pyfastcdc) and the per-item chunk index the repository publishes.

Every box and every publisher must cut identically, so the parameters live here and nowhere else.
pyfastcdc's real mean chunk is about avg + min: 48 KiB + 16 KiB gives the ~64 KiB the design wants.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyfastcdc

from sync.errors import SyncError

CHUNK_AVG = 48 * 1024
CHUNK_MIN = 16 * 1024
CHUNK_MAX = 256 * 1024
INDEX_FORMAT = 1

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
COURSE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PATH_PART_RE = re.compile(r"^[A-Za-z0-9 ._()+,-]{1,128}$")


class ManifestError(SyncError):
    """A chunk index or catalog is malformed (refused, nothing changes)."""


def _cdc() -> pyfastcdc.FastCDC:
    return pyfastcdc.FastCDC(CHUNK_AVG, min_size=CHUNK_MIN, max_size=CHUNK_MAX)


def cut(data: bytes | memoryview) -> Iterator[tuple[str, int, memoryview]]:
    """Yield (sha256 hex, length, bytes) for each content-defined chunk of `data`, in order."""
    for chunk in _cdc().cut_buf(data):
        view = memoryview(chunk.data)
        yield hashlib.sha256(view).hexdigest(), chunk.length, view


def valid_item_path(path: str) -> bool:
    """True for a relative path of safe parts (no '..', no leading '/', no control characters)."""
    parts = path.split("/")
    return bool(path) and len(path) <= 512 and all(_PATH_PART_RE.match(p) and p not in (".", "..") for p in parts)


@dataclass(frozen=True)
class ItemIndex:
    """One courseware item (file) as its ordered list of chunks."""

    course: str
    path: str
    size: int
    sha256: str
    content_type: str
    chunks: list[tuple[str, int]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        """Canonical JSON (what the publisher signs and the box verifies)."""
        data = {
            "format": INDEX_FORMAT,
            "course": self.course,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "content_type": self.content_type,
            "chunks": [[h, n] for h, n in self.chunks],
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON: the index's identity in the store."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ItemIndex:
        """Parse and validate an index; raise ManifestError on anything odd."""
        try:
            data: Any = json.loads(raw)
            chunks = [(str(h), int(n)) for h, n in data["chunks"]]
            index = cls(
                str(data["course"]),
                str(data["path"]),
                int(data["size"]),
                str(data["sha256"]),
                str(data["content_type"]),
                chunks,
            )
        except (ValueError, KeyError, TypeError) as err:
            raise ManifestError(f"chunk index is malformed: {err}") from err
        index.check()
        return index

    def check(self) -> None:
        """Raise ManifestError unless names, hashes and sizes are consistent."""
        if not COURSE_RE.match(self.course) or not valid_item_path(self.path):
            raise ManifestError(f"chunk index names an unsafe course or path: {self.course!r}/{self.path!r}")
        if not SHA256_RE.match(self.sha256) or not all(SHA256_RE.match(h) for h, _ in self.chunks):
            raise ManifestError(f"chunk index for {self.course}/{self.path} has a malformed sha256")
        if any(n <= 0 or n > CHUNK_MAX for _, n in self.chunks) or sum(n for _, n in self.chunks) != self.size:
            raise ManifestError(f"chunk index for {self.course}/{self.path}: chunk sizes do not add up to {self.size}")


def index_file(course: str, path: str, source: Path, content_type: str) -> tuple[ItemIndex, dict[str, memoryview]]:
    """Chunk one file: its index and its chunks by hash."""
    data = source.read_bytes()
    chunks: dict[str, memoryview] = {}
    order: list[tuple[str, int]] = []
    for digest, length, view in cut(data):
        chunks.setdefault(digest, view)
        order.append((digest, length))
    whole = hashlib.sha256(data).hexdigest()
    return ItemIndex(course, path, len(data), whole, content_type, order), chunks
