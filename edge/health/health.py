"""Health: the box's status from its components' reports, and the alarms people must read."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from pydantic import ConfigDict, Field, RootModel, model_serializer

from edge.core.answer import Answer
from edge.core.component import Status
from edge.core.events import EventBus

log = logging.getLogger(__name__)


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


class Reports(Protocol):
    """What the service layer asks of the supervisor (edge.daemon.Supervisor)."""

    def report(self) -> Mapping[str, ComponentHealth]: ...


class ComponentStatus(Answer):
    """A component's status alone (what anyone may read)."""

    status: Status


class PublicHealth(Answer):
    """What anyone may read: the overall status and each component's status, no details."""

    status: str
    components: dict[str, ComponentStatus]


def overall_status(components: Components) -> str:
    """The box's status from its components' reports: down, starting, degraded or ok."""
    statuses = {c.status for _, c in components.items()}
    if statuses & {"down", "starting"}:
        return "down" if "down" in statuses else "starting"
    return "degraded" if "degraded" in statuses else "ok"


def component_reports(supervisor: Reports | None) -> Components:
    """Each component's health, or none before the daemon attached its supervisor."""
    return Components(dict(supervisor.report()) if supervisor is not None else {})


def public_health(components: Components) -> PublicHealth:
    """What anyone may read: the overall status and each component's status, no details."""
    statuses = {name: ComponentStatus(status=c.status) for name, c in components.items()}
    return PublicHealth(status=overall_status(components), components=statuses)


class Alarms:
    """What the teacher and the technician must know, in plain words, until the condition is over."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._raised: dict[str, str] = {}

    def raise_alarm(self, name: str, message: str, **params: object) -> None:
        """Raise (or reword) alarm `name`; `alarm.raised` is published when it changes.

        `message` is an English `N_()` text; with `params` it is a `%(name)s` template, and the event
        also carries it (`msgid`) and the values so a door can translate it before filling them in.
        """
        text = message % params if params else message
        if self._raised.get(name) != text:
            self._raised[name] = text
            log.warning("alarm: %s", text)
            translatable = {"msgid": message, "params": params} if params else {}
            self._bus.publish("alarm.raised", name=name, message=text, **translatable)

    def clear_alarm(self, name: str) -> None:
        """The condition behind an alarm is over; `alarm.cleared` is published if it was raised."""
        if self._raised.pop(name, None) is not None:
            self._bus.publish("alarm.cleared", name=name)

    def now(self) -> dict[str, str]:
        """The alarms raised now, by name."""
        return dict(self._raised)
