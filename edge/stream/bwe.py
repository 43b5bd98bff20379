"""Sender-side bandwidth estimation per viewer, from RTCP transport feedback (transport-cc).

In the spirit of Google Congestion Control (draft-ietf-rmcat-gcc-02, and libwebrtc's send-side
estimator): the transport-wide sequence number the feeds write in every RTP header ties each
packet the viewer acknowledges to when and how big the box sent it. Groups of packets sent within
5 ms give one-way delay gradients; a trendline over them (libwebrtc's TrendlineEstimator) goes to
an overuse detector with an adaptive threshold, whose verdict drives an AIMD rate controller;
loss in the feedback bounds the result, and REMB (when a viewer sends one) caps it. The
inter-arrival grouping, the detector and the AIMD controller are aiortc's own (`aiortc.rate`, its
receive-side port of the same webrtc.org code); the trendline, the loss bound, the feedback parser
and probing are here. Everything runs once per feedback packet; per media packet a feed only
records (sequence -> send time, size) in `SendHistory`.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc.rate import AimdRateControl, BandwidthUsage, InterArrival, OveruseDetector

log = logging.getLogger(__name__)

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTCP_RTPFB = 205
RTCP_RTPFB_TRANSPORT_CC = 15
HISTORY_SIZE = 2048  # packets (about 7 s of the high layer with audio; feedback comes within a second)
DELTA_TICK_US = 250
REFERENCE_TICK_US = 64_000
GROUP_LENGTH_US = 5_000
TRENDLINE_WINDOW = 20
TRENDLINE_SMOOTHING = 0.9
TRENDLINE_GAIN = 4.0
ACKED_WINDOW_MS = 1_000
START_BPS = 2_000_000
START_PROBED_BPS = 300_000  # a viewer that probes its way up starts here (libwebrtc's start rate)
MIN_BPS = 50_000
MAX_BPS = 20_000_000
LOSS_DECREASE = 0.10  # GCC: above 10 % lost the bound shrinks by half the loss...
LOSS_INCREASE = 0.02  # ...below 2 % it grows 8 % a second
RETRANSMIT_SHARE = 0.5
RETRANSMIT_BURST_S = 0.5
CONGESTED_QUEUE_MS = 50.0
DELAY_BASE_BUCKET_MS = 10_000
DELAY_BASE_BUCKETS = 3
PROBE_SECONDS = 1.0
PROBE_PACE_S = 0.005  # padding goes out this often while a probe runs (the viewer hub's pacer)
PROBE_BURST_S = 0.015  # and never more than this much of the probe's rate at once
PROBE_CATCH_UP_S = 0.05  # unless the loop woke late: what fell due meanwhile goes out, up to this much
PROBE_DELAY_GROWTH_MS = 25.0  # the queue growing by this much during a probe fails it
PROBE_MIN_SHARE = 0.8  # of its target a probe must really have sent and got through
PROBE_FAILED_SHARE = 0.9  # of what a failed probe got through, taken as the link's rate
PROBE_AFTERMATH_MS = 1000  # the queue a failed probe left is its own: the rate holds while it drains
PROBE_OUTCOMES: dict[bool | None, str] = {True: "through", False: "failed", None: "short (the box sent too little)"}


@dataclass
class TransportFeedback:
    """One RTCP transport feedback message: each sequence number with its arrival time (None: lost)."""

    base_sequence: int
    reference_us: int
    arrivals: list[tuple[int, int | None]]  # (sequence, arrival time on the viewer's clock in µs)


def parse_transport_feedback(payload: bytes) -> TransportFeedback:
    """Decode an RTPFB fmt 15 payload (after the 4-byte RTCP header); raise ValueError if malformed."""
    if len(payload) < 16:
        raise ValueError("transport feedback is shorter than 16 bytes")
    base, count, reference = struct.unpack_from("!HHL", payload, 8)
    reference >>= 8
    if reference & 0x800000:
        reference -= 1 << 24
    symbols, pos = _status_symbols(payload, 16, count)
    arrivals: list[tuple[int, int | None]] = []
    at = reference * REFERENCE_TICK_US
    for i, symbol in enumerate(symbols):
        sequence = (base + i) & 0xFFFF
        if symbol == 0:
            arrivals.append((sequence, None))
            continue
        size = 1 if symbol == 1 else 2
        if pos + size > len(payload):
            raise ValueError("transport feedback ends inside its receive deltas")
        delta = payload[pos] if size == 1 else struct.unpack_from("!h", payload, pos)[0]
        pos += size
        at += delta * DELTA_TICK_US
        arrivals.append((sequence, at))
    return TransportFeedback(base, reference * REFERENCE_TICK_US, arrivals)


def _status_symbols(payload: bytes, pos: int, count: int) -> tuple[list[int], int]:
    """The `count` packet status symbols (0 lost, 1 small delta, 2 large delta) and where deltas start."""
    symbols: list[int] = []
    while len(symbols) < count:
        if pos + 2 > len(payload):
            raise ValueError("transport feedback ends inside its packet status chunks")
        chunk = struct.unpack_from("!H", payload, pos)[0]
        pos += 2
        if not chunk & 0x8000:  # run length chunk
            symbols.extend([(chunk >> 13) & 0x3] * (chunk & 0x1FFF))
        elif chunk & 0x4000:  # status vector, 7 two-bit symbols
            symbols.extend((chunk >> (12 - 2 * i)) & 0x3 for i in range(7))
        else:  # status vector, 14 one-bit symbols
            symbols.extend((chunk >> (13 - i)) & 0x1 for i in range(14))
    del symbols[count:]
    if 3 in symbols:
        raise ValueError("transport feedback has a reserved packet status symbol")
    return symbols, pos


def transport_feedback_payloads(data: bytes) -> list[bytes]:
    """The transport feedback payloads in a compound RTCP datagram (the rest is aiortc's to read)."""
    found, pos = [], 0
    while pos + 4 <= len(data):
        first, packet_type, length = struct.unpack_from("!BBH", data, pos)
        end = pos + 4 + length * 4
        if end > len(data):
            break
        if packet_type == RTCP_RTPFB and first & 0x1F == RTCP_RTPFB_TRANSPORT_CC:
            body = data[pos + 4 : end]
            if first & 0x20 and body and 0 < body[-1] <= len(body):
                body = body[: -body[-1]]
            found.append(body)
        pos = end
    return found


class SendHistory:
    """What a viewer was sent, by transport-wide sequence number: the only per-packet work."""

    def __init__(self) -> None:
        self._next = 0
        self._sequence = [-1] * HISTORY_SIZE
        self._sent_us = [0] * HISTORY_SIZE
        self._size = [0] * HISTORY_SIZE
        self.probe_bytes_due = 0  # padding a probe wants sent now (the video feed sends it)

    def take(self, sent_us: int, size: int) -> int:
        """Note one packet about to be sent; return its transport-wide sequence number."""
        sequence = self._next
        self._next = (sequence + 1) & 0xFFFF
        slot = sequence % HISTORY_SIZE
        self._sequence[slot], self._sent_us[slot], self._size[slot] = sequence, sent_us, size
        return sequence

    def take_run(self, sent_us: int, sizes: list[int]) -> int:
        """Note a frame's packets, sent together; return the first one's sequence number (the rest follow)."""
        first = sequence = self._next
        seqs, times, lengths = self._sequence, self._sent_us, self._size
        for size in sizes:
            slot = sequence % HISTORY_SIZE
            seqs[slot], times[slot], lengths[slot] = sequence, sent_us, size
            sequence = (sequence + 1) & 0xFFFF
        self._next = sequence
        return first

    def lookup(self, sequence: int) -> tuple[int, int] | None:
        """(send time µs, size) of a packet still in the history."""
        slot = sequence % HISTORY_SIZE
        if self._sequence[slot] != sequence:
            return None
        return self._sent_us[slot], self._size[slot]

    @property
    def next_sequence(self) -> int:
        """The sequence number the next packet gets."""
        return self._next


def now_us() -> int:
    """The send-time clock (monotonic, µs)."""
    return time.monotonic_ns() // 1000


class Trendline:
    """The slope of smoothed accumulated one-way delay over the last groups (libwebrtc's trendline)."""

    def __init__(self) -> None:
        self.accumulated_ms = 0.0
        self.smoothed_ms = 0.0
        self.points: deque[tuple[float, float]] = deque(maxlen=TRENDLINE_WINDOW)
        self.deltas = 0
        self.first_arrival_ms: float | None = None

    def update(self, delay_gradient_ms: float, arrival_ms: float) -> float | None:
        """Add one group's delay gradient; the current trend (ms of delay per ms), once the window is full."""
        if self.first_arrival_ms is None:
            self.first_arrival_ms = arrival_ms
        self.deltas = min(self.deltas + 1, 1000)
        self.accumulated_ms += delay_gradient_ms
        self.smoothed_ms = TRENDLINE_SMOOTHING * self.smoothed_ms + (1 - TRENDLINE_SMOOTHING) * self.accumulated_ms
        self.points.append((arrival_ms - self.first_arrival_ms, self.smoothed_ms))
        if len(self.points) < TRENDLINE_WINDOW:
            return None
        return _slope(self.points)


def _slope(points: deque[tuple[float, float]]) -> float | None:
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    denominator = sum((x - mean_x) ** 2 for x, _ in points)
    if denominator == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / denominator


@dataclass
class Probe:
    """One probe: padding up to `target_bps` for about a second, judged on its own feedback."""

    target_bps: int
    started_us: int
    first_sequence: int
    last_sequence: int | None = None  # set when the probe stops sending
    base_delay_ms: float | None = None
    sent_bytes: int = 0
    received: list[tuple[int, int, int]] = field(default_factory=list)  # (sent µs, arrival µs, size)
    lost: int = 0
    failed: bool = False


class BandwidthEstimator:
    """One viewer's estimate of its link (bits/s), updated per transport feedback packet."""

    def __init__(self, history: SendHistory, start_bps: int = START_BPS) -> None:
        self.history = history
        self.inter_arrival = InterArrival(GROUP_LENGTH_US, 0.001)
        self.trendline = Trendline()
        self.detector = OveruseDetector()
        self.rate_control = AimdRateControl()
        self.rate_control.set_estimate(start_bps, 0)
        self.delay_bps = start_bps
        self.loss_bound_bps: float | None = None
        self.remb_bps: int | None = None
        self.acked: deque[tuple[int, int]] = deque()  # (arrival ms, size) over the last second
        self.feedback_packets = 0
        self.usage = BandwidthUsage.NORMAL
        self.overuses = 0
        self.loss = 0.0
        self.probe: Probe | None = None
        self.probe_results: list[bool | None] = []
        self.probes = 0
        self._last_loss_update_ms: int | None = None
        self._last_pad_us = 0
        self._delay_samples: deque[float] = deque(maxlen=3)
        self._delay_minima: deque[tuple[int, float]] = deque(maxlen=DELAY_BASE_BUCKETS)  # (10 s bucket, min)
        self._newest_reported: int | None = None
        self._probe_credit = 0.0
        self._lost_window = 0
        self._repair_tokens = 0.0
        self._repair_at = now_us()
        self._received_window = 0
        self.pad: Callable[[int], int] | None = None  # sends about that many bytes of padding, says how many
        self.transports: set[int] = set()  # the DTLS transports whose feedback comes here
        self.on_congestion: Callable[[], None] = lambda: None  # a queue builds or packets are lost: may not wait
        self._aftermath_until_ms = 0

    # -- inputs -----------------------------------------------------------------------------------

    def on_feedback(self, feedback: TransportFeedback, at_us: int | None = None) -> None:
        """Fold one transport feedback message into the estimate."""
        now_ms = (now_us() if at_us is None else at_us) // 1000
        self.feedback_packets += 1
        lost = received = 0
        for sequence, arrival_us in feedback.arrivals:
            sent = self.history.lookup(sequence)
            if sent is None:
                continue
            if arrival_us is None:
                lost += 1
                self._probe_lost(sequence)
                continue
            received += 1
            self._on_arrival(sequence, sent[0], arrival_us, sent[1], now_ms)
        if feedback.arrivals:
            self._newest_reported = feedback.arrivals[-1][0]
        self._update_loss(lost, received, now_ms)
        self._update_rate(now_ms)
        self._judge_probe(now_ms * 1000)
        if self.usage == BandwidthUsage.OVERUSING or self.loss > LOSS_DECREASE:
            self.on_congestion()  # on every message while it lasts: the estimate goes on falling after the onset

    def on_remb(self, bits_per_second: int) -> None:
        """The viewer's own estimate (REMB) caps ours."""
        self.remb_bps = bits_per_second

    def on_rtt(self, rtt_s: float) -> None:
        """The round-trip time sets how fast the additive increase may climb."""
        self.rate_control.rtt = max(10, min(int(rtt_s * 1000), 2000))

    def _on_arrival(self, sequence: int, sent_us: int, arrival_us: int, size: int, now_ms: int) -> None:
        arrival_ms = arrival_us // 1000
        self.acked.append((arrival_ms, size))
        self._note_delay((arrival_us - sent_us) / 1000, now_ms)
        self._probe_arrived(sequence, sent_us, arrival_us, size)
        deltas = self.inter_arrival.compute_deltas(sent_us & 0xFFFFFFFF, arrival_ms, size)
        if deltas is None:
            return
        send_delta_ms = deltas.timestamp / 1000
        trend = self.trendline.update(deltas.arrival_time - send_delta_ms, arrival_ms)
        if trend is None:
            return
        previous = self.usage
        self.usage = self.detector.detect(trend * TRENDLINE_GAIN, send_delta_ms, self.trendline.deltas, arrival_ms)
        if self.usage == BandwidthUsage.OVERUSING and previous != BandwidthUsage.OVERUSING:
            self.overuses += 1

    def _note_delay(self, one_way_ms: float, now_ms: int) -> None:
        """The one-way delay (up to the clocks' offset); its minimum over 30 s is the empty-queue baseline.

        A window, not the minimum since the start: the two clocks drift apart over a lesson.
        """
        self._delay_samples.append(one_way_ms)
        bucket, minima = now_ms // DELAY_BASE_BUCKET_MS, self._delay_minima
        if not minima or minima[-1][0] != bucket:
            minima.append((bucket, one_way_ms))
        elif one_way_ms < minima[-1][1]:
            minima[-1] = (bucket, one_way_ms)

    @property
    def congested(self) -> bool:
        """A queue stands at the bottleneck or packets were lost lately: the link is full now.

        A keyframe or a pause of the box's own loop queues for a moment; the estimate that an overuse
        leaves behind is then short of what the link carries, and must not alone cost a layer.
        """
        return self.queue_delay_ms() > CONGESTED_QUEUE_MS or self.loss > LOSS_INCREASE or self._lost_window > 2

    def queue_delay_ms(self) -> float:
        """How far the recent one-way delay sits above the lowest seen (the bottleneck's queue)."""
        if not self._delay_samples or not self._delay_minima:
            return 0.0
        return min(self._delay_samples) - min(low for _, low in self._delay_minima)

    def _update_loss(self, lost: int, received: int, now_ms: int) -> None:
        """GCC's loss-based bound, once per 300 ms of feedback: shrink above 10 % lost, grow below 2 %.

        It shrinks from what the viewer really received (a queue still draining keeps losing for a
        while after the box sent less: compounding on the bound itself would fall far below the link).
        """
        self._lost_window += lost
        self._received_window += received
        last = self._last_loss_update_ms
        if last is None:
            self._last_loss_update_ms = last = now_ms
        total = self._lost_window + self._received_window
        if now_ms - last < 300 or total == 0:
            return
        self.loss = self._lost_window / total
        self._last_loss_update_ms, self._lost_window, self._received_window = now_ms, 0, 0
        elapsed_s = min((now_ms - last) / 1000, 1.0)
        if self.loss > LOSS_DECREASE:
            acked = self.acked_bps(now_ms) or self.delay_bps
            self.loss_bound_bps = max(MIN_BPS, acked * (1 - 0.5 * self.loss))
        elif self.loss < LOSS_INCREASE and self.loss_bound_bps is not None:
            self.loss_bound_bps *= 1.08**elapsed_s
            if self.loss_bound_bps > self.delay_bps:
                self.loss_bound_bps = None

    def _update_rate(self, now_ms: int) -> None:
        acked = self.acked_bps(now_ms)
        usage = BandwidthUsage.UNDERUSING if now_ms < self._aftermath_until_ms else self.usage  # hold
        rate = self.rate_control.update(usage, acked, now_ms)
        if rate is not None:
            if rate < 0.9 * self.delay_bps:
                log.debug(
                    "estimate down %d -> %d kbps (%s, acked %s)",
                    self.delay_bps // 1000,
                    rate // 1000,
                    usage.name,
                    acked,
                )
            self.delay_bps = max(MIN_BPS, min(rate, MAX_BPS))

    def acked_bps(self, now_ms: int) -> int | None:
        """What the viewer received over the last second (by its arrival clock)."""
        acked = self.acked
        if not acked:
            return None
        newest = acked[-1][0]
        while acked and acked[0][0] < newest - ACKED_WINDOW_MS:
            acked.popleft()
        span_ms = max(newest - acked[0][0], 200)
        return int(sum(size for _, size in acked) * 8000 / span_ms)

    # -- the estimate -----------------------------------------------------------------------------

    @property
    def estimate_bps(self) -> int:
        """The estimate: delay-based, bounded by loss and by the viewer's REMB."""
        bounds = [self.delay_bps]
        if self.loss_bound_bps is not None:
            bounds.append(int(self.loss_bound_bps))
        if self.remb_bps is not None:
            bounds.append(self.remb_bps)
        return max(MIN_BPS, min(bounds))

    # -- probing ----------------------------------------------------------------------------------

    def may_retransmit(self, size: int) -> bool:
        """Whether a NACKed packet of `size` bytes may go again: repairs get at most half the estimate."""
        at = now_us()
        rate = RETRANSMIT_SHARE * self.estimate_bps / 8e6  # bytes per µs
        self._repair_tokens = min(
            self._repair_tokens + (at - self._repair_at) * rate, rate * RETRANSMIT_BURST_S * 1_000_000
        )
        self._repair_at = at
        if self.feedback_packets == 0 or self._repair_tokens >= size:
            self._repair_tokens -= size
            return True
        return False

    @property
    def can_probe(self) -> bool:
        """True when feedback arrives, the video feed can pad (RTX negotiated) and the link is calm.

        Calm: nothing lost lately and no queue at the bottleneck; a probe into a full queue only loses more.
        """
        calm = self.loss == 0 and self._lost_window == 0 and self.queue_delay_ms() < PROBE_DELAY_GROWTH_MS
        return self.feedback_packets > 0 and self.pad is not None and calm

    def start_probe(self, target_bps: int) -> bool:
        """Pad this viewer's link up to `target_bps` for about a second; False if it cannot now."""
        if self.probe is not None or not self.can_probe:
            return False
        self.probe = Probe(target_bps, now_us(), self.history.next_sequence)
        self._last_pad_us, self._probe_credit = self.probe.started_us, 0.0
        return True

    def after_media(self, sent_bytes: int) -> None:
        """A feed sent `sent_bytes` of media: while probing, pad up to the probe's rate (about a second)."""
        probe, at = self.probe, now_us()
        if probe is None or probe.last_sequence is not None:
            return
        if probe.failed or at - probe.started_us >= PROBE_SECONDS * 1_000_000 or self.pad is None:
            probe.last_sequence = (self.history.next_sequence - 1) & 0xFFFF
            return
        elapsed_s = (at - self._last_pad_us) / 1e6
        credit = self._probe_credit + probe.target_bps * elapsed_s / 8 - sent_bytes
        self._last_pad_us = at
        # A burst alone would fill a weak link's queue; but on a busy box the pacer wakes late, and
        # padding only 15 ms of every 30 would probe at half the target: a probe the box never sent.
        burst_s = max(PROBE_BURST_S, min(elapsed_s, PROBE_CATCH_UP_S))
        credit = min(credit, probe.target_bps / 8 * burst_s)
        if credit > 0:
            sent = self.pad(int(credit))
            probe.sent_bytes += sent
            credit -= sent
        self._probe_credit = credit

    def _in_probe(self, sequence: int) -> bool:
        probe = self.probe
        if probe is None:
            return False
        last = probe.last_sequence if probe.last_sequence is not None else self.history.next_sequence
        return (sequence - probe.first_sequence) & 0xFFFF <= (last - probe.first_sequence) & 0xFFFF

    def _probe_arrived(self, sequence: int, sent_us: int, arrival_us: int, size: int) -> None:
        probe = self.probe
        if probe is None or not self._in_probe(sequence):
            return
        probe.received.append((sent_us, arrival_us, size))
        if probe.base_delay_ms is None:
            probe.base_delay_ms = self.queue_delay_ms()

    def _probe_lost(self, sequence: int) -> None:
        probe = self.probe
        if probe is not None and self._in_probe(sequence):
            probe.lost += 1
            probe.failed = True  # stop padding at once: the link has no room

    def _judge_probe(self, at_us: int) -> None:
        """A probe whose delay grew or that lost a packet fails at once; one that got through raises the estimate."""
        probe = self.probe
        if probe is None:
            return
        grown = probe.base_delay_ms is not None and self.queue_delay_ms() - probe.base_delay_ms > PROBE_DELAY_GROWTH_MS
        if grown or self.usage == BandwidthUsage.OVERUSING:
            probe.failed = True
        covered = probe.last_sequence is not None and self._acknowledged_past(probe.last_sequence)
        timed_out = at_us - probe.started_us > 3 * PROBE_SECONDS * 1_000_000
        if not (covered or timed_out or (probe.failed and probe.last_sequence is not None)):
            return
        self.probe = None
        rates = _probe_rates(probe.received)
        rate = None if rates is None else min(rates)
        # Padding at the target with no loss and no queue growing is the evidence the link carries it.
        success = not probe.failed and rate is not None and rate >= PROBE_MIN_SHARE * probe.target_bps
        # A busy box may not get its padding out: all it sent got through, and nothing says the link is full.
        short = not (success or probe.failed) and rates is not None and rates[0] < PROBE_MIN_SHARE * probe.target_bps
        outcome = True if success else None if short else False
        self.probe_results.append(outcome)
        log.debug(
            "probe at %d kbps: %s (sent at %s, got through at %s kbps, %d lost, queue grew %.0f ms, %s)",
            probe.target_bps // 1000,
            PROBE_OUTCOMES[outcome],
            None if rates is None else rates[0] // 1000,
            None if rate is None else rate // 1000,
            probe.lost,
            self.queue_delay_ms() - (probe.base_delay_ms or 0.0),
            self.usage.name,
        )
        self.probes += 1
        if success:
            self._raise_to(probe.target_bps, at_us)
            self.loss_bound_bps = None
        elif short and rate is not None:
            self._raise_to(rate, at_us)  # the link carried all of it: at least that much
        else:
            self._aftermath_until_ms = at_us // 1000 + PROBE_AFTERMATH_MS
            received = self.acked_bps(at_us // 1000)
            if rate is not None and received is not None:
                # What a failed probe got through is what the bottleneck drains, but over a short probe a
                # queue's burst reads faster than the link: never believe more than arrived over the last second.
                self._raise_to(min(int(PROBE_FAILED_SHARE * rate), received), at_us)

    def _raise_to(self, bps: int, at_us: int) -> None:
        if bps > self.delay_bps:
            self.delay_bps = min(bps, MAX_BPS)
            self.rate_control.set_estimate(self.delay_bps, at_us // 1000)

    def _acknowledged_past(self, sequence: int) -> bool:
        """True once feedback has reported a packet sent after `sequence` (so the probe's packets are all in)."""
        newest = self._newest_reported
        return newest is not None and 0 < (newest - sequence) & 0xFFFF < 0x8000

    def take_probe_results(self) -> list[bool | None]:
        """The outcomes of the probes finished since the last call (None: the box could not send it)."""
        results, self.probe_results = self.probe_results, []
        return results


def _probe_rates(received: list[tuple[int, int, int]]) -> tuple[int, int] | None:
    """The rates (bits/s) the probe's packets were sent at and arrived at, or None when too few came."""
    if len(received) < 5:
        return None
    sent = sorted(r[0] for r in received)
    arrived = sorted(r[1] for r in received)
    size = sum(r[2] for r in received) - received[-1][2]
    send_span, arrival_span = sent[-1] - sent[0], arrived[-1] - arrived[0]
    if send_span <= 0 or arrival_span <= 0:
        return None
    return int(size * 8e6 / send_span), int(size * 8e6 / arrival_span)
