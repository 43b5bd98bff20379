"""A real student on a real weak link: the box and Chromium in two network namespaces joined by a shaped veth.

    box namespace  [classbox demo, 10.231.N.1] --veth (tbf on the box's end)-- [10.231.N.2, Chromium] student namespace

The box is a real `classbox demo` subprocess (`ip netns exec`); Chromium runs in the student's
namespace through a wrapper executable, still driven by Playwright in this process over its pipe.
The teacher's requests (start a lesson, GET /api/viewers) come from one thread of this process
that has entered the box's namespace, so the box sees them on its own loopback (the panel).
`WeakLink.shape(kbit)` limits box -> student (`tc ... tbf`); calling it again mid-lesson is a link
that drops or recovers. Everything is removed on exit, also when the test fails.

Used by tests/test_weak_links.py and bench/weak_links.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from playwright.async_api import Browser, Page, async_playwright

from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import REPO, http_json

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
BOX_PORT = 8080  # the box has its namespace to itself
STALL_MS = 1000.0
TBF = ("burst", "32kbit", "latency", "400ms")

# Installed in the student page: counts presented frames and the longest gap between two of them.
FRAME_WATCH = """(() => {
  const s = window.__links = { frames: 0, lastAt: null, gap: 0 };
  const hook = () => {
    const v = document.getElementById('video');
    if (!v || !v.requestVideoFrameCallback) { setTimeout(hook, 50); return; }
    const cb = (now) => {
      if (s.lastAt !== null) s.gap = Math.max(s.gap, now - s.lastAt);
      s.lastAt = now; s.frames++; v.requestVideoFrameCallback(cb);
    };
    v.requestVideoFrameCallback(cb);
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', hook); else hook();
})();"""

# One sample of what the student really gets; resets the gap window.
SAMPLE = """async () => {
  const s = window.__links || { frames: 0, lastAt: null, gap: 0 };
  const now = performance.now();
  const ongoing = s.lastAt === null ? 0 : now - s.lastAt;
  const out = { frames: s.frames, gap_ms: Math.max(s.gap, ongoing), started: s.lastAt !== null };
  s.gap = 0;
  const v = document.getElementById('video');
  out.height = v ? v.videoHeight : 0;
  const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
  out.shown = q ? q.totalVideoFrames - q.droppedVideoFrames : 0;
  const pc = window.classboxWatch && window.classboxWatch.pc;
  out.decoded = 0; out.audio_samples = 0; out.audio_concealed = 0; out.audio_packets = 0;
  if (pc) (await pc.getStats()).forEach((r) => {
    if (r.type !== 'inbound-rtp') return;
    if (r.kind === 'video') out.decoded = r.framesDecoded || 0;
    if (r.kind === 'audio') {
      out.audio_samples = r.totalSamplesReceived || 0; out.audio_concealed = r.concealedSamples || 0;
      out.audio_packets = r.packetsReceived || 0;
    }
  });
  return out;
}"""

PAGE_STATE = """() => {
  const pc = window.classboxWatch && window.classboxWatch.pc;
  const text = (id) => (document.getElementById(id) || {}).textContent;
  return { state: text('state'), message: text('message'), pc: pc ? pc.connectionState : null,
           ice: pc ? pc.iceConnectionState : null };
}"""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a network command; with `check`, fail with what it printed."""
    result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def _enter_netns(name: str) -> None:
    """Move the calling thread (only it) into network namespace `name`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name} failed")
    finally:
        os.close(fd)


@dataclass
class Sample:
    """One second of the lesson as the student got it and as the box saw it."""

    t: float  # seconds since sampling began
    layer: str | None  # what the box says it sends this student
    height: int  # video.videoHeight
    frames: int  # frames presented so far (requestVideoFrameCallback)
    decoded: int  # inbound-rtp framesDecoded
    gap_ms: float  # the longest time without a new frame within this second
    audio_samples: int
    audio_concealed: int
    box: dict[str, Any] = field(default_factory=dict)  # the viewer as GET /api/viewers shows it

    @property
    def stalled(self) -> bool:
        """No new frame for more than a second."""
        return self.gap_ms > STALL_MS


@dataclass
class WeakLink:
    """The two namespaces, the shaped veth between them and the box's address on it."""

    run_id: str
    subnet: int
    box_ns: str = ""
    student_ns: str = ""
    box_dev: str = ""
    student_dev: str = ""
    rate_kbit: int | None = None

    def __post_init__(self) -> None:
        self.box_ns, self.student_ns = f"links-box-{self.run_id}", f"links-stu-{self.run_id}"
        self.box_dev, self.student_dev = f"lkb{self.run_id}", f"lks{self.run_id}"

    @property
    def box_ip(self) -> str:
        return f"10.231.{self.subnet}.1"

    @property
    def student_ip(self) -> str:
        return f"10.231.{self.subnet}.2"

    def create(self) -> None:
        """Make both namespaces and the veth between them (raise and remove what was made on failure)."""
        try:
            _run("ip", "netns", "add", self.box_ns)
            _run("ip", "netns", "add", self.student_ns)
            peer = ("peer", "name", self.student_dev, "netns", self.student_ns)
            _run("ip", "link", "add", "name", self.box_dev, "netns", self.box_ns, "type", "veth", *peer)
            for ns, dev, ip in (
                (self.box_ns, self.box_dev, self.box_ip),
                (self.student_ns, self.student_dev, self.student_ip),
            ):
                _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
                _run("ip", "-n", ns, "link", "set", dev, "up")
                _run("ip", "-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise

    def shape(self, kbit: int | None) -> None:
        """Limit box -> student to `kbit` kbit/s (tbf on the box's end); None removes the limit."""
        base = ("ip", "netns", "exec", self.box_ns, "tc", "qdisc")
        if kbit is None:
            if self.rate_kbit is not None:
                _run(*base, "del", "dev", self.box_dev, "root")
        else:
            verb = "add" if self.rate_kbit is None else "change"
            _run(*base, verb, "dev", self.box_dev, "root", "tbf", "rate", f"{kbit}kbit", *TBF)
        self.rate_kbit = kbit

    def pids(self) -> list[int]:
        """Processes still running in either namespace."""
        out: list[int] = []
        for ns in (self.box_ns, self.student_ns):
            result = _run("ip", "netns", "pids", ns, check=False)
            out += [int(p) for p in result.stdout.split()]
        return out

    def remove(self) -> None:
        """Kill what runs in the namespaces and delete them (the veth goes with them); idempotent."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for ns in (self.box_ns, self.student_ns):
            _run("ip", "netns", "del", ns, check=False)


def new_link() -> WeakLink:
    """A link with names unique to this run."""
    return WeakLink(secrets.token_hex(3), 1 + secrets.randbelow(250))


DEMO_CONFIG = """[logging]
level = "debug"  # a failure's log then shows each probe and each cut of the estimate

[discovery]
enabled = false

[recording]
enabled = false
"""


class NetnsBox:
    """The box: `classbox demo` in the box namespace, and the teacher's requests from inside it."""

    def __init__(self, link: WeakLink, workdir: Path, config_text: str = DEMO_CONFIG) -> None:
        self.link = link
        self.workdir = workdir
        self.config_path = workdir / "classbox.toml"
        self.config_path.write_text(config_text)
        self.log_path = workdir / "daemon.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", link.box_ns, sys.executable, "-m", "edge", "demo", *self._demo_args(workdir)],
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._teacher = ThreadPoolExecutor(1, "links-teacher", initializer=_enter_netns, initargs=(link.box_ns,))

    def _demo_args(self, workdir: Path) -> list[str]:
        port = ["--host", "0.0.0.0", "--port", str(BOX_PORT)]  # noqa: S104 - all of the box's own namespace
        return ["--config", str(self.config_path), *port, "--state-dir", str(workdir / "state")]

    @property
    def student_url(self) -> str:
        """The box as the student reaches it."""
        return f"http://{self.link.box_ip}:{BOX_PORT}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def teacher(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        """A request from the panel (the box's own loopback)."""
        url = f"http://127.0.0.1:{BOX_PORT}{path}"
        return await self._in_box(lambda: http_json(url, method, body))

    async def _in_box(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._teacher, call)

    async def wait_healthy(self, within: float = 60.0) -> None:
        """Wait until the box answers /healthz (fail with its log if it exits)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the box exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            with contextlib.suppress(OSError):
                status, _ = await self.teacher("/healthz")
                if status == 200:
                    return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the box did not answer within {within}s:\n{self.log()[-4000:]}")

    async def start_lesson(self, title: str = "Weak link") -> str:
        """Start a lesson as the teacher; its join code."""
        status, body = await self.teacher("/api/lessons", "POST", {"title": title})
        assert status == 201, body
        return str(body["join_code"])

    async def viewers(self) -> list[dict[str, Any]]:
        """GET /api/viewers as the teacher."""
        with contextlib.suppress(OSError):
            status, body = await self.teacher("/api/viewers")
            if status == 200:
                return list(body["viewers"] if isinstance(body, dict) else body)
        return []

    async def close(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL) and the teacher's thread; idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 10)
            except TimeoutError:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
        self._log.close()
        await asyncio.to_thread(self._teacher.shutdown)


def chromium_wrapper(link: WeakLink, workdir: Path) -> Path:
    """An executable that runs Chromium in the student namespace (Playwright's pipe fds pass through)."""
    path = workdir / "chromium-in-student-ns"
    path.write_text(f'#!/bin/sh\nexec ip netns exec {link.student_ns} {CHROMIUM} "$@"\n')
    path.chmod(0o755)
    return path


@dataclass
class Student:
    """The student page in the student's Chromium, sampled once a second."""

    page: Page
    box: NetnsBox
    samples: list[Sample] = field(default_factory=list)
    _began: float = field(default_factory=time.monotonic)

    async def sample(self) -> Sample:
        """Take one sample now and keep it."""
        page, viewers = await asyncio.gather(self.page.evaluate(SAMPLE), self.box.viewers())
        viewer = viewers[0] if viewers else {}
        sample = Sample(
            t=round(time.monotonic() - self._began, 2),
            layer=viewer.get("layer"),
            height=int(page["height"]),
            frames=int(page["frames"]),
            decoded=int(page["decoded"]),
            gap_ms=float(page["gap_ms"]) if page["started"] else 0.0,
            audio_samples=int(page["audio_samples"]),
            audio_concealed=int(page["audio_concealed"]),
            box=viewer,
        )
        self.samples.append(sample)
        return sample

    async def watch(self, seconds: float, interval: float = 1.0) -> list[Sample]:
        """Sample every `interval` s for `seconds`; the samples taken."""
        taken: list[Sample] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            tick = loop.time()
            taken.append(await self.sample())
            await asyncio.sleep(max(0.0, interval - (loop.time() - tick)))
        return taken

    async def until(self, ok: Callable[[Sample], bool], within: float, what: str = "") -> Sample:
        """Sample every second until a sample satisfies `ok`; fail with the samples after `within` s."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while loop.time() < end:
            tick = loop.time()
            sample = await self.sample()
            if ok(sample):
                return sample
            await asyncio.sleep(max(0.0, 1.0 - (loop.time() - tick)))
        page = await self.page.evaluate(PAGE_STATE)
        log = self.box.log()[-3000:]
        samples = describe(self.samples[-int(within) - 2 :])
        raise AssertionError(f"not {what} within {within}s:\n{samples}\nthe page: {page}\nthe box's log:\n{log}")


def describe(samples: list[Sample]) -> str:
    """Samples as lines a failing test prints."""
    lines = []
    for s in samples:
        b = s.box
        lines.append(
            f"t={s.t:6.1f} layer={s.layer!s:5} h={s.height:4} frames={s.frames:5} gap={s.gap_ms:6.0f}ms "
            f"audio={s.audio_samples} box: {b.get('state')} kbps={b.get('kbps')} remb={b.get('bandwidth_kbps')} "
            f"est={b.get('estimate_kbps')} "
            f"loss={b.get('loss')} rtt={b.get('rtt_ms')}"
        )
    return "\n".join(lines)


def fps(samples: list[Sample]) -> float:
    """Frames presented per second over the samples."""
    if len(samples) < 2:
        return 0.0
    return (samples[-1].frames - samples[0].frames) / max(samples[-1].t - samples[0].t, 1e-3)


def longest_gap_ms(samples: list[Sample]) -> float:
    """The longest time without a new frame over the samples."""
    return max((s.gap_ms for s in samples), default=0.0)


def audio_worst(samples: list[Sample], rate: int = 48_000) -> tuple[float, float]:
    """(least share of a second's sound that arrived, most share of it concealed) over the samples' seconds."""
    received, concealed = 1.0, 0.0
    for a, b in zip(samples, samples[1:], strict=False):
        got = b.audio_samples - a.audio_samples
        received = min(received, got / (rate * max(b.t - a.t, 1e-3)))
        concealed = max(concealed, (b.audio_concealed - a.audio_concealed) / max(got, 1))
    return received, concealed


def audio_unbroken(samples: list[Sample], rate: int = 48_000) -> bool:
    """Audio arrived in every second and little of it was concealment."""
    received, concealed = audio_worst(samples, rate)
    return len(samples) > 1 and received >= 0.5 and concealed <= 0.2


@contextlib.asynccontextmanager
async def _link() -> AsyncIterator[WeakLink]:
    link = new_link()
    await asyncio.to_thread(link.create)
    try:
        yield link
    finally:
        await asyncio.to_thread(link.remove)


@dataclass
class Classroom:
    """A live lesson on the box and one student watching it over the weak link."""

    link: WeakLink
    box: NetnsBox
    browser: Browser
    student: Student
    join_code: str

    async def shape(self, kbit: int | None) -> None:
        """Change the link's rate now (None: unshaped), mid-lesson."""
        await asyncio.to_thread(self.link.shape, kbit)


@contextlib.asynccontextmanager
async def classroom(kbit: int | None, config_text: str = DEMO_CONFIG) -> AsyncIterator[Classroom]:
    """A live lesson on a box in its namespace, watched by Chromium over a link shaped to `kbit` kbit/s."""
    with tempfile.TemporaryDirectory(prefix="links-") as tmp:
        async with _link() as link, _box(link, Path(tmp), config_text) as box:
            await asyncio.to_thread(link.shape, kbit)
            code = await box.start_lesson()
            async with _student_browser(link, Path(tmp)) as browser:
                page = await browser.new_page()
                await page.add_init_script(FRAME_WATCH)
                await page.goto(f"{box.student_url}/watch/{code}")
                yield Classroom(link, box, browser, Student(page, box), code)


@contextlib.asynccontextmanager
async def _box(link: WeakLink, workdir: Path, config_text: str) -> AsyncIterator[NetnsBox]:
    box = NetnsBox(link, workdir, config_text)
    try:
        await box.wait_healthy()
        yield box
    finally:
        await box.close()


@contextlib.asynccontextmanager
async def _student_browser(link: WeakLink, workdir: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium_wrapper(link, workdir)), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
