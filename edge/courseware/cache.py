"""Courseware on the box: the store, periodic pulls under the WAN budget, LAN peers, and what doors ask for.

`CoursewareComponent` (component name `courseware`) opens `<state_dir>/courseware.db`, pulls from
`courseware.repo_url` every `pull_interval_s` (or when asked), and while a lesson is live reserves
`budget.live_lesson_kbps` of the WAN link for it. The daemon hands it to the box as its courseware;
doors reach it through the service layer's courseware operations.
A refused repository (bad signature, expired, rolled back, corrupt) is logged and reported in health;
the box keeps serving what it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from edge.core.component import Component
from edge.core.config import BoxConfig
from edge.core.logs import redact
from edge.core.ports import ClockSource, ConfigSource, LessonHooks, LessonView
from edge.courseware.service import LAST_PULL_KEY
from edge.discovery import service as discovery
from edge.discovery.service import DiscoveryPort
from sync.budget import Budget, Window
from sync.chunks import ManifestError
from sync.errors import BudgetExhausted, StoreClosed, SyncError, TrustError
from sync.peers import PeerDirectory
from sync.pull import Puller, PullReport
from sync.store import Hold, Store

log = logging.getLogger(__name__)

ROOT_FILE = "courseware-root.json"
PEER_SETTLE_S = 2.0
TOUCH_EVERY_S = 60.0
SERVE_BATCH_BYTES = 1024 * 1024  # bytes read per thread hop when serving
DRAIN_S = 2.0  # how long a stop waits for responses being sent (the supervisor allows 3 s for a stop)


def _take(pieces: Iterator[bytes], limit: int) -> bytes:
    """Up to about `limit` bytes from `pieces`, joined (b"" at the end)."""
    out: list[bytes] = []
    size = 0
    for piece in pieces:
        out.append(piece)
        size += len(piece)
        if size >= limit:
            break
    return b"".join(out)


def _problems(report: PullReport) -> str:
    """What went wrong in a pull that ran ("" when nothing did): how many chunks or items, and the first reason."""
    if not report.refused:
        return ""
    return redact(f"{len(report.refused)} chunk(s) or item(s) not updated; first: {report.refused[0]}")


def windows_of(config: BoxConfig) -> list[Window]:
    """The configured budget windows."""
    return [Window(w.start, w.end, w.kbps) for w in config.budget.windows]


class CoursewareComponent(Component):
    """The courseware cache of the box and its sync loop."""

    name = "courseware"

    def __init__(
        self, config: ConfigSource, clock: ClockSource, lessons: LessonHooks, lan: DiscoveryPort | None = None
    ) -> None:
        """`lan`: the discovery component whose zeroconf finds the LAN's courseware peers (None: no peers)."""
        super().__init__()
        self._config, self._clock, self._lan = config, clock, lan
        self.store: Store | None = None
        self.budget: Budget | None = None
        self.last_report: PullReport | None = None
        self.last_error = ""
        self.last_attempt_at: float | None = None
        self.paused = False
        self._wake = asyncio.Event()
        self._touched: dict[tuple[str, str], float] = {}
        self._pull_lock = asyncio.Lock()
        lessons.on_start(self._lesson_started)
        lessons.on_stop(self._lesson_stopped)

    @property
    def state_dir(self) -> Path:
        """Where the store, the TUF cache and the data counter live."""
        return self._config().box.state_dir

    def trusted_root_path(self) -> Path:
        """The root metadata file the box trusts."""
        configured = self._config().courseware.trusted_root
        return Path(configured) if configured else self.state_dir / ROOT_FILE

    async def start(self) -> None:
        cfg = self._config()
        quota = cfg.courseware.quota_mb * 1024 * 1024
        self.store = await asyncio.to_thread(Store, self.state_dir / "courseware.db", quota)
        self.budget = Budget(
            self.state_dir / "wan-budget.json",
            windows_of(self._config()),
            cfg.budget.monthly_cap_mb * 1_000_000,
            link_kbps=cfg.budget.link_kbps,
        )
        self._report_health()

    @property
    def peers(self) -> PeerDirectory | None:
        """The LAN's courseware peers, as the discovery component sees them (None without discovery)."""
        lan = self._lan
        return lan.peers if lan is not None else None

    async def run(self) -> None:
        if self.peers is not None:
            await asyncio.sleep(PEER_SETTLE_S)  # let LAN peers answer before the first pull
        asked = False
        while True:
            self.apply_settings()
            if self._config().courseware.repo_url and (asked or not self.paused):
                await self.pull_once()
            # asyncio.timeout, not wait_for: in 3.11 wait_for loses a cancel that races a wake-up (a pull asked
            # for while the daemon stops), and the supervisor would wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config().courseware.pull_interval_s):
                    await self._wake.wait()
            asked = self._wake.is_set()  # `sync now` pulls also while paused
            self._wake.clear()

    async def stop(self) -> None:
        store, self.store = self.store, None  # new requests get 503 from here on
        if self.budget is not None:
            await asyncio.to_thread(self.budget.flush)
        if store is not None:
            await asyncio.to_thread(store.close, DRAIN_S)  # responses being sent may finish first

    def apply_settings(self) -> None:
        """Take the budget and quota settings from the config again (the admin page changed them)."""
        cfg = self._config()
        if self.budget is not None:
            self.budget.configure(
                windows_of(self._config()), cfg.budget.monthly_cap_mb * 1_000_000, cfg.budget.link_kbps or None
            )
        if self.store is not None:
            self.store.quota_bytes = cfg.courseware.quota_mb * 1024 * 1024
            self.store.min_free_bytes = cfg.courseware.min_free_mb * 1024 * 1024

    # -- pulls ----------------------------------------------------------------------------------

    def pull_now(self) -> None:
        """Ask the sync loop to pull at once."""
        self._wake.set()

    async def pull_once(self) -> PullReport | None:
        """Pull now (one at a time); log and report a refused or unreachable repository in words."""
        store, cfg = self._require(), self._config().courseware
        async with self._pull_lock:
            root = self.trusted_root_path()
            self.last_attempt_at = self._clock().wall()
            verdict = "failed"
            try:
                trusted = await asyncio.to_thread(root.read_bytes)
                puller = Puller(
                    store,
                    cfg.repo_url,
                    self.state_dir / "tuf",
                    trusted,
                    budget=self.budget,
                    peers=self._peer_urls,
                    concurrency=cfg.concurrency,
                    now=self._clock().utcnow,
                )
                self.last_report = await puller.pull()
                self.last_error = _problems(self.last_report)
            except OSError as err:
                self.last_error = f"trusted root {root}: {err.strerror}"
            except (SyncError, BudgetExhausted) as err:
                self.last_error = redact(str(err))
                verdict = "refused" if isinstance(err, TrustError | ManifestError) else "failed"
            if self.last_error:
                log.error("courseware pull %s: %s (serving what the box has)", verdict, self.last_error)
            else:  # the doctor reads how fresh the courseware is from the store, also with the daemon down
                await asyncio.to_thread(store.set_meta, LAST_PULL_KEY, f"{self._clock().wall():.3f}")
            self._report_health()
            return self.last_report

    def _peer_urls(self) -> list[str]:
        if not self._config().courseware.lan_peers:
            return []
        return discovery.peer_urls(self._lan)

    def _report_health(self) -> None:
        store = self._require()
        report = self.last_report
        metrics = {
            "courseware_bytes": store.used_bytes,
            "courseware_wan_bytes_month": self.budget.used_bytes if self.budget else 0,
            "courseware_chunks_from_peers": report.chunks_from_peers if report else 0,
            "courseware_chunks_from_origin": report.chunks_from_origin if report else 0,
        }
        if self.budget is not None and self.budget.exhausted():
            self.set_health("degraded", "monthly WAN data cap reached: courseware sync paused", **metrics)
        elif self.last_error:
            self.set_health("degraded", self.last_error, **metrics)
        else:
            self.set_health("ok", f"version {report.version if report else '-'}", **metrics)

    async def _lesson_started(self, lesson: LessonView) -> None:
        if self.budget is not None:
            self.budget.set_live_reservation(self._config().budget.live_lesson_kbps)

    async def _lesson_stopped(self, lesson: LessonView) -> None:
        if self.budget is not None:
            self.budget.set_live_reservation(0)

    # -- what doors ask for ---------------------------------------------------------------------

    def _require(self) -> Store:
        if self.store is None:
            raise StoreClosed("the courseware cache is not running (starting or restarting)")
        return self.store

    async def listing(self) -> dict[str, Any]:
        """Courses and items with their cache state, the budget and the last pull."""
        store = self._require()
        courses = await asyncio.to_thread(store.courses)
        return {
            "courses": courses,
            "used_bytes": store.used_bytes,
            "quota_bytes": store.quota_bytes,
            "budget": self.budget.status() if self.budget else None,
            "last_pull": self._last_pull(),
            "error": self.last_error,
            "peers": self._peer_urls(),
        }

    def _last_pull(self) -> dict[str, Any] | None:
        """The last pull's report (if one ever ran) and how the last attempt ended: when, ok, why not."""
        if self.last_attempt_at is None and self.last_report is None:
            return None
        report = dict(self.last_report.__dict__) if self.last_report else {}
        report["refused"] = [redact(line) for line in report.get("refused", [])]  # chunk URLs may carry credentials
        return {**report, "at": self.last_attempt_at, "ok": not self.last_error, "error": self.last_error}

    async def open(self, course: str, path: str) -> Hold:
        """Hold the current version of an item for one reader (raise NotInStore); marks it used.

        The caller must `release()` the hold, also when it sends no body; `read()` releases at its end.
        """
        store = self._require()
        hold = await asyncio.to_thread(store.hold, course, path)
        now = time.monotonic()
        if now - self._touched.get((course, path), -TOUCH_EVERY_S) >= TOUCH_EVERY_S:  # players send many Ranges
            self._touched[(course, path)] = now
            try:
                await asyncio.to_thread(store.touch, course, path)
            except BaseException:
                await self.release(hold)
                raise
        return hold

    async def read(self, hold: Hold, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes [start, end) of a held item, chunk by chunk, read in a thread; releases the hold at the end."""
        try:
            pieces = hold.read(start, end)
            while batch := await asyncio.to_thread(_take, pieces, SERVE_BATCH_BYTES):
                yield batch
        finally:
            await self.release(hold)

    async def release(self, hold: Hold) -> None:
        """Let go of a hold (idempotent): an item evicted while it was read is freed now."""
        if not hold.released:
            await asyncio.to_thread(hold.release)

    async def chunk(self, digest: str) -> bytes | None:
        """A stored chunk (for LAN peers), or None."""
        return await asyncio.to_thread(self._require().get_chunk, digest)

    async def pin(self, course: str, seconds: float, reason: str = "") -> None:
        """Keep a course from eviction for `seconds` (an upcoming lesson uses it)."""
        await asyncio.to_thread(self._require().pin, course, time.time() + seconds, reason)
