"""Each viewer's layer following its link: the checks on receiver reports, urgent steps, probes, load shedding.

The hub's monitor runs `check` once a second: stale and dead viewers go, each viewer's stats become a
`LinkReport` its `LayerPolicy` steps on, a viewer whose transport feedback never came gets the usual
start layer, and while the box's loop lags its latest high-layer viewers move to the low layer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiortc.rtcrtpsender import RTCRtpSender

from edge.core.ports import ConfigSource
from edge.stream.bwe import PROBE_OUTCOMES, PROBE_PACE_S
from edge.stream.layer_switch import LayerSwitch
from edge.stream.layers import LinkReport, SendCapacity
from edge.stream.viewer import FEEDBACK_WAIT_S, HUB_LOG, Viewer, ViewerTable

log = logging.getLogger(HUB_LOG)

FALLBACKS_PER_CHECK = 5  # viewers without feedback moved up per check: sixty at once would all want a keyframe burst
MAX_RTT_S = 10.0  # beyond this (or below 0) an RTT is a wall-clock step, not the link
URGENT_QUEUE_MS = 150.0  # an overuse with this much queued steps a far-short viewer down between checks
URGENT_STEP_GAP_S = 1.0  # ...at most one such step a second (the next waits for the checks' reports)

CloseViewer = Callable[[str, str], Awaitable[bool]]


class Adaptation:
    """Moves viewers between layers as their links and the box's own load allow."""

    def __init__(
        self,
        config: ConfigSource,
        viewers: ViewerTable,
        layers: LayerSwitch,
        capacity: SendCapacity,
        *,
        close: CloseViewer,
        grace_s: Callable[[], float],
        loop_lag_s: Callable[[], float],
    ) -> None:
        """`close` ends a session; `grace_s`: what a leaving viewer's channel gets; `loop_lag_s`: the box's lag."""
        self._config, self._viewers, self._layers, self._capacity = config, viewers, layers, capacity
        self._close, self._grace_s, self._loop_lag_s = close, grace_s, loop_lag_s
        self._fallbacks_left = FALLBACKS_PER_CHECK
        self._probing = asyncio.Event()  # some viewer probes: the pacer runs

    def _adapts(self, viewer: Viewer) -> bool:
        return self._config().stream.adaptive_layers or viewer.data_saver

    async def check(self) -> None:
        """Drop dead connections, read receiver reports, adjust layers, shed load."""
        await self._rejoin_stale_viewers()
        self._fallbacks_left = FALLBACKS_PER_CHECK
        for viewer in list(self._viewers.values()):
            if viewer.pc.connectionState in ("failed", "closed"):
                await self._close(viewer.id, f"connection {viewer.pc.connectionState}")
                continue
            report = await read_stats(viewer)
            if self._adapts(viewer):
                self._adapt(viewer, report)
        self._shed_load()

    async def pace_probes(self) -> None:
        """Probe padding goes out every 5 ms while a viewer probes (after frames alone it would go in bursts)."""
        while True:
            await self._probing.wait()
            probing = [v.estimator for v in self._viewers.values() if v.estimator.probe is not None]
            if not probing:
                self._probing.clear()
                continue
            for estimator in probing:
                estimator.after_media(0)
            await asyncio.sleep(PROBE_PACE_S)

    def congested(self, viewer: Viewer) -> None:
        """The viewer's link queues or loses packets: if the estimate is far short of its layer, step down now.

        Waiting for the next check would keep the old layer pouring into the queue for up to a second.
        The estimator says so on every feedback message while it lasts: the estimate goes on falling
        after the onset, and the message where it falls far short is the one to act on.
        """
        if viewer.id not in self._viewers or not self._adapts(viewer):
            return
        own, estimator = viewer.estimate_kbps(), viewer.estimator
        if own is None or own >= viewer.policy.far_short_share * viewer.policy.need_kbps(viewer.layer):
            return
        if viewer.switches and time.monotonic() - viewer.switches[-1] < URGENT_STEP_GAP_S:
            return  # one step at a time: the estimate under a draining queue is no measure of the layer below
        if estimator.queue_delay_ms() > URGENT_QUEUE_MS or estimator.loss >= viewer.policy.down_loss:
            self._adapt(viewer, LinkReport(viewer.loss, viewer.rtt_s, None, viewer.kbps, own, congested=True))

    def _adapt(self, viewer: Viewer, report: LinkReport | None) -> None:
        """Move the viewer to the layer its link carries; probe for the next one when the policy asks."""
        now = time.monotonic()
        if self._no_feedback(viewer, now):
            return
        layer = viewer.policy.next_layer(viewer.layer, report, viewer.data_saver, now)
        at_capacity = not self._capacity.allows_high(self._viewers.high_count())
        if layer == "high" and viewer.layer != "high" and at_capacity:
            layer = viewer.layer  # the box is at capacity: the link could take more, the box cannot
        self._layers.set_layer(viewer, layer, viewer.policy.describe(report))
        if report is None or report.estimate_kbps is None or not viewer.estimator.can_probe:
            return
        if viewer.layer == viewer.policy.ladder[-2] and at_capacity:
            return  # no probe for a layer the box would not give
        target = viewer.policy.probe_kbps(viewer.layer, viewer.data_saver, now, report.estimate_kbps)
        if target is not None and viewer.estimator.start_probe(int(target * 1000)):
            self._probing.set()
            log.debug("viewer %s: probing at %.0f kbps", viewer.id, target)

    def _no_feedback(self, viewer: Viewer, now: float) -> bool:
        """A viewer that offered transport feedback but sends none cannot probe up: it gets the usual start layer.

        Its layer then follows its receiver reports, as for any player without transport feedback.
        """
        due = viewer.feedback_due_at
        if due is None:
            return False
        if viewer.estimator.feedback_packets:
            viewer.feedback_due_at = None
            return False
        if not viewer.estimator.history.next_sequence:
            viewer.feedback_due_at = now + FEEDBACK_WAIT_S  # no media sent yet (ICE and DTLS still going): none due
            return False
        if now < due or self._fallbacks_left <= 0:
            return False
        self._fallbacks_left -= 1
        viewer.feedback_due_at = None
        self._layers.set_layer(viewer, self._layers.start_layer(viewer.data_saver), "no transport feedback came")
        return True

    async def _rejoin_stale_viewers(self) -> None:
        """Viewers whose shared packets stopped mid-lesson (the media component restarted) join again."""
        stale = [v for v in self._viewers.values() if v.video.closed or v.audio.closed]
        if not stale:
            return
        for viewer in stale:
            viewer.send("reconnect")
        await asyncio.sleep(self._grace_s())  # let the data channels carry the request
        await asyncio.gather(*(self._close(v.id, "media restarted") for v in stale))

    def _shed_load(self) -> None:
        """Move the latest high-layer viewers to the low layer while the box's loop lags."""
        lag_s = self._loop_lag_s()
        self._capacity.note_lag(lag_s, self._viewers.high_count(), len(self._viewers))
        cap = self._capacity.cap
        high = [v for v in self._viewers.values() if v.layer == "high"]
        if cap is None or len(high) <= cap:
            return
        log.warning("the box is behind (loop lag %.0f ms): %d viewers to the low layer", lag_s * 1000, len(high) - cap)
        for viewer in sorted(high, key=lambda v: v.joined_at)[cap:]:
            self._layers.set_layer(viewer, "low")


async def read_stats(viewer: Viewer) -> LinkReport | None:
    """The viewer's link since the last look, from its senders' stats; None without a new receiver report."""
    sent, lost, received, rtts = 0, 0, 0, []
    for sender in (viewer.video_sender, viewer.audio_sender):
        if sender is None:
            continue
        for stat in (await sender.getStats()).values():
            if stat.type == "outbound-rtp":
                sent += stat.bytesSent
            elif stat.type == "remote-inbound-rtp":
                lost += stat.packetsLost
                received += stat.packetsReceived
                if _plausible_rtt(sender, stat.roundTripTime):
                    rtts.append(stat.roundTripTime)
    now = time.monotonic()
    elapsed = max(now - viewer._stats_at, 1e-3)
    viewer.kbps = (sent - viewer._bytes_sent) * 8 / 1000 / elapsed
    viewer._bytes_sent, viewer._stats_at = sent, now
    d_lost, d_recv = lost - viewer._lost_seen[0], received - viewer._lost_seen[1]
    own = viewer.estimate_kbps()
    if d_lost == 0 and d_recv == 0 and own is None:
        return None  # no receiver report since the last look (a REMB waits for the next one)
    estimate = viewer.bandwidth_kbps if viewer._bandwidth_fresh else None
    viewer._bandwidth_fresh = False
    if d_lost or d_recv:
        viewer._lost_seen = (lost, received)
        viewer.loss = min(1.0, max(d_lost, 0) / max(d_lost + d_recv, 1))
        viewer.rtt_s = max(rtts) if rtts else None
        if viewer.rtt_s is not None:
            viewer.estimator.on_rtt(viewer.rtt_s)
    probes = viewer.estimator.take_probe_results()
    if probes:
        log.debug("viewer %s: probes %s", viewer.id, ", ".join(PROBE_OUTCOMES[ok] for ok in probes))
    congested = viewer.estimator.congested
    return LinkReport(viewer.loss, viewer.rtt_s, estimate, viewer.kbps, own, congested, probes)


def _plausible_rtt(sender: RTCRtpSender, rtt: float | None) -> bool:
    """True for an RTT worth acting on; a step-made one also restarts aiortc's average."""
    if rtt is None:
        return False
    if 0 <= rtt <= MAX_RTT_S:
        return True
    # aiortc times its sender reports on the wall clock: an RR across a step gives days (or less than 0).
    sender._RTCRtpSender__rtt = None  # type: ignore[attr-defined]
    return False
