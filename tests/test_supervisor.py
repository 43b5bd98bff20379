"""The supervisor: start order, restart with backoff after a crash, reverse stop; the event bus."""

from __future__ import annotations

import asyncio

import pytest

from edge.core.component import Component
from edge.core.events import EventBus
from edge.daemon import Supervisor


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
    for _ in range(200):
        if Broken.attempts >= 3:
            break
        await asyncio.sleep(0.02)
    assert Broken.attempts >= 3
    await supervisor.stop_all()


async def test_stop_all_while_a_failed_component_is_being_stopped_still_stops_it() -> None:
    class Failing(Component):
        name = "camera"
        stopping_all: asyncio.Task[None] | None = None

        async def run(self) -> None:
            raise RuntimeError("camera broke")

        async def stop(self) -> None:
            if Failing.stopping_all is None:  # the daemon shuts down just as the failed camera's stop returns
                Failing.stopping_all = asyncio.create_task(supervisor.stop_all(), name="test:stop-all")

    supervisor = Supervisor(EventBus(), backoff_first_s=0.02)
    supervisor.add(Failing())
    await supervisor.start_all()
    for _ in range(100):
        if Failing.stopping_all is not None:
            break
        await asyncio.sleep(0.01)
    assert Failing.stopping_all is not None
    await asyncio.wait_for(Failing.stopping_all, 5)
    assert supervisor.report()["camera"]["status"] == "stopped"


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
