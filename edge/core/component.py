"""What the daemon supervises: components with a start, a run loop, a stop and a health report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["starting", "ok", "degraded", "down", "stopped"]


@dataclass
class Health:
    """A component's own view of itself, for /healthz, /metrics, the panel and the console."""

    status: Status = "starting"
    detail: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


class Component:
    """A supervised part of the daemon.

    The supervisor calls `start()` once per attempt, then `run()`; if either raises, it logs the
    error, calls `stop()`, waits with backoff and tries again. `run()` returning normally means
    the component has nothing long-running to do. `stop()` must be idempotent.
    """

    name: str = "component"

    def __init__(self) -> None:
        self._health = Health()

    async def start(self) -> None:
        """Acquire what the component needs; quick (the next component waits for it)."""

    async def run(self) -> None:
        """The long-running part; by default waits until cancelled."""
        await asyncio.Event().wait()

    async def stop(self) -> None:
        """Release everything; idempotent."""

    def health(self) -> Health:
        """The current health report."""
        return self._health

    def set_health(self, status: Status, detail: str = "", **metrics: Any) -> None:
        """Update the health report (components call this as their state changes)."""
        self._health = Health(status, detail, metrics or self._health.metrics)
