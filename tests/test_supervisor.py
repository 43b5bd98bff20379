"""The supervisor: start order, restart with backoff after a crash, reverse stop; the event bus."""

from __future__ import annotations

import asyncio

import pytest

from edge.component import Component
from edge.daemon import Supervisor
from edge.events import EventBus


class Recorder(Component):
    """A component that logs its life to a shared list and crashes `crashes` times."""

    def __init__(self, name: str, journal: list[str], crashes: int = 0) -> None:
        super().__init__()
        self.name = name
        self.journal = journal
        self.crashes = crashes

    async def start(self) -> None:
        self.journal.append(f"start {self.name}")
        self.set_health("ok")

    async def run(self) -> None:
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError(f"{self.name} broke")
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")


async def test_starts_in_order_stops_in_reverse() -> None:
    journal: list[str] = []
    supervisor = Supervisor(EventBus())
    for name in ("camera", "media", "web"):
        supervisor.add(Recorder(name, journal))
    await supervisor.start_all()
    assert journal == ["start camera", "start media", "start web"]
    await supervisor.stop_all()
    assert journal[3:] == ["stop web", "stop media", "stop camera"]
    assert {c["status"] for c in supervisor.report().values()} == {"stopped"}


async def test_crashed_component_is_reported_and_restarted() -> None:
    bus = EventBus()
    failures = bus.subscribe("component.")
    journal: list[str] = []
    supervisor = Supervisor(bus, backoff_first_s=0.05)
    supervisor.add(Recorder("mic", journal, crashes=2))
    supervisor.add(Recorder("web", journal))
    await supervisor.start_all()
    event = await asyncio.wait_for(failures.get(), 2)
    assert event.data == {"component": "mic", "error": "RuntimeError: mic broke"}
    for _ in range(100):
        report = supervisor.report()["mic"]
        if report["restarts"] == 2 and report["status"] == "ok":
            break
        await asyncio.sleep(0.02)
    assert report["restarts"] == 2
    assert report["status"] == "ok"
    assert report["last_error"] == "RuntimeError: mic broke"
    assert supervisor.report()["web"]["restarts"] == 0
    assert journal.count("start mic") == 3
    await supervisor.stop_all()


async def test_component_that_cannot_start_is_down_and_retried() -> None:
    class Broken(Component):
        name = "camera"
        attempts = 0

        async def start(self) -> None:
            Broken.attempts += 1
            raise OSError("no such device")

    supervisor = Supervisor(EventBus(), backoff_first_s=0.02)
    supervisor.add(Broken())
    await supervisor.start_all()
    assert supervisor.report()["camera"]["status"] == "down"
    await asyncio.sleep(0.2)
    assert Broken.attempts >= 3
    await supervisor.stop_all()


async def test_duplicate_names_refused() -> None:
    supervisor = Supervisor(EventBus())
    supervisor.add(Recorder("a", []))
    with pytest.raises(ValueError, match="two components"):
        supervisor.add(Recorder("a", []))


async def test_slow_subscriber_loses_oldest_not_publisher() -> None:
    bus = EventBus()
    with bus.subscribe("audio.", maxsize=3) as sub:
        for level in range(5):
            bus.publish("audio.level", rms=level)
        bus.publish("lesson.started")
        assert sub.dropped == 2
        assert [(await sub.get()).data["rms"] for _ in range(3)] == [2, 3, 4]
