"""Which layer a viewer's link can carry, from its receiver reports (loss, round-trip time)."""

from __future__ import annotations

from dataclasses import dataclass

LADDER = ("none", "low", "high")  # "none": audio (and the board) only


@dataclass
class LinkReport:
    """What the viewer's receiver reports say about its link over the last interval."""

    loss: float  # fraction lost, 0..1
    rtt_s: float | None
    bandwidth_kbps: float | None = None  # the viewer's own estimate of its link (REMB), if it sends one
    sending_kbps: float = 0.0  # what the box sent this viewer over the same interval


@dataclass
class LayerPolicy:
    """Steps down at once on a bad report, up only after `good_reports_to_rise` good ones in a row.

    A report is bad when loss or round-trip time is too high, or when the viewer's own estimate of
    its link (REMB) is well below what the box is sending it and not climbing: its receiver saw
    queues build up (a browser's first estimates start low and ramp up; they do not count).
    REMB cannot say that a higher layer would fit (a receiver estimates at most about 1.5x what
    it gets), so rising rests on loss and round-trip time alone.
    """

    down_loss: float = 0.10
    up_loss: float = 0.02
    down_rtt_s: float = 0.8
    up_rtt_s: float = 0.4
    congested_ratio: float = 0.8  # REMB below this share of the sending rate means congestion
    good_reports_to_rise: int = 5
    _good: int = 0
    _last_estimate: float | None = None

    def next_layer(self, current: str, report: LinkReport | None, data_saver: bool) -> str:
        """The layer to give next; `data_saver` caps it at the low layer."""
        ceiling = "low" if data_saver else "high"
        if LADDER.index(current) > LADDER.index(ceiling):
            self._good = 0
            return ceiling
        if report is None:
            return current
        rtt = report.rtt_s or 0.0
        if report.loss >= self.down_loss or rtt >= self.down_rtt_s or self._congested(report):
            self._good = 0
            return LADDER[max(LADDER.index(current) - 1, 0)]
        if report.loss <= self.up_loss and rtt <= self.up_rtt_s:
            self._good += 1
        else:
            self._good = 0
        if self._good >= self.good_reports_to_rise and current != ceiling:
            self._good = 0
            return LADDER[LADDER.index(current) + 1]
        return current

    def _congested(self, report: LinkReport) -> bool:
        """The estimate is under the sending rate and not climbing (a browser's first estimates ramp up)."""
        estimate, sending, previous = report.bandwidth_kbps, report.sending_kbps, self._last_estimate
        if estimate is None:
            return False
        self._last_estimate = estimate
        if previous is None or estimate > previous * 1.02:
            return False
        return sending > 0 and estimate < sending * self.congested_ratio


@dataclass
class SendCapacity:
    """How many viewers the box itself can feed the high layer: shrinks while its event loop lags, regrows slowly.

    Every viewer costs the one event loop per packet sent; a lagging loop delays every viewer, so
    the box moves a tenth of its high-layer viewers to the low layer (fewer packets) until it keeps up.
    """

    overload_lag_s: float = 0.1
    calm_lag_s: float = 0.03
    calm_checks_to_grow: int = 10
    lagging_checks_to_shed: int = 2  # one pause (a GC, a slow disk) is not an overload
    cap: int | None = None
    _calm: int = 0
    _lagging: int = 0

    def note_lag(self, lag_s: float, high_viewers: int, viewers: int) -> None:
        """Feed one measurement of the loop's lag with the current viewer counts."""
        self._lagging = self._lagging + 1 if lag_s >= self.overload_lag_s else 0
        if self._lagging >= self.lagging_checks_to_shed and high_viewers:
            current = high_viewers if self.cap is None else min(self.cap, high_viewers)
            self.cap = max(0, current - max(1, current // 10))
            self._calm = 0
        elif lag_s <= self.calm_lag_s and self.cap is not None:
            self._calm += 1
            if self._calm >= self.calm_checks_to_grow:
                self._calm = 0
                self.cap += 1
        else:
            self._calm = 0
        if self.cap is not None and self.cap >= viewers:
            self.cap = None

    def allows_high(self, high_viewers: int) -> bool:
        """True when one more viewer may get the high layer."""
        return self.cap is None or high_viewers < self.cap
