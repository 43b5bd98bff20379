"""Prometheus metrics, read from the service layer at scrape time (nothing is double-booked)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.health.overview import BoxHealth
from edge.media.signals import CHECKS

STATUSES = ("starting", "ok", "degraded", "down", "stopped")


def _metric_name(*parts: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", "_".join(("classbox", *parts))).lower()


class HealthSource(Protocol):
    """What the metrics read at scrape time (edge.box.Box, which the web door hands over)."""

    def health(self) -> BoxHealth: ...
    @property
    def microphone_muted(self) -> bool: ...


class BoxCollector(Collector):
    """Turns `Box.health()` into metric families: component status, restarts, numeric details."""

    def __init__(self, box: HealthSource) -> None:
        self._box = box

    def collect(self) -> Iterator[Metric]:
        health = self._box.health()
        status = GaugeMetricFamily(
            "classbox_component_status", "1 for the status a component is in", labels=["component", "status"]
        )
        restarts = CounterMetricFamily(
            "classbox_component_restarts", "times the supervisor restarted a component", labels=["component"]
        )
        details: dict[str, GaugeMetricFamily] = {}
        for name, comp in health.components.items():
            for state in STATUSES:
                status.add_metric([name, state], 1.0 if comp.status == state else 0.0)
            restarts.add_metric([name], comp.restarts)
            for key, value in comp.metrics.items():
                if key == "restarts" or isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                metric_name = _metric_name(key)
                family = details.setdefault(
                    metric_name,
                    GaugeMetricFamily(metric_name, f"{key} as reported by components", labels=["component"]),
                )
                family.add_metric([name], float(value))
        yield status
        yield restarts
        yield from details.values()
        alarms = GaugeMetricFamily(
            "classbox_alarm", "1 for each alarm raised now, its message in plain words", labels=["alarm", "message"]
        )
        for name, message in health.alarms.items():
            alarms.add_metric([name, message], 1.0)
        yield alarms
        signals = GaugeMetricFamily(
            "classbox_signal", "1 while a signal check (silent microphone, black picture ...) is on", labels=["check"]
        )
        for name in CHECKS:
            signals.add_metric([name.removeprefix("signal.")], 1.0 if name in health.alarms else 0.0)
        yield signals
        muted = GaugeMetricFamily("classbox_microphone_muted", "1 while the teacher has muted the microphone")
        muted.add_metric([], 1.0 if self._box.microphone_muted else 0.0)
        yield muted
        live = GaugeMetricFamily("classbox_lesson_live", "1 while a lesson is live")
        live.add_metric([], 1.0 if health.lesson else 0.0)
        yield live
        uptime = GaugeMetricFamily("classbox_uptime_seconds", "seconds since the daemon started")
        uptime.add_metric([], health.uptime_s)
        yield uptime


def make_registry(box: HealthSource) -> CollectorRegistry:
    """A registry of this box's own (never the process-global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BoxCollector(box))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of `registry`."""
    return generate_latest(registry)
