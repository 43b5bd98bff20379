"""The WAN budget: one live-adjustable token bucket every WAN transfer goes through (pull and upload).

API (asyncio; one Budget per box, shared by every WAN user):

    await budget.take(nbytes)          wait until `nbytes` may cross the WAN at the current rate, then
                                       count them toward the monthly cap; raises BudgetExhausted at the cap
    budget.record(nbytes)              count bytes that crossed without take() (e.g. TUF metadata)
    budget.observe(nbytes, seconds)    feed the link estimate with a transfer's network time (ignored while throttled)
    budget.set_live_reservation(kbps)  a live lesson streams this much over the WAN; sync takes the rest
    budget.status()                    a dict for the admin page / health (rate, window, cap, used, ...)
    budget.flush()                     persist the data counter now (also done every ~1 MB and on close)

The rate is the smallest of: the configured daily window's kbit/s (0 or no window = unlimited), and,
while a lesson is live, the link estimate minus the lesson's reservation. Time comes from injectable
clocks (`now` for windows and months, `monotonic` + `sleep` for the bucket), so tests need no waiting.
The monthly counter lives in an atomic JSON file and resets when the month changes; a power cut may
lose at most ~1 MB of counting. Windows and months follow the wall clock, also when it steps: a
step back into the previous month (a clock set too far ahead, then corrected) gives that month
its count back and adds what was counted since; a step back further keeps counting on the month
the clock now reads, never from zero.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sync import clock
from sync.atomic import write_atomic
from sync.errors import BudgetExhausted

log = logging.getLogger(__name__)

FLUSH_EVERY_BYTES = 1024 * 1024
MAX_SLEEP_S = 0.25  # re-check the rate this often while waiting (live changes apply quickly)
LIVE_FLOOR_KBPS = 16.0  # sync never starves completely while a lesson is live
EWMA = 0.3


@dataclass(frozen=True)
class Window:
    """A daily window [start, end) in local time with its rate in kbit/s (0 = unlimited)."""

    start: str
    end: str
    kbps: float

    def contains(self, moment: datetime) -> bool:
        """True when `moment`'s time of day falls in the window (windows may wrap past midnight)."""
        minute = moment.hour * 60 + moment.minute
        start, end = _minutes(self.start), _minutes(self.end)
        return start <= minute < end if start <= end else minute >= start or minute < end


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class Budget:
    """The WAN token bucket with daily windows, a monthly data cap, a link estimate and live priority."""

    def __init__(
        self,
        counter_path: Path,
        windows: list[Window] | None = None,
        monthly_cap_bytes: int = 0,
        *,
        link_kbps: float = 0.0,
        now: Callable[[], datetime] = clock.now,
        monotonic: Callable[[], float] = clock.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.counter_path = Path(counter_path)
        self.windows = list(windows or [])
        self.monthly_cap_bytes = monthly_cap_bytes
        self._link_bps = link_kbps * 125.0
        self._link_known = link_kbps > 0  # a configured rate: estimates never replace it
        self._now, self._monotonic, self._sleep = now, monotonic, sleep
        self._live_bps = 0.0
        self._tokens = 0.0
        self._stamp = monotonic()
        self._lock = threading.Lock()
        self._month, self._used, self._previous = self._load()
        self._unflushed = 0

    # -- configuration, live -------------------------------------------------------------------

    def configure(self, windows: list[Window], monthly_cap_bytes: int, link_kbps: float | None = None) -> None:
        """Apply new settings at once (the admin page changed them)."""
        self.windows = list(windows)
        self.monthly_cap_bytes = monthly_cap_bytes
        if link_kbps is not None:
            self._link_bps = link_kbps * 125.0
            self._link_known = link_kbps > 0

    def set_live_reservation(self, kbps: float) -> None:
        """Reserve `kbps` of the link for a live lesson (0 when the lesson ends)."""
        self._live_bps = max(0.0, kbps) * 125.0

    def observe(self, nbytes: int, seconds: float) -> None:
        """Feed the link estimate with a transfer of `nbytes` that took `seconds` (not when the rate is configured)."""
        if self._link_known or nbytes < 4096 or seconds <= 0 or self.rate() is not None:
            return  # a throttled transfer says nothing about the link; a configured one is what the school pays for
        sample = nbytes / seconds
        self._link_bps = sample if not self._link_bps else (1 - EWMA) * self._link_bps + EWMA * sample

    # -- the rate -------------------------------------------------------------------------------

    def window(self) -> Window | None:
        """The window in force now, if any."""
        moment = self._now()
        return next((w for w in self.windows if w.contains(moment)), None)

    def rate(self) -> float | None:
        """Bytes per second sync may use now; None = unlimited."""
        limits = []
        current = self.window()
        if current is not None and current.kbps > 0:
            limits.append(current.kbps * 125.0)
        if self._live_bps > 0:
            left = self._link_bps - self._live_bps if self._link_bps else 0.0
            limits.append(max(left, LIVE_FLOOR_KBPS * 125.0))
        return min(limits) if limits else None

    # -- the data cap ---------------------------------------------------------------------------

    def _month_key(self) -> str:
        return self._now().strftime("%Y-%m")

    def _load(self) -> tuple[str, int, tuple[str, int] | None]:
        try:
            data = json.loads(self.counter_path.read_text())
            previous = data.get("previous")
            before = (str(previous["month"]), int(previous["bytes"])) if previous else None
            return str(data["month"]), int(data["bytes"]), before
        except FileNotFoundError:
            return self._month_key(), 0, None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("budget: data counter %s unreadable, starting from 0", self.counter_path)
            return self._month_key(), 0, None

    @property
    def used_bytes(self) -> int:
        """WAN bytes counted this month."""
        self._roll_month()
        return self._used

    def exhausted(self) -> bool:
        """True when the monthly cap is set and reached."""
        return bool(self.monthly_cap_bytes) and self.used_bytes >= self.monthly_cap_bytes

    def _roll_month(self) -> None:
        month = self._month_key()
        if month == self._month:
            return
        with self._lock:
            if month > self._month:
                log.info("budget: new month %s, data counter reset (was %d bytes)", month, self._used)
                self._previous, self._used = (self._month, self._used), 0
            elif self._previous is not None and self._previous[0] == month:
                log.warning("budget: the clock went back to %s; its count is restored", month)
                self._used += self._previous[1]
                self._previous = None
            else:
                log.warning("budget: the clock went back to %s; the count carries on from %s", month, self._month)
            self._month, self._unflushed = month, FLUSH_EVERY_BYTES

    def record(self, nbytes: int) -> None:
        """Count `nbytes` that crossed the WAN (persisted in batches; see flush)."""
        self._roll_month()
        with self._lock:
            self._used += nbytes
            self._unflushed += nbytes

    def flush(self) -> None:
        """Persist the data counter (blocking: a small atomic write)."""
        with self._lock:
            counter: dict[str, Any] = {"month": self._month, "bytes": self._used}
            if self._previous is not None:
                counter["previous"] = {"month": self._previous[0], "bytes": self._previous[1]}
            data = json.dumps(counter).encode()
            self._unflushed = 0
        write_atomic(self.counter_path, data)

    # -- the bucket -----------------------------------------------------------------------------

    async def take(self, nbytes: int) -> None:
        """Wait until `nbytes` may cross the WAN, then count them; raise BudgetExhausted at the cap."""
        while True:
            if self.exhausted():
                raise BudgetExhausted(f"monthly WAN data cap of {self.monthly_cap_bytes // 1_000_000} MB reached")
            rate = self.rate()
            if rate is None or self._refill(rate, nbytes) >= nbytes:
                break
            await self._sleep(min((nbytes - self._tokens) / rate, MAX_SLEEP_S))
        if rate is not None:
            self._tokens -= nbytes
        self.record(nbytes)
        if self._unflushed >= FLUSH_EVERY_BYTES:
            await asyncio.to_thread(self.flush)

    def _refill(self, rate: float, nbytes: int) -> float:
        now = self._monotonic()
        capacity = max(rate * MAX_SLEEP_S, 16 * 1024, nbytes)
        self._tokens = min(capacity, self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        return self._tokens

    def status(self) -> dict[str, Any]:
        """What the admin page shows."""
        self._roll_month()
        rate, current = self.rate(), self.window()
        return {
            "rate_kbps": None if rate is None else round(rate / 125.0, 1),
            "window": None if current is None else {"start": current.start, "end": current.end, "kbps": current.kbps},
            "month": self._month,
            "used_bytes": self.used_bytes,
            "cap_bytes": self.monthly_cap_bytes,
            "exhausted": self.exhausted(),
            "live_reservation_kbps": round(self._live_bps / 125.0, 1),
            "link_estimate_kbps": round(self._link_bps / 125.0, 1),
        }
