"""The doctor: what is wrong with the box, in plain words, with the fix for each (devices, disk, clock,
network, courseware freshness, upload backlog).

One implementation for `classbox doctor`, the console's `status` and the admin dashboard. The facts
come from what the box already knows: the components' health reports while the daemon runs (the same
reports the status strip reads), else the config and the state on disk (device probes, the state
database read-only, the courseware store's last good pull). `findings(facts)` is pure; gathering the
facts blocks (disk, devices, SQLite): call `gather` in a thread.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from edge.core.component import Components
from edge.core.config import BoxConfig
from edge.core.texts import N_
from edge.courseware.service import LAST_PULL_KEY
from edge.health.status import OFFLINE_WORDS
from edge.media.devices import device_problems
from edge.recording.catalogue import Catalogue
from edge.system.network import addresses, has_default_route
from sync.clock import system_synchronised

MB = 1024 * 1024
DISK_LOW_FRACTION = 0.1  # under 10 % free is nearly full whatever the disk's size
STALE_AFTER_S = 24 * 3600.0  # courseware not refreshed for a day (or three pull intervals, if longer)
BACKLOG_AFTER_S = 24 * 3600.0  # a recording still waiting to upload a day after it ended
WAITING = ("queued", "uploading")
CAMERA_FIX = N_("Check the camera's USB cable and that the Devices settings name it (console: `devices`)")
MIC_FIX = N_("Check the microphone's cable and that the Devices settings name it (console: `devices`)")
FIX_LABEL = N_("fix: %(fix)s")
NOTHING_WRONG = N_("Nothing wrong found.")


@dataclass(frozen=True)
class Finding:
    """Something wrong, in words: its area, the problem and the fix (N_()-marked templates with their values)."""

    key: str
    area: str  # devices | disk | clock | network | courseware | uploads
    problem: str
    fix: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def words(self, gettext: Callable[[str], str] = str) -> tuple[str, str]:
        """(problem, fix) in words, translated by `gettext` (English when a translation lost a placeholder)."""
        return _fill(gettext(self.problem), self.problem, self.values), _fill(gettext(self.fix), self.fix, self.values)

    def to_json(self, gettext: Callable[[str], str] = str) -> dict[str, Any]:
        """The finding as the doors send it."""
        problem, fix = self.words(gettext)
        return {"key": self.key, "area": self.area, "problem": problem, "fix": fix}


def _fill(translated: str, english: str, values: Mapping[str, Any]) -> str:
    try:
        return translated % values if values else translated
    except (KeyError, TypeError, ValueError):
        return english % values if values else english


@dataclass
class Facts:
    """What the doctor looks at; gathered by `gather` (tests build it directly)."""

    config: BoxConfig
    components: Components = field(default_factory=lambda: Components({}))  # empty: no daemon running
    device_problems: list[str] = field(default_factory=list)  # offline probes of the configured devices
    disk_free: int | None = None
    disk_total: int | None = None
    synchronised: bool = True
    addresses: list[tuple[str, str]] = field(default_factory=list)  # (interface, address), no loopback
    default_route: bool = True
    last_pull_ok_at: float | None = None
    recordings: list[dict[str, Any]] = field(default_factory=list)
    now: float = field(default_factory=time.time)

    @property
    def running(self) -> bool:
        """True when the facts come from a running daemon's components."""
        return len(self.components) > 0


def gather(
    config: BoxConfig,
    components: Components | None = None,
    recordings: list[dict[str, Any]] | None = None,
    last_pull_ok_at: float | None = None,
) -> Facts:
    """The facts of this box now (blocking: disk, device probes, SQLite). Without components: offline."""
    state = config.box.state_dir
    facts = Facts(config, components or Components({}))
    try:
        usage = shutil.disk_usage(_existing(state))
        facts.disk_free, facts.disk_total = usage.free, usage.total
    except OSError:
        pass
    if not facts.running:
        facts.device_problems = device_problems(config)
    facts.synchronised = _synchronised(facts.components)
    facts.addresses, facts.default_route = addresses(), has_default_route()
    facts.recordings = recordings if recordings is not None else read_recordings(state / "box.db")
    facts.last_pull_ok_at = last_pull_ok_at if last_pull_ok_at is not None else read_last_pull(state / "courseware.db")
    return facts


def _existing(path: Path) -> Path:
    """`path`, or its nearest parent that exists (a state folder not made yet lives on that disk)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _synchronised(components: Components) -> bool:
    clock = components.clock
    if clock is not None:
        return clock.status == "ok"
    return system_synchronised()


def _read_only(path: Path) -> sqlite3.Connection | None:
    if not path.exists():
        return None
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return None


def read_recordings(path: Path) -> list[dict[str, Any]]:
    """The recordings catalogue of a state database, read-only ([] when there is none yet)."""
    conn = _read_only(path)
    if conn is None:
        return []
    try:
        return [r.to_json() for r in Catalogue(sqlite_utils.Database(conn)).recent()]
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def read_last_pull(path: Path) -> float | None:
    """When the courseware store last finished a pull without problems (None: never, or no store)."""
    conn = _read_only(path)
    if conn is None:
        return None
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", [LAST_PULL_KEY]).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    try:
        return float(row[0]) if row else None
    except (TypeError, ValueError):
        return None


def report_lines(found: list[Finding], gettext: Callable[[str], str] = str) -> list[str]:
    """The findings as lines a terminal shows: `[area] problem`, then the fix indented."""
    lines = []
    for finding in found:
        problem, fix = finding.words(gettext)
        lines += [f"[{finding.area}] {problem}", "    " + gettext(FIX_LABEL) % {"fix": fix}]
    return lines


# -- the findings -------------------------------------------------------------------------------------


def findings(facts: Facts) -> list[Finding]:
    """Everything wrong with the box, by area, in the order a technician fixes them."""
    return [
        *device_findings(facts),
        *disk_findings(facts),
        *clock_findings(facts),
        *network_findings(facts),
        *courseware_findings(facts),
        *upload_findings(facts),
    ]


def device_findings(facts: Facts) -> list[Finding]:
    """A configured camera or microphone that is absent (offline probe) or down / struggling (its health)."""
    found = [
        Finding(f"device:{n}", "devices", N_("Device missing: %(problem)s"), _device_fix(problem), {"problem": problem})
        for n, problem in enumerate(facts.device_problems)
    ]
    for name, report in facts.components.items():
        kind, _, label = name.partition(":")
        status, values = report.status, {"name": label, "detail": report.detail or "-"}
        if kind == "camera" and status in ("down", "degraded"):
            problem = N_("Camera %(name)s is not delivering pictures (%(detail)s)")
            found.append(Finding(name, "devices", problem, _device_fix("camera"), values))
        elif kind == "mic" and status in ("down", "degraded"):
            problem = N_("Microphone %(name)s is not delivering sound (%(detail)s)")
            found.append(Finding(name, "devices", problem, _device_fix("mic"), values))
    return found


def _device_fix(problem: str) -> str:
    return MIC_FIX if problem.startswith(("mic", "microphones.")) else CAMERA_FIX


def disk_findings(facts: Facts) -> list[Finding]:
    """The state disk full (recording stops) or nearly full (recordings will stop soon)."""
    if facts.disk_free is None or not facts.disk_total:
        return []
    floor = facts.config.recording.min_free_mb * MB
    values = {"free_mb": facts.disk_free // MB, "total_mb": facts.disk_total // MB}
    fix = N_("Delete old recordings on the admin page, or check that uploads work so they can be removed")
    if facts.disk_free < floor:
        problem = N_("Disk full: %(free_mb)s MB free of %(total_mb)s MB; lessons are no longer recorded")
        return [Finding("disk", "disk", problem, fix, values)]
    if facts.disk_free < 2 * floor or facts.disk_free < DISK_LOW_FRACTION * facts.disk_total:
        problem = N_("Disk nearly full: %(free_mb)s MB free of %(total_mb)s MB")
        return [Finding("disk", "disk", problem, fix, values)]
    return []


def clock_findings(facts: Facts) -> list[Finding]:
    """A clock that is not synchronised (dates of recordings and schedules may be wrong)."""
    if facts.synchronised:
        return []
    problem = N_("Clock not set: schedules and dates may be wrong")
    fix = N_("Connect the box to a network that reaches a time server (NTP); the clock sets itself")
    return [Finding("clock", "clock", problem, fix)]


def network_findings(facts: Facts) -> list[Finding]:
    """No address, no gateway, or (daemon running) the courseware pull could not reach anyone."""
    if not facts.addresses:
        problem = N_("No network address: the box is not on the LAN")
        fix = N_("Check the network cable and the switch port; the console's `net` shows and sets the address")
        return [Finding("network", "network", problem, fix)]
    if not facts.default_route:
        problem = N_("No gateway: the box cannot reach the internet")
        fix = N_("Check the school's DHCP server, or set a gateway with the console's `net set`")
        return [Finding("network", "network", problem, fix)]
    courseware = facts.components.courseware
    detail = courseware.detail if courseware else ""
    if courseware and courseware.status == "degraded" and any(word in detail for word in OFFLINE_WORDS):
        problem = N_("No internet: %(detail)s")
        fix = N_("Check the gateway and the name servers (console: `net`); lessons still work offline")
        return [Finding("network", "network", problem, fix, {"detail": detail})]
    return []


def courseware_findings(facts: Facts) -> list[Finding]:
    """Courseware never pulled, or not refreshed for a day (or three pull intervals)."""
    cfg = facts.config.courseware
    if not cfg.repo_url:
        return []
    fix = N_("Check the internet link and the courseware repository address; console `sync now` tries again")
    if facts.last_pull_ok_at is None:
        problem = N_("Courseware has never been updated from the repository")
        return [Finding("courseware", "courseware", problem, fix)]
    age = facts.now - facts.last_pull_ok_at
    if age > max(STALE_AFTER_S, 3 * cfg.pull_interval_s):
        day = dt.datetime.fromtimestamp(facts.last_pull_ok_at).date().isoformat()
        problem = N_("Courseware not updated since %(date)s")
        return [Finding("courseware", "courseware", problem, fix, {"date": day})]
    return []


def upload_findings(facts: Facts) -> list[Finding]:
    """Recordings the server refused, or a backlog still waiting a day after the lesson."""
    found = []
    failed = [r for r in facts.recordings if r.get("upload_state") == "failed"]
    if failed:
        problem = N_("%(count)s recordings were refused by the upload server")
        fix = N_("Ask IT staff to check upload.tus_url and its token; the recordings stay on the box")
        found.append(Finding("uploads:failed", "uploads", problem, fix, {"count": len(failed)}))
    waiting = [r for r in facts.recordings if r.get("upload_state") in WAITING]
    old = [r for r in waiting if facts.now - (r.get("ended_at") or r.get("started_at") or facts.now) > BACKLOG_AFTER_S]
    if old:
        oldest = min(r["started_at"] for r in old)
        values = {"count": len(waiting), "date": dt.datetime.fromtimestamp(oldest).date().isoformat()}
        problem = N_("Upload backlog: %(count)s recordings waiting, the oldest since %(date)s")
        fix = N_("Check the internet link and the monthly data cap; uploads resume by themselves")
        found.append(Finding("uploads:backlog", "uploads", problem, fix, values))
    return found
