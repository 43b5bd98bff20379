"""Which layer a viewer's link can carry, from its receiver reports (loss, round-trip time)."""

from __future__ import annotations

from dataclasses import dataclass

LADDER = ("none", "low", "high")  # "none": audio (and the board) only


@dataclass
class LinkReport:
    """What the viewer's receiver reports say about its link over the last interval."""

    loss: float  # fraction lost, 0..1
    rtt_s: float | None


@dataclass
class LayerPolicy:
    """Steps down at once on a bad report, up only after `good_reports_to_rise` good ones in a row."""

    down_loss: float = 0.10
    up_loss: float = 0.02
    down_rtt_s: float = 0.8
    up_rtt_s: float = 0.4
    good_reports_to_rise: int = 5
    _good: int = 0

    def next_layer(self, current: str, report: LinkReport | None, data_saver: bool) -> str:
        """The layer to give next; `data_saver` caps it at the low layer."""
        ceiling = "low" if data_saver else "high"
        if LADDER.index(current) > LADDER.index(ceiling):
            self._good = 0
            return ceiling
        if report is None:
            return current
        rtt = report.rtt_s or 0.0
        if report.loss >= self.down_loss or rtt >= self.down_rtt_s:
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
