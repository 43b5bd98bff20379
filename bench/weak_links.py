#!/usr/bin/env python3
"""Weak-link benchmark: what a student behind a bottleneck really gets, per link rate.

Chromium in a network namespace of the bench's own, the box (`classbox demo`) in another, the
box -> student direction limited by `tbf` (tests/weak_link.py). For each link, `--seconds` of the
demo lesson sampled every second: time to settle, the layer settled on (against the target: the
highest layer whose bitrate plus audio is at most 85 % of the link), delivered fps over the last
20 s, layer switches after settling, the longest stall (no new frame), and whether audio stayed
unbroken once settled (and its worst second over the whole lesson). The same-run baseline is the
unshaped link. Needs root (ip netns, tc).

    python bench/weak_links.py [--links 150k,300k,500k,800k,1.2M,2M,5M] [--seconds 60] [--no-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.core.config import BoxConfig  # noqa: E402
from tests.weak_link import Sample, audio_unbroken, audio_worst, classroom, fps, longest_gap_ms  # noqa: E402

LINKS = "150k,300k,500k,800k,1.2M,2M,5M"
STABLE_S = 10  # a layer held this long counts as settled
TAIL_S = 20  # delivered fps over the last 20 s
HEADROOM = 0.85


def kbit(text: str) -> int:
    """'150k', '1.2M', '2000' -> kbit/s."""
    text = text.strip().lower()
    scale = {"k": 1, "m": 1000}.get(text[-1])
    return round(float(text[:-1]) * scale) if scale else round(float(text) / 1000)


def layer_rates() -> list[tuple[str, int, int]]:
    """(name, kbps, fps) of the demo's video layers, best first."""
    stream = BoxConfig().stream
    layers = [("high", stream.high), ("low", stream.low)] + (
        [("lowest", stream.lowest)] if stream.lowest.enabled else []
    )
    return [(name, cfg.kbps, cfg.fps) for name, cfg in layers]


def target(link_kbit: int | None) -> tuple[str, int]:
    """The issue's target layer for a link and its frame rate ("none", 0 when no video layer fits)."""
    audio = BoxConfig().stream.audio_kbps
    for name, kbps, rate in layer_rates():
        if link_kbit is None or kbps + audio <= HEADROOM * link_kbit:
            return name, rate
    return "none", 0


@dataclass
class Row:
    """One link's figures."""

    link: str
    target: str
    target_fps: int
    settle_s: float | None
    layer: str
    tail_fps: float
    switches_after: int
    stall_after_ms: float
    stall_ms: float
    audio_ok: bool  # once settled
    audio_worst: tuple[float, float]  # over the whole lesson

    def line(self) -> str:
        settle = "never" if self.settle_s is None else f"{self.settle_s:.0f} s"
        ok = "yes" if self.layer == self.target else "NO"
        return (
            f"{self.link:>9} | {self.target:>6} {self.target_fps:>2} fps | {settle:>6} | {self.layer:>6} {ok:>3} | "
            f"{self.tail_fps:5.1f} | {self.switches_after:>8} | {self.stall_after_ms / 1000:6.1f} s | "
            f"{self.stall_ms / 1000:6.1f} s | {'unbroken' if self.audio_ok else 'BROKEN'} "
            f"(worst second of all: {self.audio_worst[0]:.0%} arrived, {self.audio_worst[1]:.0%} concealed)"
        )


HEADER = (
    "     link |  target layer | settle |  settled on | fps20 | switches | stall (settled) | stall (all) | "
    "audio (settled)\n" + "-" * 130
)


def settle(samples: list[Sample]) -> tuple[str, float | None, int]:
    """(settled layer, time it settled, switches after that): the last 20 s's main layer and its first 10 s run."""
    tail = [s.layer or "-" for s in samples if s.t >= samples[-1].t - TAIL_S]
    layer = Counter(tail).most_common(1)[0][0]
    run = 0
    for i, sample in enumerate(samples):
        run = run + 1 if sample.layer == layer else 0
        if run >= STABLE_S:
            start = i - run + 1
            after = [s.layer for s in samples[start:]]
            switches = sum(a != b for a, b in zip(after, after[1:], strict=False))
            return layer, samples[start].t, switches
    return layer, None, 0


async def measure(label: str, rate: int | None, seconds: float) -> Row:
    """One lesson on one link."""
    async with classroom(rate) as room:
        samples = await room.student.watch(seconds)
    layer, settled_at, switches = settle(samples)
    after = [s for s in samples if settled_at is not None and s.t >= settled_at]
    tail = [s for s in samples if s.t >= samples[-1].t - TAIL_S]
    want, want_fps = target(rate)
    heard = [s for s in samples if s.audio_samples > 0]  # from its first full second: the start is half a second
    return Row(
        label, want, want_fps, settled_at, layer, fps(tail), switches,
        longest_gap_ms(after), longest_gap_ms(samples), audio_unbroken(after), audio_worst(heard[1:]),
    )  # fmt: skip


async def run(links: list[str], seconds: float, baseline: bool) -> None:
    print(
        f"weak-link benchmark: {seconds:g} s per link, Chromium behind tbf (burst 32kbit, latency 400ms), "
        f"demo layers {', '.join(f'{n} {k} kbps/{f} fps' for n, k, f in layer_rates())} + audio "
        f"{BoxConfig().stream.audio_kbps} kbps; target = best layer with bitrate + audio <= {HEADROOM:.0%} of the link",
        flush=True,
    )
    print(HEADER, flush=True)
    plan: list[tuple[str, int | None]] = ([("unshaped", None)] if baseline else []) + [(x, kbit(x)) for x in links]
    for label, rate in plan:
        row = await measure(label, rate, seconds)
        print(row.line(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", default=LINKS, help=f"comma-separated link rates (default {LINKS})")
    parser.add_argument("--seconds", type=float, default=60.0, help="per link (default 60)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unshaped link")
    args = parser.parse_args()
    asyncio.run(run([x for x in args.links.split(",") if x], args.seconds, not args.no_baseline))


if __name__ == "__main__":
    main()
