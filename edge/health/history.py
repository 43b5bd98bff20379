"""The admin dashboard's history: CPU, memory, disk, link, sync throughput and viewers, sampled into SQLite.

One sample every `metrics.interval_s` (default a minute) goes into `<state_dir>/metrics.db`, a
database of its own (the box's database holds what must never be lost; this may be), and samples
older than `metrics.keep_days` are pruned. Each sample is also published on the bus as
`metrics.sample` so an open dashboard draws it at once.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from edge.core.component import Component
from edge.core.events import EventBus
from edge.core.ports import BudgetSource, ClockSource, ConfigSource

log = logging.getLogger(__name__)

DB_NAME = "metrics.db"
PROC_STAT = Path("/proc/stat")
PROC_MEMINFO = Path("/proc/meminfo")
class Watching(Protocol):
    """What the history reads of a student watching (edge.stream.viewers_service.WatchingStudent)."""

    @property
    def estimate_kbps(self) -> float | None: ...


SERIES = ("cpu_pct", "mem_pct", "disk_pct", "link_kbps", "viewer_kbps", "sync_kbps", "viewers")


@dataclass(frozen=True)
class Sample:
    """One point of every graph; None where there was nothing to measure."""

    at: float
    cpu_pct: float | None
    mem_pct: float | None
    disk_pct: float | None
    link_kbps: float | None  # the budget's estimate of the internet link
    viewer_kbps: float | None  # the median of the viewers' link estimates
    sync_kbps: float  # what courseware pulls and uploads moved over the internet since the last sample
    viewers: int


def cpu_times(path: Path = PROC_STAT) -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, or None where /proc says nothing."""
    try:
        first = path.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def cpu_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The CPU use between two readings of `cpu_times()`, in percent of all cores."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100.0 * (after[0] - before[0]) / (after[1] - before[1]), 1)


def memory_percent(path: Path = PROC_MEMINFO) -> float | None:
    """Memory in use (not available to programs), in percent."""
    try:
        fields = dict(line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
        total = int(fields["MemTotal"].split()[0])
        available = int(fields["MemAvailable"].split()[0])
    except (OSError, KeyError, ValueError):
        return None
    return round(100.0 * (total - available) / total, 1) if total else None


def disk_percent(path: Path) -> float | None:
    """How full the file system holding `path` is, in percent."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return round(100.0 * usage.used / usage.total, 1) if usage.total else None


def median(values: list[float]) -> float | None:
    """The median of `values`, None for none."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


class HistoryStore:
    """The samples table: append, prune, read a time range (blocking: call from a thread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        columns = ", ".join(f"{name} REAL" for name in SERIES)
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS samples (at REAL NOT NULL, {columns})")
        self._conn.execute("CREATE INDEX IF NOT EXISTS samples_at ON samples (at)")

    def add(self, sample: Sample, keep_s: float) -> None:
        """Store `sample` and drop those older than `keep_s` before it, in one transaction."""
        row = asdict(sample)
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(f"INSERT INTO samples ({names}) VALUES ({marks})", list(row.values()))
            self._conn.execute("DELETE FROM samples WHERE at < ?", [sample.at - keep_s])

    def since(self, start: float) -> list[dict[str, Any]]:
        """Every sample taken at or after `start`, oldest first."""
        cursor = self._conn.execute(f"SELECT at, {', '.join(SERIES)} FROM samples WHERE at >= ? ORDER BY at", [start])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._conn.close()


class MetricsHistory(Component):
    """Samples the box's figures on a timer and keeps them for the dashboard's graphs."""

    name = "history"

    def __init__(
        self,
        *,
        config: ConfigSource,
        bus: EventBus,
        clock: ClockSource,
        viewers: Callable[[], Sequence[Watching]],
        wan_budget: BudgetSource,
    ) -> None:
        """`viewers`: the students watching now (their bitrates); `wan_budget`: the link's use and rate."""
        super().__init__()
        self._config, self._bus, self._clock = config, bus, clock
        self._viewers, self._wan_budget = viewers, wan_budget
        self.store: HistoryStore | None = None
        self._cpu: tuple[int, int] | None = None
        self._synced: int | None = None
        self._sampled_at = 0.0

    async def start(self) -> None:
        """Open the history database and take the first CPU and data-used readings."""
        path = self._config().box.state_dir / DB_NAME
        self.store = await asyncio.to_thread(HistoryStore, path)
        self._cpu = await asyncio.to_thread(cpu_times)
        self._synced = self._sync_bytes()
        self._sampled_at = self._clock().monotonic()
        self.set_health("ok", "", history_samples_taken=0)

    async def run(self) -> None:
        """Take a sample every `metrics.interval_s` until cancelled."""
        taken = 0
        while True:
            await asyncio.sleep(self._config().metrics.interval_s)
            sample = await self.sample()
            taken += 1
            self.set_health("ok", "", history_samples_taken=taken)
            self._bus.publish("metrics.sample", **asdict(sample))

    async def stop(self) -> None:
        """Close the history database (idempotent)."""
        store, self.store = self.store, None
        if store is not None:
            await asyncio.to_thread(store.close)

    async def sample(self) -> Sample:
        """Measure everything now, store it and prune what is older than `metrics.keep_days`."""
        store = self._require()
        cpu = await asyncio.to_thread(cpu_times)
        mem = await asyncio.to_thread(memory_percent)
        disk = await asyncio.to_thread(disk_percent, self._config().box.state_dir)
        now = self._clock().monotonic()
        synced = self._sync_bytes()
        elapsed = max(now - self._sampled_at, 1e-3)
        moved = max(synced - self._synced, 0) if synced is not None and self._synced is not None else 0
        viewers = self._viewers()
        estimates = [v.estimate_kbps for v in viewers if v.estimate_kbps]
        sample = Sample(
            at=self._clock().wall(),
            cpu_pct=cpu_percent(self._cpu, cpu),
            mem_pct=mem,
            disk_pct=disk,
            link_kbps=self._link_kbps(),
            viewer_kbps=median(estimates),
            sync_kbps=round(moved * 8 / 1000 / elapsed, 1),
            viewers=len(viewers),
        )
        self._cpu, self._synced, self._sampled_at = cpu, synced, now
        await asyncio.to_thread(store.add, sample, self._config().metrics.keep_days * 86_400.0)
        return sample

    @property
    def running(self) -> bool:
        """True while the history database is open."""
        return self.store is not None

    async def since(self, start: float) -> list[dict[str, Any]]:
        """The samples taken at or after the wall time `start`, oldest first."""
        return await asyncio.to_thread(self._require().since, start)

    def _require(self) -> HistoryStore:
        if self.store is None:
            raise RuntimeError("the metrics history is not running")
        return self.store

    def _budget_status(self) -> dict[str, Any] | None:
        budget = self._wan_budget()
        return budget.status() if budget is not None else None

    def _sync_bytes(self) -> int | None:
        status = self._budget_status()
        return int(status["used_bytes"]) if status else None

    def _link_kbps(self) -> float | None:
        status = self._budget_status()
        estimate = float(status["link_estimate_kbps"]) if status else 0.0
        return estimate or None
