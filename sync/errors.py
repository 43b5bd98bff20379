"""The sync package's exception hierarchy (courseware store, repository trust, pull, publish, budget)."""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the sync package raises on purpose."""


class StoreError(SyncError):
    """The courseware store is unusable (integrity check failed, bad schema)."""


class QuotaExceeded(StoreError):
    """The store cannot make room within its quota (everything left is pinned or in use)."""


class DiskFloorReached(QuotaExceeded):
    """The disk's free space is down to the floor kept for recordings: the pull stops until there is room."""


class NotInStore(StoreError):
    """The course or item is not (completely) in the store."""


class PublishError(SyncError):
    """A course folder or the keys cannot be published."""


class TrustError(SyncError):
    """Repository metadata was refused (bad signature, expired, rolled back, wrong hash)."""


class FetchError(SyncError):
    """A chunk or file could not be fetched from any source."""


class CorruptChunk(FetchError):
    """A fetched chunk does not match its sha256 (refused, never stored)."""


class BudgetExhausted(SyncError):
    """The monthly WAN data cap is reached; WAN sync waits for next month (or a higher cap)."""


class UploadError(SyncError):
    """An upload cannot go on (the file is gone or changed since it was queued, the server refuses it)."""
