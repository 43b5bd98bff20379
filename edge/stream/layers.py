"""Which layer a viewer's link can carry, from its receiver reports (loss, round-trip time)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LADDER = ("none", "low", "high")  # worst first; "none": audio (and the board) only; the hub passes the configured one


def ladder(layers: Iterable[str]) -> tuple[str, ...]:
    """The ladder, worst first, for the configured video layers given best first."""
    return ("none", *reversed(tuple(layers)))


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
    congested_ratio: float = 0.8  # REMB below this share of the (smoothed) sending rate means congestion
    congested_reports_to_drop: int = 2  # keyframes make the sending rate jumpy: one report is not enough
    good_reports_to_rise: int = 5
    ladder: tuple[str, ...] = LADDER  # the configured layers (see `ladder`)
    steps_for_estimate: int = 0  # step-downs that the viewer's bandwidth estimate alone caused
    _good: int = 0
    _congested_reports: int = 0
    _last_estimate: float | None = None
    _sending_kbps: float | None = None  # smoothed over about five reports

    def next_layer(self, current: str, report: LinkReport | None, data_saver: bool) -> str:
        """The layer to give next; `data_saver` caps it at the low layer."""
        ceiling = "low" if data_saver else "high"
        if self.ladder.index(current) > self.ladder.index(ceiling):
            self._good = 0
            return ceiling
        if report is None:
            return current
        rtt = report.rtt_s or 0.0
        lossy = report.loss >= self.down_loss or rtt >= self.down_rtt_s
        congested = self._congested(report)
        if lossy or congested:
            self.steps_for_estimate += int(congested and not lossy)
            self._good = 0
            return self.ladder[max(self.ladder.index(current) - 1, 0)]
        if report.loss <= self.up_loss and rtt <= self.up_rtt_s:
            self._good += 1
        else:
            self._good = 0
        if self._good >= self.good_reports_to_rise and current != ceiling:
            self._good = 0
            return self.ladder[self.ladder.index(current) + 1]
        return current

    def _congested(self, report: LinkReport) -> bool:
        """The estimate stays under the smoothed sending rate and is not climbing (browsers ramp up from low)."""
        if report.sending_kbps > 0:
            last = self._sending_kbps
            self._sending_kbps = report.sending_kbps if last is None else 0.7 * last + 0.3 * report.sending_kbps
        estimate, previous, sending = report.bandwidth_kbps, self._last_estimate, self._sending_kbps
        if estimate is None:
            return False
        self._last_estimate = estimate
        climbing = previous is None or estimate > previous * 1.02
        if climbing or not sending or estimate >= sending * self.congested_ratio:
            self._congested_reports = 0
            return False
        self._congested_reports += 1
        return self._congested_reports >= self.congested_reports_to_drop

    def describe(self, report: LinkReport | None) -> str:
        """The report as a log line shows it."""
        if report is None:
            return "no report"
        rtt = "-" if report.rtt_s is None else f"{report.rtt_s * 1000:.0f} ms"
        estimate = "-" if report.bandwidth_kbps is None else f"{report.bandwidth_kbps:.0f} kbps"
        return f"loss {report.loss:.1%}, rtt {rtt}, estimate {estimate}, sending {self._sending_kbps or 0:.0f} kbps"


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
