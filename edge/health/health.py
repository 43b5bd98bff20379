"""Health: the box's status from its components' reports, and the alarms people must read."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from edge.core.answer import Answer
from edge.core.component import ComponentHealth, Components, Status
from edge.core.events import EventBus

log = logging.getLogger(__name__)


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
