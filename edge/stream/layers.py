"""Which layer a viewer's link can carry: from the box's own estimate of it, or its receiver reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

LADDER = ("none", "low", "high")  # "none": audio (and the board) only; the rest ordered by bitrate
HEADROOM = 0.85  # a layer fits when its bitrate plus audio is at most this share of the estimate
PROBE_STEP = 2.0  # a probe asks at most twice the estimate: a failed one overfills a weak link only briefly


@dataclass
class LinkReport:
    """What the viewer's receiver reports say about its link over the last interval."""

    loss: float  # fraction lost, 0..1
    rtt_s: float | None
    bandwidth_kbps: float | None = None  # the viewer's own estimate of its link (REMB), if it sends one
    sending_kbps: float = 0.0  # what the box sent this viewer over the same interval
    estimate_kbps: float | None = None  # the box's own estimate from transport feedback, when negotiated
    congested: bool = True  # with an estimate: a queue stands at the bottleneck or packets were lost
    probe_results: list[bool | None] = field(default_factory=list)  # probes ended since the last report (None: short)


@dataclass
class LayerPolicy:
    """Picks each viewer's layer; with a sender-side estimate it steps and probes, else it reads reports.

    With an estimate (transport-cc): a layer fits when its bitrate plus audio is at most 85 % of the
    estimate. The viewer never stays below the best layer that fits; it steps down one layer at a
    time once the estimate cannot carry even the layer it has while the link is congested (two
    reports in a row, or at once on heavy loss or when the estimate is far short), so between 85 %
    and 100 % it holds (hysteresis), and so does a short estimate left by a queue that drained;
    after `stable_s` on a layer it asks for a probe at the next layer's need, and after a failed
    probe waits twice as long before the next one (a probe the box itself could not send in full is
    asked again at once). A viewer starts on the lowest video layer (see `ViewerHub`) and climbs
    from it probe by probe, each a second after the last layer's keyframe, until a probe fails or
    the link steps it down: a weak link never sees more than one layer above what it carries.

    Without one (a player that sends no transport feedback), a report is bad when loss or
    round-trip time is too high, or when the viewer's own estimate (REMB) is well below what the
    box is sending it and not climbing; it steps down at once on a bad report and climbs after
    `good_reports_to_rise` good ones (REMB cannot say that a higher layer would fit).
    """

    down_loss: float = 0.10
    up_loss: float = 0.02
    down_rtt_s: float = 0.8
    up_rtt_s: float = 0.4
    congested_ratio: float = 0.8  # REMB below this share of the (smoothed) sending rate means congestion
    congested_reports_to_drop: int = 2  # keyframes make the sending rate jumpy: one report is not enough
    good_reports_to_rise: int = 5
    ladder: Sequence[str] = LADDER
    layer_kbps: dict[str, float] = field(default_factory=lambda: {"low": 350.0, "high": 1500.0})
    audio_kbps: float = 48.0
    short_reports_to_drop: int = 2
    far_short_share: float = 0.7
    stable_s: float = 3.0
    startup_stable_s: float = 1.0  # while climbing from the start, until a probe fails: time for a keyframe
    probe_backoff_s: float = 3.0
    max_probe_backoff_s: float = 10.0  # a link that recovers is found within about this (libwebrtc: 5 s)
    steps_for_estimate: int = 0  # step-downs that the viewer's bandwidth estimate alone caused
    _good: int = 0
    _congested_reports: int = 0
    _last_estimate: float | None = None
    _sending_kbps: float | None = None  # smoothed over about five reports
    _short: int = 0
    _stable_since: float | None = None
    _backoff_s: float = 0.0
    _next_probe_at: float = 0.0
    _probing: bool = False
    _starting: bool = True  # a viewer starts on the lowest video layer and probes up one layer at a time

    def next_layer(self, current: str, report: LinkReport | None, data_saver: bool, now: float = 0.0) -> str:
        """The layer to give next; `data_saver` caps it at the low layer."""
        ceiling = self.ceiling(data_saver)
        if self.ladder.index(current) > self.ladder.index(ceiling):
            self._good = 0
            return self._moved(ceiling, now)
        if report is None:
            return current
        if report.estimate_kbps is not None:
            return self._moved(self._by_estimate(current, report, ceiling, now), now, current)
        return self._by_reports(current, report, ceiling)

    def ceiling(self, data_saver: bool) -> str:
        """The highest layer this viewer may get."""
        return "low" if data_saver and "low" in self.ladder else self.ladder[-1]

    def need_kbps(self, layer: str) -> float:
        """What a layer costs on the link, audio included."""
        return self.audio_kbps + (self.layer_kbps.get(layer, 0.0) if layer != self.ladder[0] else 0.0)

    def fits(self, layer: str, estimate_kbps: float) -> bool:
        """True when the layer plus audio is at most 85 % of the estimate."""
        return self.need_kbps(layer) <= HEADROOM * estimate_kbps

    # -- with the box's own estimate --------------------------------------------------------------

    def _by_estimate(self, current: str, report: LinkReport, ceiling: str, now: float) -> str:
        for success in report.probe_results:
            self._probe_ended(success, now)
        estimate, index = report.estimate_kbps or 0.0, self.ladder.index(current)
        heavy_loss = report.loss >= self.down_loss or (report.rtt_s or 0.0) >= self.down_rtt_s
        need = self.need_kbps(current)
        if index > 0 and estimate < need and (report.congested or heavy_loss):
            self._short += 1
            far_short = estimate < self.far_short_share * need  # no doubt: every second on it queues more
            if heavy_loss or far_short or self._short >= self.short_reports_to_drop:
                self._short = 0
                self._stepped_down(now)
                return self.ladder[index - 1]
            return current
        self._short = 0
        fitting = [i for i in range(index + 1, self.ladder.index(ceiling) + 1) if self.fits(self.ladder[i], estimate)]
        return self.ladder[max(fitting)] if fitting else current

    def _stepped_down(self, now: float) -> None:
        """The link showed its limit: the start-up climb is over, and no probe comes before the backoff.

        A probe a second after the step (as while climbing) would pour into the queue the old layer
        left, and freeze the new layer's first pictures.
        """
        self._starting = False
        self._backoff_s = max(self._backoff_s, self.probe_backoff_s)
        self._next_probe_at = max(self._next_probe_at, now + self._backoff_s)

    def _moved(self, layer: str, now: float, current: str | None = None) -> str:
        if layer != current or self._stable_since is None:
            self._stable_since = now
        return layer

    def probe_kbps(
        self, current: str, data_saver: bool, now: float, estimate_kbps: float | None = None
    ) -> float | None:
        """The rate to probe at now for the next layer up, or None (too soon, on top, or probing).

        The next layer's need with the headroom, but at most twice the estimate: a link far below the
        next layer climbs its estimate in steps rather than taking one probe it cannot carry.
        """
        index, top = self.ladder.index(current), self.ladder.index(self.ceiling(data_saver))
        wait_s = self.startup_stable_s if self._starting else self.stable_s
        stable = self._stable_since is not None and now - self._stable_since >= wait_s
        if index >= top or self._probing or not stable or now < self._next_probe_at:
            return None
        self._probing = True
        target = self.need_kbps(self.ladder[index + 1]) / HEADROOM
        return target if estimate_kbps is None else min(target, PROBE_STEP * estimate_kbps)

    def _probe_ended(self, success: bool | None, now: float) -> None:
        self._probing = False
        if success is None:  # the box could not send it: it says nothing of the link, so ask again
            self._next_probe_at = now
            return
        self._starting = self._starting and success
        if success:
            self._backoff_s = self.probe_backoff_s
        else:
            self._backoff_s = min(max(self._backoff_s, self.probe_backoff_s / 2) * 2, self.max_probe_backoff_s)
        self._next_probe_at = now if self._starting else now + self._backoff_s

    # -- from receiver reports alone --------------------------------------------------------------

    def _by_reports(self, current: str, report: LinkReport, ceiling: str) -> str:
        ladder = self.ladder
        rtt = report.rtt_s or 0.0
        lossy = report.loss >= self.down_loss or rtt >= self.down_rtt_s
        congested = self._congested(report)
        if lossy or congested:
            self.steps_for_estimate += int(congested and not lossy)
            self._good = 0
            return ladder[max(ladder.index(current) - 1, 0)]
        if report.loss <= self.up_loss and rtt <= self.up_rtt_s:
            self._good += 1
        else:
            self._good = 0
        if self._good >= self.good_reports_to_rise and current != ceiling:
            self._good = 0
            return ladder[ladder.index(current) + 1]
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
        own = "" if report.estimate_kbps is None else f", box estimate {report.estimate_kbps:.0f} kbps"
        return (
            f"loss {report.loss:.1%}, rtt {rtt}, estimate {estimate}{own}, "
            f"sending {self._sending_kbps or report.sending_kbps:.0f} kbps"
        )


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
