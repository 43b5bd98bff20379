"""A live box in-process (real encoders, aiortc, uvicorn on loopback) and an aiortc student player."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription

from drivers.audio import AudioSource, SyntheticAudioSource
from drivers.camera import SyntheticVideoSource, VideoSource
from edge.box import Box
from edge.core.component import Component
from edge.core.config import BoxConfig, VideoLayerConfig
from edge.core.events import EventBus
from edge.daemon import Daemon
from edge.doors.web.app import create_app
from edge.lessons.lessons import Lesson
from edge.media.live import LessonMedia
from edge.services import Parts, Services
from edge.stream.ice_restart import close_peer
from edge.stream.viewers import Viewer, ViewerHub
from edge.wiring import standard_components
from tests.helpers import free_port

# The daemon builds its FastAPI app on the loop; the first build (pydantic schemas) can take longer
# than the suite's blocked-loop limit on a busy machine, so build one once at import. The same goes
# for the first import of what the daemon imports when it composes its components.
create_app(Box(BoxConfig(), EventBus()))
importlib.import_module("edge.doors.web.server")
importlib.import_module("edge.courseware.cache")
importlib.import_module("edge.recording.uploads")
importlib.import_module("edge.recording.recorder")
importlib.import_module("edge.media.capture")


class SourceDevice(Component):
    """Stands in for capture's `camera:<name>`/`mic:<name>` components: a real synthetic driver source."""

    def __init__(self, name: str, source: VideoSource | AudioSource) -> None:
        super().__init__()
        self.name = name
        self.source = source

    async def start(self) -> None:
        await asyncio.to_thread(self.source.start)
        self.set_health("ok")

    async def stop(self) -> None:
        await asyncio.to_thread(self.source.stop)


def small_config(tmp_path: Path, **lesson: Any) -> BoxConfig:
    """A box on a free loopback port with small layers (the machine is shared)."""
    config = BoxConfig()
    config.box.state_dir = tmp_path / "state"
    config.web.host, config.web.port = "127.0.0.1", free_port()
    config.web.https_port = free_port()  # not the default 8443: boxes run side by side
    config.cameras[0].width, config.cameras[0].height, config.cameras[0].fps = 640, 360, 15
    config.stream.high = VideoLayerConfig(width=640, height=360, fps=15, kbps=600)
    config.stream.low = VideoLayerConfig(width=320, height=180, fps=10, kbps=150)
    config.recording.enabled = False  # the recorder's own tests cover it; here it would only be one more subscriber
    config.discovery.enabled = False
    for key, value in lesson.items():
        setattr(config.lesson, key, value)
    return config


@dataclass
class LiveBox:
    """A running daemon and its parts."""

    daemon: Daemon
    task: asyncio.Task[None]

    @property
    def box(self) -> Box:
        return self.daemon.box

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.box.config.web.port}"

    @property
    def media(self) -> LessonMedia:
        media = self.box.parts.media
        assert isinstance(media, LessonMedia)
        return media

    @property
    def hub(self) -> ViewerHub:
        hub = self.box.viewer_hub
        assert isinstance(hub, ViewerHub)
        return hub

    async def start_lesson(self, title: str = "Fractions") -> Lesson:
        return await self.box.start_lesson(title, "panel")

    def viewer_of(self, player: Player) -> Viewer | None:
        """The box's side of `player` (None once it has gone)."""
        return self.hub.viewer(player.location.rsplit("/", 1)[1])


def devices(config: BoxConfig) -> list[Component]:
    """The first camera and microphone as synthetic driver sources."""
    cam, mic = config.cameras[0], config.microphones[0]
    return [
        SourceDevice(f"camera:{cam.name}", SyntheticVideoSource(cam.name, cam.width, cam.height, cam.fps)),
        SourceDevice(f"mic:{mic.name}", SyntheticAudioSource(mic.name, mic.channels, mic.tone_hz)),
    ]


@contextlib.asynccontextmanager
async def live_box(config: BoxConfig, with_devices: bool = True) -> AsyncIterator[LiveBox]:
    """Run a daemon in this loop until the block ends."""

    def components(services: Services) -> Parts:
        standard = standard_components(services)
        names = {component.name for component in standard.components}
        # Capture's own camera/mic components take precedence once standard_components has them.
        extra = [d for d in devices(services.config) if d.name not in names] if with_devices else []
        return dataclasses.replace(standard, components=(*extra, *standard.components))

    daemon = Daemon(config, components)
    task = asyncio.create_task(daemon.run(), name="test:daemon")
    try:
        while (web := daemon.supervisor.get("web")) is None or web.health().status != "ok":
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield LiveBox(daemon, task)
    finally:
        daemon.request_stop()
        await task
        forget_mdns_resolver()


def forget_mdns_resolver() -> None:
    """aioice keeps its mDNS resolver in a per-thread global bound to the loop that made it; each test has its own."""
    import aioice.ice

    for name in ("lock", "protocol", "subscribers"):
        if hasattr(aioice.ice._mdns, name):
            delattr(aioice.ice._mdns, name)


@dataclass
class Player:
    """A student's aiortc player: WHEP offer/answer, decoded frames counted per kind."""

    pc: RTCPeerConnection
    location: str = ""
    answer: str = ""
    frames: dict[str, int] = field(default_factory=lambda: {"video": 0, "audio": 0})
    sizes: set[tuple[int, int]] = field(default_factory=set)
    messages: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    channel: Any = None

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if isinstance(frame, av.VideoFrame):
                    self.sizes.add((frame.width, frame.height))

    def send(self, kind: str, **data: Any) -> None:
        self.channel.send(json.dumps({"type": kind, **data}))

    def sockets(self) -> list[Any]:
        """The player's UDP endpoints (aioice protocols, one per local candidate)."""
        return list(self.pc.getTransceivers()[0].receiver.transport.transport._connection._protocols)

    def box_ssrc(self, kind: str) -> int:
        """The SSRC the box announced in its answer for `kind`."""
        media = next(m for m in SessionDescription.parse(self.answer).media if m.kind == kind)
        return int(media.ssrc[0].ssrc)

    @contextlib.contextmanager
    def lossy_link(self, lose_one_in: int = 3) -> Iterator[None]:
        """Lose one incoming RTP datagram in `lose_one_in` at the player's UDP sockets, as a bad link would.

        STUN, DTLS, the data channel and RTCP still arrive; the player's receiver reports then tell
        the box about the loss.
        """
        protocols = self.sockets()
        count = itertools.count()
        for protocol in protocols:
            deliver = protocol.datagram_received

            def lossy(data: bytes, addr: Any, deliver: Any = deliver) -> None:
                is_rtp = len(data) > 1 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223
                if not (is_rtp and next(count) % lose_one_in == 0):
                    deliver(data, addr)

            protocol.datagram_received = lossy
        try:
            yield
        finally:
            for protocol in protocols:
                del protocol.datagram_received

    async def close(self, client: httpx.AsyncClient | None = None) -> None:
        if client is not None and self.location:
            await client.delete(self.location)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await close_peer(self.pc)  # a student's aiortc has aioice's close race too


async def offer_sdp(pc: RTCPeerConnection, data_channel: bool = True) -> str:
    """A recvonly video+audio offer (plus the lesson data channel)."""
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


async def join(
    client: httpx.AsyncClient,
    url: str,
    data_saver: bool = False,
    rtc: RTCConfiguration | None = None,
    offer_filter: Callable[[str], str] | None = None,
) -> Player:
    """POST a WHEP offer (through `offer_filter`) to `url` and play the answer; raise on any status but 201."""
    pc = RTCPeerConnection(rtc or RTCConfiguration(iceServers=[]))
    player = Player(pc)
    player.channel = pc.createDataChannel("lesson")

    @player.channel.on("message")
    def _message(message: str) -> None:
        data = json.loads(message)
        player.messages.append(data)
        if data.get("type") == "lesson.ended":
            player.ended.set()

    @pc.on("track")
    def _track(track: MediaStreamTrack) -> None:
        player.tasks.append(asyncio.create_task(player._consume(track), name=f"test:player-{track.kind}"))

    try:
        sdp = await offer_sdp(pc)
        sdp = offer_filter(sdp) if offer_filter else sdp
        params = {"data_saver": "1"} if data_saver else {}
        response = await client.post(url, content=sdp, headers={"Content-Type": "application/sdp"}, params=params)
        assert response.status_code == 201, response.text
        player.location, player.answer = response.headers["location"], response.text
        await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    except BaseException:
        await player.close()
        raise
    return player


async def until(predicate: Any, within: float = 10.0, what: str = "") -> None:
    """Wait (without blocking the loop) until `predicate()` is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or predicate}")
        await asyncio.sleep(0.05)
