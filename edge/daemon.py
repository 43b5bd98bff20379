"""The composition root: build the parts, start them in order, supervise, stop them in reverse."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.box import Box
from edge.core.component import Component, ComponentHealth, Health
from edge.core.config import BoxConfig
from edge.core.events import EventBus
from edge.core.logs import redact
from edge.core.notify import Notifier, watchdog_interval
from edge.doors.console.door import ConsoleDoor
from edge.doors.web.server import WebDoor
from edge.services import Parts, Services
from edge.wiring import standard_components

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 30.0
STOP_TIMEOUT_S = 3.0


class InjectedFault(RuntimeError):
    """Raised inside a component by the `--fault` drill to prove supervision works."""


@dataclass
class _Supervised:
    component: Component
    task: asyncio.Task[None] | None = None
    restarts: int = 0
    last_error: str = ""
    running: bool = False
    attempting: bool = False
    first_attempt: asyncio.Event | None = None


class Supervisor:
    """Owns every component's task: starts in order, restarts with backoff, stops in reverse."""

    def __init__(self, bus: EventBus, fault: str | None = None, backoff_first_s: float = BACKOFF_FIRST_S) -> None:
        self._bus = bus
        self._backoff_first_s = backoff_first_s
        self._items: dict[str, _Supervised] = {}
        self._fault = fault
        self._closing = False

    def add(self, component: Component) -> None:
        """Register a component; start order is registration order."""
        if component.name in self._items:
            raise ValueError(f"two components named {component.name!r}")
        self._items[component.name] = _Supervised(component)

    def get(self, name: str) -> Component | None:
        """A component by name."""
        item = self._items.get(name)
        return item.component if item else None

    def report(self) -> dict[str, ComponentHealth]:
        """Each component's health with the supervisor's own view (restarts, last error)."""
        out: dict[str, ComponentHealth] = {}
        for name, item in self._items.items():
            if item.running:
                health = item.component.health()
            else:
                health = Health("starting" if item.attempting else "down", item.last_error)
            if self._closing:
                health = Health("stopped", "", health.metrics)
            out[name] = ComponentHealth(
                status=health.status,
                detail=health.detail,
                restarts=item.restarts,
                last_error=item.last_error,
                metrics=health.metrics,
            )
        return out

    async def start_all(self) -> None:
        """Start every component in order; each gets one attempt before the next one starts."""
        for name, item in self._items.items():
            item.first_attempt = asyncio.Event()
            item.task = asyncio.create_task(self._supervise(item), name=f"supervise:{name}")
            await item.first_attempt.wait()

    async def stop_all(self) -> None:
        """Stop every component in reverse order (idempotent)."""
        self._closing = True
        for name, item in reversed(self._items.items()):
            task, item.task = item.task, None
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await self._stop_component(item)
            log.info("stopped %s", name)

    async def _stop_component(self, item: _Supervised) -> None:
        item.running = False
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):  # not wait_for: on 3.11 it can swallow our own cancellation
                await item.component.stop()
        except Exception:
            log.exception("stopping %s failed", item.component.name)

    async def _supervise(self, item: _Supervised) -> None:
        backoff = self._backoff_first_s
        while True:
            began = time.monotonic()
            try:
                await self._attempt(item)
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._failed(item, err)
            finally:
                if item.first_attempt is not None:
                    item.first_attempt.set()
            await self._stop_component(item)
            if time.monotonic() - began > STABLE_AFTER_S:
                backoff = self._backoff_first_s
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            item.restarts += 1
            log.info("restarting %s (restart %d)", item.component.name, item.restarts)

    async def _attempt(self, item: _Supervised) -> None:
        component = item.component
        item.attempting = True
        try:
            await component.start()
        finally:
            item.attempting = False
        item.running = True
        if item.first_attempt is not None:
            item.first_attempt.set()
        if self._fault == component.name:
            self._fault = None
            await asyncio.sleep(0.5)
            raise InjectedFault(f"fault drill: {component.name} made to fail once")
        await component.run()

    def _failed(self, item: _Supervised, err: Exception) -> None:
        name = item.component.name
        item.last_error = redact(f"{type(err).__name__}: {err}")  # shown in /healthz: no URL credentials
        item.running = False
        log.error("%s failed: %s", name, item.last_error)
        log.debug("%s", "".join(traceback.format_exception(err)))
        self._bus.publish("component.failed", component=name, error=item.last_error)


class DaemonReport(Component):
    """The daemon's own health: which config it runs on, and how many notify messages systemd missed."""

    name = "daemon"

    def __init__(self, notifier: Notifier, config_note: str) -> None:
        super().__init__()
        self._notifier = notifier
        self._config_note = config_note

    def health(self) -> Health:
        """Degraded while the box runs on the built-in defaults (no config file yet)."""
        return Health("degraded" if self._config_note else "ok", self._config_note, self._metrics())

    def _metrics(self) -> dict[str, Any]:
        return {"notify_dropped": self._notifier.dropped}


PartsFactory = Callable[[Services], Parts]  # the components built on the kernel, in start order
DoorsFactory = Callable[[Box], list[Component]]  # the doors, built on the box and started last


def standard_doors(box: Box) -> list[Component]:
    """The web door and the console door."""
    return [WebDoor(box), ConsoleDoor(box)]


class Daemon:
    """The whole box: config -> bus -> kernel -> supervised components -> box -> doors."""

    def __init__(
        self,
        config: BoxConfig,
        parts: PartsFactory = standard_components,
        doors: DoorsFactory = standard_doors,
        notifier: Notifier | None = None,
        fault: str | None = None,
        config_note: str = "",
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.bus = EventBus()
        self.services = Services(config, self.bus)
        self.supervisor = Supervisor(self.bus, fault)
        self.notifier = notifier or Notifier()
        self._parts, self._doors = parts, doors
        self._config_path = config_path
        self._box: Box | None = None
        self._report = DaemonReport(self.notifier, config_note)
        self._ready_sent = False
        self.restart_requested = False
        self._stop = asyncio.Event()
        self._stopped: asyncio.Future[None] | None = None

    @property
    def box(self) -> Box:
        """The doors' box (built as the daemon starts, once its components exist)."""
        if self._box is None:
            raise RuntimeError("the box is built as the daemon starts")
        return self._box

    def request_stop(self) -> None:
        """Ask the daemon to shut down (signal handlers call this)."""
        self._stop.set()

    def request_restart(self) -> None:
        """Ask the daemon to shut down and be started again (`restart_requested` tells the caller)."""
        self.restart_requested = True
        self._stop.set()

    async def run(self) -> None:
        """Start everything, wait for a stop request, stop everything."""
        loop = asyncio.get_running_loop()
        self.bus.bind(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        watchdog: asyncio.Task[None] | None = None
        try:
            await self._start()
            watchdog = asyncio.create_task(self._watchdog(), name="systemd-watchdog")
            await self._stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if watchdog is not None:
                watchdog.cancel()
                await asyncio.gather(watchdog, return_exceptions=True)
            await self.close()

    async def _start(self) -> None:
        self.notifier.status("starting")
        logging.getLogger().addHandler(self.services.logs)
        self.services.open()
        parts = self._parts(self.services)
        self._box = box = Box(
            self.config,
            self.bus,
            self._config_path,
            services=self.services,
            parts=parts,
            supervisor=self.supervisor,
            restart=self.request_restart,
        )
        self.supervisor.add(self._report)
        for component in [*parts.components, *self._doors(box)]:
            self.supervisor.add(component)
        await self.supervisor.start_all()
        self._ready_sent = self.notifier.ready(self.status_line())
        log.info("classbox ready: %s", self.status_line())

    async def close(self) -> None:
        """Stop everything in reverse order (idempotent; a second call awaits the first)."""
        if self._stopped is not None:
            await self._stopped
            return
        self._stopped = asyncio.get_running_loop().create_future()
        try:
            self.notifier.stopping()
            await self.supervisor.stop_all()
            if self._box is not None:
                self._box.close()  # the kernel's database, and a factory reset asked for
            else:
                self.services.close()
            self.notifier.close()
            logging.getLogger().removeHandler(self.services.logs)
        finally:
            self._stopped.set_result(None)

    def status_line(self) -> str:
        """One line a technician reads in `systemctl status`."""
        health = self.box.health()
        lesson, bad, own = health.lesson, health.attention(), health.components.daemon
        parts = [health.status, f"lesson: {lesson.title if lesson else 'none'}"]
        if bad:
            parts.append("attention: " + ", ".join(bad))
        if own is not None and own.detail:
            parts.append(own.detail)
        return "; ".join(parts)

    async def _watchdog(self) -> None:
        interval = watchdog_interval()
        period = min(interval or 5.0, 5.0)
        last_status = ""
        while True:
            if interval is not None:
                self.notifier.watchdog()
            status = self.status_line()
            if not self._ready_sent:  # dropped at start: systemd still waits for it
                self._ready_sent = self.notifier.ready(status)
                last_status = status if self._ready_sent else ""
            elif status != last_status and self.notifier.status(status):
                last_status = status  # a dropped STATUS= goes again on the next tick
            await asyncio.sleep(period)
