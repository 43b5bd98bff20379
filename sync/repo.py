"""Trust in a courseware repository: TUF metadata over HTTP(S) or a local folder (USB import).

The box ships the repository's root metadata and keeps TUF's metadata cache under its state
directory; together they make a bad signature, expired metadata or a replayed older version fail
`refresh()` with a TrustError. The catalog and every chunk index are TUF targets (length + sha256
checked); chunks are then checked against the sha256 their verified index names.

A box without a battery clock may run days behind, where expiry checks prove nothing: the newest
`published_at` of a verified catalog is kept beside TUF's cache, and expiry is judged against the
later of it and the clock. A clock far ahead makes good metadata look expired: the error says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from tuf.api import exceptions as tuf_errors
from tuf.ngclient import FetcherInterface, TargetFile, Updater, Urllib3Fetcher  # type: ignore[attr-defined]

from sync.atomic import write_atomic
from sync.chunks import COURSE_RE, ItemIndex, ManifestError, valid_item_path
from sync.clock import utcnow
from sync.errors import FetchError, TrustError, failure_reason

log = logging.getLogger(__name__)

CATALOG = "catalog.json"
NEWEST_TIME = "newest-time.json"  # the newest published_at seen in a verified catalog
READ_PIECE = 64 * 1024
FETCH_TIMEOUT_S = 20.0  # connect, and the longest gap between bytes


def repo_base(location: str) -> str:
    """A repository location as a base URL without trailing slash (a plain path becomes file://)."""
    if "://" not in location:
        return Path(location).resolve().as_uri()
    return location.rstrip("/")


def local_path(url: str) -> Path | None:
    """The filesystem path of a file:// URL, else None."""
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


class CountingFetcher(FetcherInterface):
    """TUF's fetcher for http(s), plus file:// for USB repositories; counts the bytes it moved.

    The request is made in `_fetch` itself (not lazily in a generator) so that TUF's `fetch()` wraps
    its failures in a DownloadError; failures while reading the body are wrapped here.
    """

    def __init__(self, timeout_s: float = FETCH_TIMEOUT_S) -> None:
        self._http = Urllib3Fetcher(socket_timeout=timeout_s)  # type: ignore[arg-type]
        self.bytes = 0

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = local_path(url)
        pieces = self._http._fetch(url) if path is None else self._read(path, url)
        return self._count(pieces, url)

    def _count(self, pieces: Iterator[bytes], url: str) -> Iterator[bytes]:
        try:
            for piece in pieces:
                self.bytes += len(piece)
                yield piece
        except tuf_errors.DownloadError:
            raise
        except Exception as err:
            raise tuf_errors.DownloadError(f"{url}: {failure_reason(err)}") from err

    def _read(self, path: Path, url: str) -> Iterator[bytes]:
        try:
            handle = path.open("rb")
        except FileNotFoundError as err:
            raise tuf_errors.DownloadHTTPError(f"not found: {url}", 404) from err
        return self._pieces(handle)

    @staticmethod
    def _pieces(handle: BinaryIO) -> Iterator[bytes]:
        with handle:
            while piece := handle.read(READ_PIECE):
                yield piece


@dataclass(frozen=True)
class CatalogItem:
    """One item as the signed catalog lists it."""

    course: str
    path: str
    index: str
    size: int
    sha256: str
    content_type: str


@dataclass(frozen=True)
class Catalog:
    """The verified list of courses (id -> title) and items of one repository version."""

    version: int
    titles: dict[str, str]
    items: list[CatalogItem]
    published_at: datetime | None = None

    @classmethod
    def parse(cls, version: int, raw: bytes) -> Catalog:
        """Validate the catalog JSON; raise ManifestError on anything odd."""
        try:
            data: Any = json.loads(raw)
            titles, items = {}, []
            for course, entry in data["courses"].items():
                if not COURSE_RE.match(course):
                    raise ManifestError(f"catalog names an unsafe course id {course!r}")
                titles[course] = str(entry["title"])[:200]
                for path, item in entry["items"].items():
                    if not valid_item_path(path) or item["index"] != f"index/{course}/{path}.json":
                        raise ManifestError(f"catalog lists an unsafe item {course}/{path!r}")
                    items.append(
                        CatalogItem(
                            course,
                            path,
                            item["index"],
                            int(item["size"]),
                            str(item["sha256"]),
                            str(item["content_type"]),
                        )
                    )
            published = data.get("published_at")
            published_at = None if published is None else _aware(datetime.fromisoformat(str(published)))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ManifestError(f"catalog is malformed: {err}") from err
        return cls(version, titles, items, published_at)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("published_at has no time zone")
    return moment


def _trust_error(err: Exception, reference: datetime) -> TrustError:
    reasons = {
        tuf_errors.UnsignedMetadataError: "bad or missing signature",
        tuf_errors.ExpiredMetadataError: "metadata expired",
        tuf_errors.BadVersionNumberError: "metadata rolled back to an older version",
        tuf_errors.EqualVersionNumberError: "metadata replayed with the same version",
        tuf_errors.LengthOrHashMismatchError: "length or hash mismatch",
    }
    reason = next((text for kind, text in reasons.items() if isinstance(err, kind)), type(err).__name__)
    if isinstance(err, tuf_errors.ExpiredMetadataError):
        reason += f" as of {reference:%Y-%m-%d %H:%M} UTC; if the box's clock is wrong, set it"
    return TrustError(f"repository metadata refused ({reason}): {err}")


class TrustedRepo:
    """A TUF client session against one repository: `refresh()` once, then read verified targets.

    Blocking (TUF's client is synchronous): run it in a thread. One instance per pull.
    """

    def __init__(
        self,
        location: str,
        trust_dir: Path,
        trusted_root: bytes,
        now: Callable[[], datetime] = utcnow,
        timeout_s: float = FETCH_TIMEOUT_S,
    ) -> None:
        self.base = repo_base(location)
        self.trust_dir = trust_dir
        self.fetcher = CountingFetcher(timeout_s)
        self.newest = _read_newest(trust_dir / NEWEST_TIME)
        self.reference_time = max(now(), self.newest) if self.newest else now()
        (trust_dir / "metadata").mkdir(parents=True, exist_ok=True)
        (trust_dir / "targets").mkdir(parents=True, exist_ok=True)
        try:
            self._updater = Updater(
                str(trust_dir / "metadata"),
                f"{self.base}/metadata/",
                str(trust_dir / "targets"),
                f"{self.base}/targets/",
                fetcher=self.fetcher,
                bootstrap=trusted_root,
            )
        except tuf_errors.RepositoryError as err:
            raise TrustError(f"the shipped root metadata is not valid: {err}") from err
        # python-tuf reads the clock once, here; "now" is never earlier than the newest catalog seen.
        self._updater._trusted_set.reference_time = self.reference_time

    @property
    def metadata_bytes(self) -> int:
        """Bytes of metadata and targets moved so far (for the budget)."""
        return self.fetcher.bytes

    def refresh(self) -> Catalog:
        """Update the trusted metadata and return the verified catalog; raise TrustError or FetchError."""
        try:
            self._updater.refresh()
        except tuf_errors.RepositoryError as err:
            raise _trust_error(err, self.reference_time) from err
        except (tuf_errors.DownloadError, OSError) as err:
            raise FetchError(f"repository {self.base} unreachable: {failure_reason(err)}") from err
        version = self._updater._trusted_set.targets.version
        catalog = Catalog.parse(version, self.target(CATALOG))
        self._note_published(catalog.published_at)
        return catalog

    def _note_published(self, published_at: datetime | None) -> None:
        if published_at is None or (self.newest is not None and published_at <= self.newest):
            return
        self.newest = published_at
        write_atomic(self.trust_dir / NEWEST_TIME, json.dumps({"published_at": published_at.isoformat()}).encode())

    def target(self, path: str) -> bytes:
        """A verified target's bytes (from TUF's cache when unchanged); raise TrustError or FetchError."""
        try:
            info: TargetFile | None = self._updater.get_targetinfo(path)
            if info is None:
                raise TrustError(f"{path} is not listed in the signed targets")
            cached = self._updater.find_cached_target(info)
            local = cached or self._updater.download_target(info)
            return Path(local).read_bytes()
        except tuf_errors.RepositoryError as err:
            raise _trust_error(err, self.reference_time) from err
        except (tuf_errors.DownloadError, OSError) as err:
            raise FetchError(f"repository {self.base}: {path}: download failed: {failure_reason(err)}") from err

    def index(self, item: CatalogItem) -> ItemIndex:
        """The verified chunk index of a catalog item."""
        index = ItemIndex.from_bytes(self.target(item.index))
        if (index.course, index.path, index.sha256, index.size) != (item.course, item.path, item.sha256, item.size):
            raise ManifestError(f"chunk index of {item.course}/{item.path} does not match the catalog")
        return index

    def chunk_url(self, digest: str) -> str:
        """Where a chunk lives in this repository."""
        return f"{self.base}/chunks/{digest[:2]}/{digest}"


def _read_newest(path: Path) -> datetime | None:
    """The newest published_at recorded at `path`, or None (missing or unreadable: nothing proven yet)."""
    try:
        return _aware(datetime.fromisoformat(json.loads(path.read_bytes())["published_at"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("courseware: %s unreadable (%s); expiry is judged by the clock alone", path, err)
        return None
