"""What every capture driver shares: the device interface, the health report and the reconnect backoff."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

CaptureStatus = Literal["ok", "degraded", "down"]


@dataclass(frozen=True)
class CaptureStats:
    """A source's view of itself: health status, measured rate, drops and how fresh its data is."""

    status: CaptureStatus
    fps: float  # frames per second delivered from the device over the last ~2 s (slate/silence excluded)
    dropped: int  # frames the device should have produced but did not (gaps, failed reads, skipped ticks)
    last_frame_age_s: float | None  # seconds since the last real frame; None before the first one
    detail: str = ""  # why the status is not "ok", in words a technician reads
    delivered: int = 0  # frames handed to consumers, slate/silence included
    reconnects: int = 0  # times the device was reopened after a failure


class Backoff:
    """Exponential reconnect delays: first, 2*first, ... capped at `maximum`; `reset()` after success."""

    def __init__(self, first: float = 0.5, maximum: float = 10.0) -> None:
        self.first = first
        self.maximum = maximum
        self._next = first

    def next(self) -> float:
        """The delay to wait before the next attempt."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Start again from the first delay (the device worked)."""
        self._next = self.first


class Device(ABC):
    """A camera, microphone or speaker: it owns its threads, reports its health, never raises for a missing device."""

    name: str

    @abstractmethod
    def start(self) -> None:
        """Start the device's own threads; never raises for a missing or broken device."""

    @abstractmethod
    def stop(self) -> None:
        """Stop and join the threads (idempotent)."""

    @abstractmethod
    def stats(self) -> CaptureStats:
        """Health and counters of this device."""


def start_threads(prefix: str, targets: dict[str, Callable[[], None]]) -> list[threading.Thread]:
    """Start one named daemon thread per role (`<prefix>:<role>`) and return them for `stop_threads`."""
    threads = [
        threading.Thread(target=target, name=f"{prefix}:{role}", daemon=True) for role, target in targets.items()
    ]
    for thread in threads:
        thread.start()
    return threads


def stop_threads(stopping: threading.Event, cond: threading.Condition, threads: list[threading.Thread]) -> None:
    """Set the stop flag, wake every waiting consumer and join the device's threads."""
    stopping.set()
    with cond:
        cond.notify_all()
    for thread in threads:
        thread.join()
