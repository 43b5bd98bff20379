"""The sender-side bandwidth estimator: the transport feedback parser and the estimate on recorded feedback.

tests/recorded/transport_feedback_2m_600k.jsonl.gz is real Chromium transport feedback to a box
sending the high layer (then the low one) over a tbf-shaped link of 2 Mbit/s that drops to
600 kbit/s about 10.7 s in (tests/weak_link.py): one line per feedback message, with when the box
got it and, for each packet it covers, when the box sent it and how big it was.
"""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from edge.stream import bwe
from edge.stream.bwe import (
    HISTORY_SIZE,
    START_PROBED_BPS,
    TRANSPORT_CC_URI,
    BandwidthEstimator,
    SendHistory,
    TransportFeedback,
    parse_transport_feedback,
    transport_feedback_payloads,
)
from edge.stream.feeds import RTP_HEADER, Route

RECORDED = Path(__file__).parent / "recorded" / "transport_feedback_2m_600k.jsonl.gz"
HIGH_NEED_KBPS = 1500 + 48  # the default high layer plus audio
LOW_NEED_KBPS = 350 + 48


def feedback(base: int, reference: int, chunks: list[int], deltas: bytes, count: int) -> bytes:
    """An RTPFB fmt 15 payload as a receiver writes it."""
    body = struct.pack("!LLHHL", 1, 2, base, count, (reference << 8) | 7)
    body += b"".join(struct.pack("!H", c) for c in chunks) + deltas
    return body + b"\0" * (-len(body) % 4)


def test_feedback_decodes_run_length_and_both_status_vectors() -> None:
    run = (1 << 13) | 3  # three packets received, small deltas
    one_bit = 0x8000 | 0b10100000000000  # 14 symbols: received, lost, received, then lost
    two_bit = 0xC000 | (2 << 12) | (0 << 10) | (1 << 8)  # large delta, lost, small delta (then 4 lost)
    deltas = bytes([4, 4, 8]) + bytes([4, 4]) + struct.pack("!h", -8) + bytes([40])
    parsed = parse_transport_feedback(feedback(65533, 2, [run, one_bit, two_bit], deltas, 3 + 14 + 3))
    assert parsed.base_sequence == 65533
    assert parsed.reference_us == 2 * 64_000
    arrivals = dict(parsed.arrivals)
    assert [s for s, _ in parsed.arrivals][:4] == [65533, 65534, 65535, 0]  # the sequence wraps
    assert arrivals[65533] == 128_000 + 1000
    assert arrivals[65535] == 128_000 + 4000
    assert arrivals[0] == 128_000 + 5000
    assert arrivals[1] is None
    assert arrivals[2] == 128_000 + 6000
    assert arrivals[14] == 128_000 + 6000 - 2000  # a negative large delta: reordered
    assert arrivals[15] is None
    assert arrivals[16] == 128_000 + 4000 + 10_000
    assert len(parsed.arrivals) == 20


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\0" * 12, "shorter"),
        (feedback(1, 0, [(1 << 13) | 5], b"\x01\x01", 5), "receive deltas"),
        (feedback(1, 0, [], b"", 3), "status chunks"),
        (feedback(1, 0, [(3 << 13) | 2], b"", 2), "reserved"),
    ],
)
def test_malformed_feedback_is_refused(payload: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_transport_feedback(payload)


def test_transport_feedback_is_found_in_a_compound_rtcp_datagram() -> None:
    receiver_report = struct.pack("!BBHL", 0x80, 201, 1, 9)
    body = feedback(10, 1, [(1 << 13) | 1], b"\x04", 1)
    padded = body + b"\0\0\0\x04"
    transport = struct.pack("!BBH", 0x80 | 0x20 | 15, 205, len(padded) // 4) + padded
    nack = struct.pack("!BBHLLHH", 0x81, 205, 3, 1, 2, 5, 0)
    assert transport_feedback_payloads(receiver_report + transport + nack) == [body]


def recorded() -> list[dict[str, Any]]:
    with gzip.open(RECORDED, "rt") as lines:
        return [json.loads(line) for line in lines]


def play(estimator: BandwidthEstimator) -> Iterator[dict[str, Any]]:
    """Feed the recording to `estimator`, message by message: each is yielded once the estimator has it."""
    history = estimator.history
    for message in recorded():
        parsed = parse_transport_feedback(bytes.fromhex(message["feedback"]))
        for (sequence, _), sent in zip(parsed.arrivals, message["sent"], strict=True):
            if sent is not None:  # as the feeds' send history held them
                slot = sequence % HISTORY_SIZE
                history._sequence[slot], history._sent_us[slot], history._size[slot] = sequence, sent[0], sent[1]
        estimator.on_feedback(parsed, message["at_us"])
        yield message


def replay() -> list[tuple[float, float, float, int]]:
    """Feed the recording to an estimator: (seconds, estimate kbps, queue delay ms, overuses) per message."""
    estimator = BandwidthEstimator(SendHistory())
    return [
        (message["at_us"] / 1e6, estimator.estimate_bps / 1000, estimator.queue_delay_ms(), estimator.overuses)
        for message in play(estimator)
    ]


def test_recorded_feedback_parses_into_contiguous_sequences() -> None:
    messages = recorded()
    assert len(messages) > 300
    following = None
    for message in messages:
        parsed = parse_transport_feedback(bytes.fromhex(message["feedback"]))
        assert len(parsed.arrivals) == len(message["sent"])
        if following is not None:
            assert parsed.base_sequence == following
        following = (parsed.arrivals[-1][0] + 1) & 0xFFFF


def test_a_2_mbit_link_keeps_an_estimate_that_carries_the_high_layer() -> None:
    steady = [(t, est, overuses) for t, est, _, overuses in replay() if 3 <= t <= 10.5]
    assert min(est for _, est, _ in steady) >= HIGH_NEED_KBPS / 0.85
    assert steady[-1][2] == 0  # keyframe bursts queue briefly: no overuse on a link with room


def test_a_drop_to_600_kbit_is_seen_within_half_a_second_and_the_estimate_then_fits_the_link() -> None:
    run = replay()
    queued_at = next(t for t, _, queue, _ in run if t > 10 and queue > 50)
    short_at = next(t for t, est, _, _ in run if t > 10 and est < HIGH_NEED_KBPS)
    assert short_at - queued_at <= 0.5
    after = [est for t, est, _, _ in run if t >= 12]
    assert min(after) >= LOW_NEED_KBPS  # the low layer stays: it fits the 600 kbit/s link
    assert max(after) <= 600 * 1.05  # and nothing above the link is believed


def test_congestion_is_said_on_every_message_while_it_lasts_so_a_layer_left_far_short_moves_at_once() -> None:
    """A layer of 1200 kbit/s (+ audio): the estimate falls far short of it only a few messages after the onset."""
    estimator, calls = BandwidthEstimator(SendHistory()), []
    said_when_far_short: list[bool] = []
    estimator.on_congestion = lambda: calls.append(estimator.estimate_bps)
    calls_before = 0
    for message in play(estimator):
        if message["at_us"] > 10e6 and estimator.estimate_bps < 0.7 * (1200 + 48) * 1000 and not said_when_far_short:
            said_when_far_short.append(len(calls) > calls_before)
        calls_before = len(calls)
    assert said_when_far_short == [True], "the message where the estimate fell far short said nothing"
    assert len(calls) >= 10  # the whole overuse, not its first message alone


@pytest.mark.parametrize("transport_cc_id", [5, 15])  # 15 needs the two-byte header form
def test_a_feeds_header_extensions_carry_the_transport_wide_sequence_number(transport_cc_id: int) -> None:
    parameters = RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
            RTCRtpHeaderExtensionParameters(id=transport_cc_id, uri=TRANSPORT_CC_URI),
        ]
    )
    extensions = HeaderExtensionsMap()
    extensions.configure(parameters)
    route = Route(96, 97, 1111, 2222, "0", extensions, dtls=None, clock_rate=90_000, transport_cc_id=transport_cc_id)  # type: ignore[arg-type]
    block, element = route.sequenced_extensions(ntp=0x1234_5678_9ABC_DEF0)
    packets = [
        RTP_HEADER.pack(0x90, 96, 7 + i, 90, 1111) + block + element(65535 + i & 0xFFFF) + b"frame" for i in (0, 1)
    ]
    parsed = [RtpPacket.parse(packet, extensions) for packet in packets]
    assert [p.extensions.transport_sequence_number for p in parsed] == [65535, 0]
    assert {p.extensions.mid for p in parsed} == {"0"}
    assert {p.extensions.abs_send_time for p in parsed} == {(0x1234_5678_9ABC_DEF0 >> 14) & 0xFFFFFF}
    assert {p.payload for p in parsed} == {b"frame"}


def test_the_empty_queue_baseline_follows_clocks_that_drift_apart() -> None:
    history = SendHistory()
    estimator = BandwidthEstimator(history)
    sent_us = 0
    for step in range(1200):  # 120 s of a 10-packet/s stream; the viewer's clock gains 1 ms every 2 s
        sequence = history.take(sent_us, 1200)
        arrival_us = sent_us + 20_000 + step * 50
        estimator.on_feedback(TransportFeedback(sequence, 0, [(sequence, arrival_us)]), sent_us + 30_000)
        sent_us += 100_000
    assert estimator.queue_delay_ms() < 25  # 60 ms of drift, but no queue
    assert not estimator.congested


class Bottleneck:
    """A link that delivers packets in order at `kbps` (a tbf queue with room to spare)."""

    def __init__(self, kbps: int) -> None:
        self.bps = kbps * 1000
        self.free_us = 0.0

    def arrival_us(self, sent_us: int, size: int) -> int:
        self.free_us = max(self.free_us, sent_us) + size * 8e6 / self.bps
        return int(self.free_us)


def probe_over(
    link_kbps: int, target_bps: int, monkeypatch: pytest.MonkeyPatch, pace_ms: int = 5, pad_limit: int | None = None
) -> BandwidthEstimator:
    """A viewer fed 160 kbit/s of media, probed at `target_bps` 1 s in, with feedback every 50 ms.

    The pacer wakes every `pace_ms` (a busy box wakes it late); `pad_limit` caps the padding bytes one
    wake-up can send (a feed with little history to resend).
    """
    clock = {"us": 0}
    monkeypatch.setattr(bwe, "now_us", lambda: clock["us"])
    history, link = SendHistory(), Bottleneck(link_kbps)
    estimator = BandwidthEstimator(history, START_PROBED_BPS)
    in_flight: list[tuple[int, int]] = []

    def send(size: int) -> None:
        in_flight.append((history.take(clock["us"], size), link.arrival_us(clock["us"], size)))

    def pad(due: int) -> int:
        sizes = [1200] * (min(due, pad_limit or due) // 1200)
        for size in sizes:
            send(size)
        return sum(sizes)

    estimator.pad = pad
    for ms in range(0, 4000, 5):
        clock["us"] = ms * 1000
        if ms % 50 == 0:
            send(1000)
            estimator.after_media(1000)
        elif ms % pace_ms == 0:
            estimator.after_media(0)  # the viewer hub's pacer
        if ms % 50 == 25:
            arrived = [(seq, at) for seq, at in in_flight if at <= clock["us"]]
            del in_flight[: len(arrived)]
            if arrived:
                estimator.on_feedback(TransportFeedback(arrived[0][0], 0, list(arrived)), clock["us"])
        if ms == 1000:
            assert estimator.start_probe(target_bps)
    return estimator


def test_a_probe_the_link_carries_raises_the_estimate_to_its_target(monkeypatch: pytest.MonkeyPatch) -> None:
    estimator = probe_over(5000, 1_821_000, monkeypatch)
    assert estimator.take_probe_results() == [True]
    assert estimator.estimate_bps >= 1_821_000


def test_a_failed_probe_neither_cuts_the_rate_for_its_own_queue_nor_believes_more_than_got_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    estimator = probe_over(800, 1_821_000, monkeypatch)
    assert estimator.take_probe_results() == [False]  # the queue grew: no climb to the probed layer
    assert START_PROBED_BPS <= estimator.delay_bps <= 800_000  # the probe's own queue cost nothing; the link caps it


def test_a_pacer_that_wakes_late_still_probes_at_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a busy box the 5 ms pacer wakes every 25 ms: what fell due meanwhile still goes out."""
    estimator = probe_over(2000, 1_821_000, monkeypatch, pace_ms=25)
    assert estimator.take_probe_results() == [True]
    assert estimator.estimate_bps >= 1_821_000


def test_a_probe_the_box_could_not_send_says_nothing_of_the_link_but_what_got_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    estimator = probe_over(5000, 1_821_000, monkeypatch, pace_ms=10, pad_limit=1200)  # ~1 Mbit/s of padding at most
    assert estimator.take_probe_results() == [None]  # neither through (no layer on it) nor failed (no backoff)
    assert 800_000 <= estimator.delay_bps < 1_821_000  # all it sent got through: the link carries at least that
