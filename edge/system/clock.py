"""The `clock` component: watches the box's wall clock for steps and says in health whether to trust it.

A step (wall and monotonic deltas disagree by more than a second, e.g. NTP answering after an
offline boot) is logged once with its offset and published on the bus as `clock.stepped`. Health
is degraded while the clock is not synchronised, with the last step in the report.
"""

from __future__ import annotations

import asyncio
import logging
import time

from edge.core.component import Component
from edge.core.events import EventBus
from edge.core.ports import ClockSource
from edge.core.texts import N_
from sync.clock import Step

log = logging.getLogger(__name__)

CHECK_S = 0.5
NOT_SET = N_("Clock not set: schedules and dates may be wrong")


class ClockWatch(Component):
    """Checks the box clock twice a second; reports steps and synchronisation."""

    name = "clock"

    def __init__(self, clock: ClockSource, bus: EventBus, check_s: float = CHECK_S) -> None:
        super().__init__()
        self._clock, self._bus = clock, bus
        self._check_s = check_s
        self._synchronised: bool | None = None

    async def start(self) -> None:
        await self._refresh()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._check_s)
            step = self._clock().steps.check()
            if step is not None:
                self._stepped(step)
            await self._refresh()

    def _stepped(self, step: Step) -> None:
        label = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(step.at))
        log.warning("the wall clock stepped by %s (%.3f s); it now reads %s", step.describe(), step.offset_s, label)
        self._bus.publish("clock.stepped", offset_s=step.offset_s, at=step.at)

    async def _refresh(self) -> None:
        # Asking the kernel is a quick syscall, but the flag file sits on a filesystem.
        self._synchronised = await asyncio.to_thread(self._clock().synchronised)
        self._report()

    def _report(self) -> None:
        steps = self._clock().steps
        last = steps.last
        metrics = {
            "synchronised": int(bool(self._synchronised)),
            "steps": steps.steps,
            "last_step_offset_s": last.offset_s if last else None,
            "last_step_at": last.at if last else None,
        }
        stepped = f"the clock stepped by {last.describe()}" if last else ""
        if not self._synchronised:
            self.set_health("degraded", NOT_SET + (f"; {stepped}" if stepped else ""), **metrics)
        else:
            self.set_health("ok", stepped or "synchronised", **metrics)
