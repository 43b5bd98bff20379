"""What the daemon supervises: components with a start, a run loop, a stop and a health report."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ConfigDict, Field, RootModel, model_serializer

from edge.core.answer import Answer

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


class ComponentHealth(Answer):
    """One component's health with the supervisor's view: status, detail, restarts, last error, its figures."""

    status: Status
    detail: str = ""
    restarts: int = 0
    last_error: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)

    def metric(self, key: str, default: Any = None) -> Any:
        """One of the component's figures (`default` when it does not report it)."""
        return self.metrics.get(key, default)

    @model_serializer
    def _flat(self) -> dict[str, Any]:
        """The JSON form: the figures beside the status, not nested."""
        head = {"status": self.status, "detail": self.detail, "restarts": self.restarts, "last_error": self.last_error}
        return head | self.metrics


class Components(RootModel[dict[str, ComponentHealth]]):
    """Each component's health by name, and the ones the service layer reads by their role."""

    model_config = ConfigDict(frozen=True)

    def __getitem__(self, name: str) -> ComponentHealth:
        return self.root[name]

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self.root)

    def __len__(self) -> int:
        return len(self.root)

    def items(self) -> Iterator[tuple[str, ComponentHealth]]:
        """(name, health) of each component, in start order."""
        return iter(self.root.items())

    def of(self, name: str) -> ComponentHealth | None:
        """The component named `name`, or None when the box has none."""
        return self.root.get(name)

    def camera(self, name: str) -> ComponentHealth | None:
        """The configured camera `name`'s capture component."""
        return self.of(f"camera:{name}")

    def microphone(self, name: str) -> ComponentHealth | None:
        """The configured microphone `name`'s capture component."""
        return self.of(f"mic:{name}")

    @property
    def daemon(self) -> ComponentHealth | None:
        """The daemon's own report (the config it runs on, notify messages dropped)."""
        return self.of("daemon")

    @property
    def clock(self) -> ComponentHealth | None:
        """The clock watch (degraded while the clock is not synchronised)."""
        return self.of("clock")

    @property
    def courseware(self) -> ComponentHealth | None:
        """The courseware cache and its pulls."""
        return self.of("courseware")

    @property
    def uploads(self) -> ComponentHealth | None:
        """The recordings' upload queue."""
        return self.of("uploads")

    @property
    def uplink(self) -> ComponentHealth | None:
        """The WHIP publisher to a cloud server."""
        return self.of("uplink")
