"""The sync package's exception hierarchy (store, trust, pull, publish, budget) and fetch failures in words."""

from __future__ import annotations

import errno
import socket
import ssl


class SyncError(Exception):
    """Base of every error the sync package raises on purpose."""


class StoreError(SyncError):
    """The courseware store is unusable (integrity check failed, bad schema)."""


class QuotaExceeded(StoreError):
    """The store cannot make room within its quota (everything left is pinned or in use)."""


class DiskFloorReached(QuotaExceeded):
    """The disk's free space is down to the floor kept for recordings: the pull stops until there is room."""


class StoreClosed(StoreError):
    """The store is closed: the courseware cache is stopping or restarting (try again shortly)."""


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


def _chain(err: BaseException) -> list[BaseException]:
    """`err` and every exception it was raised from (causes first seen first), without loops."""
    out: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _tls(err: BaseException) -> str | None:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted ({err.verify_message or err.reason})"
    if isinstance(err, ssl.SSLError):
        return f"TLS error ({err.reason or err.strerror or type(err).__name__})"
    return None


def _dns(err: BaseException) -> str | None:
    if not isinstance(err, socket.gaierror):
        return None
    if err.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
        return "DNS name not found"
    return f"DNS lookup failed ({err.strerror})"


_SOCKET_ERRORS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENOENT: "no such file",
}


def _socket(err: BaseException) -> str | None:
    return _SOCKET_ERRORS.get(err.errno) if isinstance(err, OSError) and err.errno else None


def _http(err: BaseException) -> str | None:
    status = getattr(err, "status_code", None) or getattr(err, "status", None)
    return f"HTTP {status}" if isinstance(status, int) and status >= 400 else None


def _timeout(err: BaseException) -> str | None:
    name = type(err).__name__
    timed_out = isinstance(err, TimeoutError) or "Timeout" in name or "SlowRetrieval" in name  # urllib3's, TUF's
    return "timed out" if timed_out else None


def failure_reason(err: BaseException) -> str:
    """What failed in a fetch, in words: TLS, DNS, refused/reset/unreachable, HTTP status, timeout, else the error."""
    chain = _chain(err)
    # Most specific first: urllib3's refused connection is also a ConnectTimeoutError.
    for classify in (_tls, _dns, _socket, _http, _timeout):
        for cause in chain:
            reason = classify(cause)
            if reason:
                return reason
    return next((str(c) for c in chain if str(c)), type(err).__name__)
