"""The dashboard: what the admin page shows besides its graphs, and the history port the graphs read."""

from __future__ import annotations

from typing import Any, Protocol

from edge.core.component import Components
from sync.budget import Budget
from sync.pull import PullReport
from sync.store import Store


class HistoryPort(Protocol):
    """What the service layer asks of the metrics history component (edge.health.history.MetricsHistory)."""

    @property
    def running(self) -> bool: ...
    async def since(self, start: float) -> list[dict[str, Any]]: ...


UPLOAD_FIGURES = ("upload_queue", "upload_bytes_pending", "upload_bytes_sent")


def uploads(components: Components) -> dict[str, Any]:
    """The upload queue's figures from the uploads component's health report (zeros without one)."""
    report = components.uploads
    return {key: report.metric(key, 0) if report else 0 for key in UPLOAD_FIGURES}


def courseware(
    store: Store | None, report: PullReport | None, last_attempt_at: float | None, error: str
) -> dict[str, Any]:
    """The courseware cache's use and the last pull's progress (items complete of items)."""
    return {
        "used_bytes": store.used_bytes if store is not None else 0,
        "quota_bytes": store.quota_bytes if store is not None else 0,
        "items": report.items if report else 0,
        "items_complete": report.items_complete if report else 0,
        "last_attempt_at": last_attempt_at,
        "error": error or "",
    }


def budget(wan: Budget | None) -> dict[str, Any] | None:
    """The month's data used against the cap, the link estimate, the rate now."""
    return wan.status() if wan is not None else None
