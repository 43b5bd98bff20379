"""Disk policy for recordings: a quota and a free-space floor; only confirmed uploads are ever deleted.

When the recordings outgrow the quota (or the disk's free space falls below the floor), the
oldest recordings the server has confirmed are deleted first. If that is not enough, nothing
unsent is touched: the policy reports "low" and the recorder raises the alarm instead.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.recording.catalogue import Catalogue, Recording

log = logging.getLogger(__name__)

MB = 1024 * 1024


def disk_free(path: Path) -> int:
    """Free bytes on the file system holding `path`."""
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class StorageReport:
    """What the policy found and did."""

    used_bytes: int
    quota_bytes: int
    free_bytes: int
    min_free_bytes: int
    unsent: int
    unsent_bytes: int
    deleted: list[str] = field(default_factory=list)

    @property
    def low(self) -> bool:
        """True when the recordings still do not fit (only unsent recordings are left to delete)."""
        return self.used_bytes > self.quota_bytes or self.free_bytes < self.min_free_bytes

    @property
    def detail(self) -> str:
        """One line a technician can act on."""
        used, quota, free = self.used_bytes // MB, self.quota_bytes // MB, self.free_bytes // MB
        line = f"recordings use {used} MB of a {quota} MB quota; {free} MB free on disk"
        if self.low:
            line = (
                f"storage low: {line}; {self.unsent} recordings ({self.unsent_bytes // MB} MB) are not uploaded yet"
                " and are kept: check the upload link or raise recording.quota_mb"
            )
        return line


class DiskPolicy:
    """Keeps recordings within the quota and the free-space floor, deleting confirmed ones oldest first."""

    def __init__(
        self,
        catalogue: Callable[[], Catalogue],
        root: Path,
        quota_bytes: int,
        min_free_bytes: int,
        free_bytes: Callable[[Path], int] = disk_free,
    ) -> None:
        self._catalogue = catalogue
        self.root = root
        self.quota_bytes = quota_bytes
        self.min_free_bytes = min_free_bytes
        self._free_bytes = free_bytes

    async def enforce(self) -> StorageReport:
        """Delete confirmed recordings, oldest first, until everything fits; report what is left."""
        deleted: list[str] = []
        while True:
            report = await self._measure(deleted)
            if not report.low:
                return report
            candidates = [r for r in self._catalogue().ready() if r.confirmed]
            if not candidates:
                log.warning("%s", report.detail)
                return report
            await self._delete(candidates[0])
            deleted.append(candidates[0].id)

    async def _measure(self, deleted: list[str]) -> StorageReport:
        catalogue = self._catalogue()
        self.root.mkdir(parents=True, exist_ok=True)
        free = await asyncio.to_thread(self._free_bytes, self.root)
        unsent = [r for r in catalogue.ready() if not r.confirmed]
        return StorageReport(
            used_bytes=catalogue.bytes_on_disk(),
            quota_bytes=self.quota_bytes,
            free_bytes=free,
            min_free_bytes=self.min_free_bytes,
            unsent=len(unsent),
            unsent_bytes=sum((r.size or 0) + (r.ink_size or 0) for r in unsent),
            deleted=deleted,
        )

    async def _delete(self, recording: Recording) -> None:
        if not recording.confirmed:  # never, whatever the caller thinks
            raise RuntimeError(f"refusing to delete unsent recording {recording.id}")
        await asyncio.to_thread(shutil.rmtree, recording.dir, ignore_errors=True)
        self._catalogue().deleted(recording.id)
        log.info("deleted recording %s (%s), confirmed by the server, to make room", recording.id, recording.title)
