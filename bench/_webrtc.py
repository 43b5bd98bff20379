"""Shared parts of the live-lesson benchmarks: the box as a subprocess, WHEP players, a per-viewer-encoding sender."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BOX_CONFIG = """
[web]
host = "127.0.0.1"
port = {port}
[recording]
enabled = false
[discovery]
enabled = false
[lesson]
max_viewers = 200
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _post_json(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


@contextlib.contextmanager
def classbox(log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`classbox demo` on a free loopback port with a live lesson; yields (process, WHEP URL)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-box-") as state:
        config = Path(state) / "classbox.toml"
        config.write_text(BOX_CONFIG.format(port=port))
        profile = os.environ.get("BENCH_PROFILE")  # a path: write the box's cProfile there
        python = [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else [])]
        argv = [*python, "-m", "edge", "demo", "--config", str(config), "--state-dir", f"{state}/state"]
        argv += ["--port", str(port), "--host", "127.0.0.1"]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_http(base + "/healthz", proc)
                lesson = _post_json(base + "/api/lessons")
                yield proc, f"{base}/whep/{lesson['join_code']}"
            finally:
                stop(proc)


def _wait_http(url: str, proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=1).read()
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {within}s")


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def count_without_decoding() -> dict[int, list[int]]:
    """Count every RTP packet this process receives at its UDP sockets instead of decrypting and decoding it.

    SRTP encrypts only the payload: the RTP header (SSRC, marker bit) stays readable, so a viewer's
    frames can be counted where the datagram arrives. STUN, DTLS and RTCP still go to aiortc, so
    ICE consent, the DTLS handshake and the box's sender reports work as for a real viewer. This
    keeps the receivers (which share the machine's 2 cores with the box) from taking the CPU the
    box is measured on; the tests prove that real viewers decode the same packets.

    Returns {ssrc: [packets, frames, payload bytes]}; a frame ends at an RTP marker bit.
    """
    from aioice.ice import StunProtocol

    counts: dict[int, list[int]] = {}
    deliver = StunProtocol.datagram_received

    def counting(self: StunProtocol, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if isinstance(data, bytes) and len(data) >= 12 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223:
            c = counts.setdefault(int.from_bytes(data[8:12], "big"), [0, 0, 0])
            header = 12 + 4 * (data[0] & 0x0F)
            if data[0] & 0x10 and len(data) >= header + 4:  # header extension
                header += 4 + 4 * int.from_bytes(data[header + 2 : header + 4], "big")
            c[0] += 1
            c[1] += data[1] >> 7
            c[2] += max(0, len(data) - header - SRTP_TAG_BYTES)
            return
        deliver(self, data, addr)

    StunProtocol.datagram_received = counting  # type: ignore[method-assign]
    return counts


SRTP_TAG_BYTES = 10  # AES_CM_128_HMAC_SHA1_80


def remote_ssrc(sdp: str, kind: str) -> int:
    """The SSRC the other side announced for its first `kind` section (0 if none)."""
    from aiortc.sdp import SessionDescription

    for media in SessionDescription.parse(sdp).media:
        if media.kind == kind and media.ssrc:
            return int(media.ssrc[0].ssrc)
    return 0


TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
# Viewers offer transport-wide congestion control as Chromium does (the box then writes and records a
# transport-wide sequence number per packet); BENCH_TRANSPORT_CC=0 offers what aiortc offers alone.
OFFER_TRANSPORT_CC = os.environ.get("BENCH_TRANSPORT_CC", "1") != "0"


def with_transport_cc(sdp: str) -> str:
    """The offer with the transport-cc extension and feedback in each audio and video section."""
    lines, out = sdp.split("\r\n"), []
    for line in lines:
        out.append(line)
        if line.startswith("m=audio") or line.startswith("m=video"):
            out.append(f"a=extmap:5 {TRANSPORT_CC_URI}")
        elif line.startswith("a=rtpmap:"):
            out.append(f"a=rtcp-fb:{line.split(':', 1)[1].split()[0]} transport-cc")
    return "\r\n".join(out)


class Player:
    """One WHEP viewer (aiortc, recvonly video + audio)."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.location = ""
        self.video_receiver: Any = None
        self.audio_receiver: Any = None
        self.video_ssrc = 0
        self.audio_ssrc = 0

    async def join(self, session: aiohttp.ClientSession, url: str) -> None:
        """Offer, POST, apply the answer."""
        video = self.pc.addTransceiver("video", direction="recvonly")
        audio = self.pc.addTransceiver("audio", direction="recvonly")
        h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
        video.setCodecPreferences(h264)
        self.video_receiver, self.audio_receiver = video.receiver, audio.receiver
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Content-Type": "application/sdp"}
        offer = self.pc.localDescription.sdp
        offer = with_transport_cc(offer) if OFFER_TRANSPORT_CC else offer
        async with session.post(url, data=offer, headers=headers) as response:
            text = await response.text()
            if response.status != 201:
                raise RuntimeError(f"WHEP answered {response.status}: {text}")
            self.location = response.headers.get("Location", "")
        await self.pc.setRemoteDescription(RTCSessionDescription(text, "answer"))
        self.video_ssrc, self.audio_ssrc = remote_ssrc(text, "video"), remote_ssrc(text, "audio")

    async def leave(self, session: aiohttp.ClientSession, base: str) -> None:
        """DELETE the session and close."""
        if self.location:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.delete(base + self.location):
                    pass
        await self.pc.close()


async def join_all(url: str, n: int, session: aiohttp.ClientSession, batch: int = 10) -> list[Player]:
    """`n` players, joined `batch` at a time."""
    players: list[Player] = []
    for start in range(0, n, batch):
        group = [Player() for _ in range(min(batch, n - start))]
        await asyncio.gather(*(p.join(session, url) for p in group))
        players += group
    return players


# -- the baseline: aiortc's default path, one encoder per viewer ----------------------------------


async def serve_per_viewer(port: int) -> None:
    """A WHEP-like endpoint whose viewers each get aiortc's own encoding of the synthetic camera and tone."""
    import av
    from aiohttp import web
    from aiortc.mediastreams import MediaStreamTrack

    from drivers.audio import SyntheticAudioSource
    from drivers.camera import SyntheticVideoSource

    camera = SyntheticVideoSource("bench", 1280, 720, 30)
    mic = SyntheticAudioSource("bench")
    camera.start()
    mic.start()
    queues: list[tuple[asyncio.Queue[Any], str]] = []

    class RawTrack(MediaStreamTrack):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind = kind
            self.queue: asyncio.Queue[Any] = asyncio.Queue(3)
            queues.append((self.queue, kind))

        async def recv(self) -> Any:
            return await self.queue.get()

    def offer(kind: str, frame: Any) -> None:
        for queue, qkind in queues:
            if qkind != kind:
                continue
            if kind == "video":
                item = av.VideoFrame.from_ndarray(frame.yuv, format="yuv420p")
                item.pts, item.time_base = round(frame.captured_at * 90000) & 0x7FFFFFFF, Fraction(1, 90000)
            else:
                item = av.AudioFrame.from_ndarray(frame.pcm.reshape(1, -1), format="s16", layout="mono")
                item.sample_rate, item.time_base = 48000, Fraction(1, 48000)
                item.pts = frame.index * 960
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(item)

    async def pump(kind: str) -> None:
        index = -1
        while True:
            if kind == "video":
                frame = await asyncio.to_thread(camera.wait_newer, index, 1.0)
            else:
                frame = await asyncio.to_thread(mic.read_after, index, 1.0)
            if frame is not None:
                index = frame.index
                offer(kind, frame)

    pcs: dict[str, RTCPeerConnection] = {}

    async def whep(request: web.Request) -> web.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(RawTrack("video"))
        pc.addTrack(RawTrack("audio"))
        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        key = str(len(pcs))
        pcs[key] = pc
        return web.Response(
            status=201, text=pc.localDescription.sdp, content_type="application/sdp", headers={"Location": f"/s/{key}"}
        )

    async def leave(request: web.Request) -> web.Response:
        pc = pcs.pop(request.match_info["key"], None)
        if pc is not None:
            await pc.close()
        return web.Response()

    app = web.Application()
    app.router.add_post("/whep", whep)
    app.router.add_delete("/s/{key}", leave)
    app.router.add_get("/healthz", lambda request: web.Response(text="ok"))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    pumps = [asyncio.create_task(pump(kind), name=f"pump:{kind}") for kind in ("video", "audio")]
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    try:
        await stopping.wait()
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        await asyncio.gather(*(pc.close() for pc in pcs.values()))
        await runner.cleanup()
        camera.stop()
        mic.stop()


@contextlib.contextmanager
def per_viewer_sender(script: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The baseline sender as a subprocess; yields (process, WHEP URL)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(script), "serve-per-viewer", str(port)], stdout=out, stderr=out)
        try:
            _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            yield proc, f"http://127.0.0.1:{port}/whep"
        finally:
            stop(proc)
