"""Pull courseware: refresh trusted metadata, then fetch missing chunks from LAN peers first, then the origin.

Every chunk is checked against the sha256 its verified index names before it enters the store, so
peers need no trust. Each chunk is committed in its own transaction as it arrives: a pull killed
mid-way resumes where it stopped and fetches again only what was in flight. An item switches to
its new version only when whole; until then the box keeps serving the old one. Bytes from the
origin over HTTP(S) go through the WAN budget; peers and USB (file://) repositories do not.

Run standalone (no daemon): `python -m sync.pull --store DB --repo URL --root ROOT.json --trust-dir DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import aiohttp

from sync.chunks import ItemIndex, ManifestError
from sync.clock import utcnow
from sync.errors import (
    BudgetExhausted,
    CorruptChunk,
    FetchError,
    QuotaExceeded,
    SyncError,
    TrustError,
    failure_reason,
)
from sync.peers import PullPeers
from sync.repo import Catalog, TrustedRepo, local_path
from sync.store import Store

log = logging.getLogger(__name__)

READ_PIECE = 16 * 1024
DEFAULT_CONCURRENCY = 4
CHUNK_TIMEOUT_S = 60.0
# A LAN peer answers a chunk (at most 256 KiB) quickly or not at all: connect, gap between bytes, whole chunk.
PEER_TIMEOUT = aiohttp.ClientTimeout(total=10.0, sock_connect=2.0, sock_read=3.0)


class PeerLied(FetchError):
    """A peer's answer is not the chunk asked for (too long, too short, wrong bytes)."""


class Budget(Protocol):
    """The WAN budget (sync/budget.py): `take` waits for room and counts; `record` only counts."""

    async def take(self, nbytes: int) -> None:
        """Wait until `nbytes` may cross the WAN, then count them."""

    def record(self, nbytes: int) -> None:
        """Count bytes that already crossed the WAN."""

    def observe(self, nbytes: int, seconds: float) -> None:
        """Feed the link estimate."""

    def exhausted(self) -> bool:
        """True when the monthly data cap is reached."""


PeerList = Callable[[], Iterable[str]]


@dataclass
class PullReport:
    """What one pull did."""

    version: int = 0
    items: int = 0
    items_complete: int = 0
    chunks_from_peers: int = 0
    chunks_from_origin: int = 0
    bytes_from_peers: int = 0
    bytes_from_origin: int = 0
    metadata_bytes: int = 0
    refused: list[str] = field(default_factory=list)
    peers_dropped: dict[str, str] = field(default_factory=dict)  # peer -> why it was not asked again
    seconds: float = 0.0


class Puller:
    """One courseware pull into a store (create one per pull or reuse; `pull()` is not reentrant)."""

    def __init__(
        self,
        store: Store,
        repo_url: str,
        trust_dir: Path,
        trusted_root: bytes,
        *,
        budget: Budget | None = None,
        peers: PeerList | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        priority: Callable[[], set[str]] | None = None,
        now: Callable[[], datetime] = utcnow,
        peer_timeout: aiohttp.ClientTimeout = PEER_TIMEOUT,
    ) -> None:
        self.store = store
        self.repo_url = repo_url
        self.trust_dir = trust_dir
        self.trusted_root = trusted_root
        self.budget = budget
        self.peers = peers or (lambda: ())
        self.concurrency = max(1, concurrency)
        self.priority = priority or store.pinned
        self.now = now  # the wall clock TUF judges expiry by
        self.peer_timeout = peer_timeout
        self.report = PullReport()
        self._peers = PullPeers()

    async def pull(self) -> PullReport:
        """Bring the store to the repository's current version; raise TrustError/FetchError if refused."""
        began = time.monotonic()
        self.report = report = PullReport()
        self._peers = PullPeers()
        report.peers_dropped = self._peers.dropped
        repo = await asyncio.to_thread(TrustedRepo, self.repo_url, self.trust_dir, self.trusted_root, self.now)
        if self.budget is not None and local_path(repo.base) is None and self.budget.exhausted():
            raise BudgetExhausted("monthly WAN data cap reached: courseware sync waits")
        try:
            catalog = await asyncio.to_thread(repo.refresh)
            indexes = await asyncio.to_thread(self._apply_catalog, repo, catalog)
        finally:
            report.metadata_bytes = repo.metadata_bytes
            if self.budget is not None and local_path(repo.base) is None:
                self.budget.record(repo.metadata_bytes)
        report.version, report.items = catalog.version, len(indexes)
        wanted = [ix for ix in indexes if await asyncio.to_thread(self.store.want, ix)]
        missing = await asyncio.to_thread(self._missing, wanted)
        log.info(
            "courseware: version %d, %d items to update, %d chunks to fetch", catalog.version, len(wanted), len(missing)
        )
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CHUNK_TIMEOUT_S)) as session:
            await self._fetch_all(session, repo, missing)
        for index in indexes:
            if await asyncio.to_thread(self.store.complete, index.course, index.path):
                report.items_complete += 1
        report.seconds = time.monotonic() - began
        return report

    def _apply_catalog(self, repo: TrustedRepo, catalog: Catalog) -> list[ItemIndex]:
        first = self.priority()
        items = sorted(catalog.items, key=lambda it: (it.course not in first, it.course, it.path))
        indexes = []
        for item in items:
            try:
                indexes.append(repo.index(item))
            except (ManifestError, TrustError) as err:
                self.report.refused.append(f"{item.course}/{item.path}: {err}")
                log.error("courseware: refused %s/%s: %s", item.course, item.path, err)  # noqa: TRY400
        for course, title in catalog.titles.items():
            self.store.set_course(course, title)
        self.store.retain({(it.course, it.path) for it in catalog.items})
        return indexes

    def _missing(self, indexes: list[ItemIndex]) -> list[tuple[str, int]]:
        seen: set[str] = set()
        out = []
        for index in indexes:
            for digest, length in self.store.missing(index):
                if digest not in seen:
                    seen.add(digest)
                    out.append((digest, length))
        return out

    async def _fetch_all(
        self, session: aiohttp.ClientSession, repo: TrustedRepo, missing: list[tuple[str, int]]
    ) -> None:
        queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        for entry in missing:
            queue.put_nowait(entry)
        try:
            async with asyncio.TaskGroup() as group:
                for n in range(min(self.concurrency, len(missing))):
                    group.create_task(self._worker(session, repo, queue), name=f"courseware-pull:{n}")
        except* (BudgetExhausted, QuotaExceeded) as stopped:
            raise stopped.exceptions[0] from None

    async def _worker(
        self, session: aiohttp.ClientSession, repo: TrustedRepo, queue: asyncio.Queue[tuple[str, int]]
    ) -> None:
        while not queue.empty():
            digest, length = queue.get_nowait()
            await asyncio.to_thread(self.store.check_floor, length)  # before its bytes cross the WAN
            try:
                data = await self._fetch_chunk(session, repo, digest, length)
            except FetchError as err:  # CorruptChunk included: the item stays at its old version
                self.report.refused.append(str(err))
                log.error("courseware: %s", err)  # noqa: TRY400
                continue
            await asyncio.to_thread(self.store.put_chunk, digest, data)

    async def _fetch_chunk(self, session: aiohttp.ClientSession, repo: TrustedRepo, digest: str, length: int) -> bytes:
        for peer in list(self.peers()):
            if not await self._peers.turn(peer):
                continue
            data = await self._from_peer(session, peer, digest, length)
            if data is not None:
                self.report.chunks_from_peers += 1
                self.report.bytes_from_peers += len(data)
                return data
        data = await self._from_origin(session, repo.chunk_url(digest), length)
        _check(digest, length, data, repo.base)
        self.report.chunks_from_origin += 1
        self.report.bytes_from_origin += len(data)
        return data

    async def _from_peer(self, session: aiohttp.ClientSession, peer: str, digest: str, length: int) -> bytes | None:
        """The chunk from `peer`, or None (it has not got it, or it lied or stalled and is dropped)."""
        try:
            data = await self._ask_peer(session, peer, digest, length)
        except FetchError as err:  # PeerLied, CorruptChunk
            self._peers.answered(peer, str(err))
        except (aiohttp.ClientError, TimeoutError) as err:
            self._peers.answered(peer, failure_reason(err))
        except BaseException:
            self._peers.release(peer)  # cancelled mid-request: no verdict on the peer
            raise
        else:
            self._peers.answered(peer, None)
            return data
        return None

    async def _ask_peer(self, session: aiohttp.ClientSession, peer: str, digest: str, length: int) -> bytes | None:
        async with session.get(f"{peer.rstrip('/')}/api/chunks/{digest}", timeout=self.peer_timeout) as response:
            if response.status != 200:
                return None  # an honest "not here"
            data = await _read_exactly(response, length)
        _check(digest, length, data, peer)
        return data

    async def _from_origin(self, session: aiohttp.ClientSession, url: str, length: int) -> bytes:
        path = local_path(url)
        if path is not None:
            try:
                return await asyncio.to_thread(path.read_bytes)
            except OSError as err:
                raise FetchError(f"chunk {url}: {err.strerror}") from err
        try:
            async with session.get(url) as response:
                if response.status != 200:
                    raise FetchError(f"chunk {url}: HTTP {response.status}")
                return await self._read_metered(response, length)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise FetchError(f"chunk {url}: {failure_reason(err)}") from err

    async def _read_metered(self, response: aiohttp.ClientResponse, length: int) -> bytes:
        pieces = []
        received = 0
        network_s = 0.0
        while received <= length:
            began = time.monotonic()
            piece = await response.content.read(READ_PIECE)
            network_s += time.monotonic() - began
            if not piece:
                break
            if self.budget is not None:
                await self.budget.take(len(piece))
            pieces.append(piece)
            received += len(piece)
        if self.budget is not None:
            self.budget.observe(received, network_s)
        return b"".join(pieces)


async def _read_exactly(response: aiohttp.ClientResponse, length: int) -> bytes:
    """The body when it is exactly `length` bytes, holding at most one byte more; raise PeerLied otherwise."""
    declared = response.content_length
    if declared is not None and declared != length:
        raise PeerLied(f"declared {declared} bytes for a chunk of {length}")
    data = bytearray()
    while len(data) <= length:
        piece = await response.content.read(length + 1 - len(data))
        if not piece:
            break
        data += piece
    if len(data) > length:
        raise PeerLied(f"sent more than the {length} bytes of the chunk")
    if len(data) < length:
        raise PeerLied(f"sent only {len(data)} of the {length} bytes of the chunk")
    return bytes(data)


def _check(digest: str, length: int, data: bytes, source: str) -> None:
    if len(data) != length or hashlib.sha256(data).hexdigest() != digest:
        raise CorruptChunk(f"chunk {digest[:12]} from {source} does not match its sha256, refused")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sync.pull", description="Pull courseware into a store.")
    parser.add_argument("--store", type=Path, required=True, help="the SQLite courseware store")
    parser.add_argument("--repo", required=True, help="repository URL or folder")
    parser.add_argument("--root", type=Path, required=True, help="the trusted root metadata file")
    parser.add_argument("--trust-dir", type=Path, required=True, help="where TUF keeps its metadata cache")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Pull once and print the report; exit 1 when the repository was refused or unreachable."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    store = Store(args.store)
    try:
        puller = Puller(store, args.repo, args.trust_dir, args.root.read_bytes(), concurrency=args.concurrency)
        report = asyncio.run(puller.pull())
    except (SyncError, BudgetExhausted) as err:
        log.error("courseware pull refused: %s", err)  # noqa: TRY400
        return 1
    finally:
        store.close()
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
