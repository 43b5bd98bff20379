"""A real cloud SFU for the WHIP tests: Debian's Janus (VideoRoom) with simple-whip-server in front.

Janus never offers loopback candidates, so both run inside a network namespace the test makes,
joined to the test's own namespace by a veth pair on private addresses used only there
(10.251.25.0/24). `bootstrap` installs Janus (APT) and unpacks simple-whip-server (Debian's package
is not installable beside the machine's Node) into tests/servers/janus/, where `npm ci` puts the
Express 4 it expects. `Sfu.stop_janus()` is the SFU dying mid-lesson; `start_janus()` brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import stop_process, wait_for

HERE = Path(__file__).parent / "janus"
WHIP_SRC = HERE / "simple-whip-server" / "src"
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
log = logging.getLogger(__name__)
SFU_ADDRESS, BOX_ADDRESS = "10.251.25.1", "10.251.25.2"
JANUS_HTTP_PORT, JANUS_WS_PORT, WHIP_PORT = 8088, 8188, 7080
ROOM = 1234
UNUSED_PLUGINS = ("audiobridge", "duktape", "echotest", "lua", "nosip", "recordplay", "sip", "streaming")
UNUSED_PLUGINS += ("textroom", "videocall", "voicemail")
UNUSED_EVENTS = ",".join(f"libjanus_{name}evh.so" for name in ("gelf", "mqtt", "nanomsg", "rabbitmq", "sample", "ws"))


def available() -> str:
    """'' when Janus, Node and the unpacked simple-whip-server are here; else what is missing."""
    if shutil.which("janus") is None:
        return "Debian janus is not installed (bootstrap installs it)"
    if shutil.which("node") is None or not (HERE / "node_modules" / "express").is_dir():
        return "Node or tests/servers/janus/node_modules is missing (bootstrap runs npm ci)"
    if not (WHIP_SRC / "server.js").is_file():
        return "simple-whip-server is not unpacked in tests/servers/janus (bootstrap does it)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return ""


def _janus_config(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    disabled = ",".join(f"libjanus_{name}.so" for name in UNUSED_PLUGINS)
    (folder / "janus.jcfg").write_text(f"""
general: {{
    configs_folder = "{folder}"
    plugins_folder = "{JANUS_LIB}/plugins"
    transports_folder = "{JANUS_LIB}/transports"
    events_folder = "{JANUS_LIB}/events"
    loggers_folder = "{JANUS_LIB}/loggers"
    debug_level = 4
    session_timeout = 60
}}
media: {{ rtp_port_range = "20000-20999" }}
nat: {{ ignore_mdns = true nice_debug = false }}
plugins: {{ disable = "{disabled}" }}
transports: {{ disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so" }}
loggers: {{ disable = "libjanus_jsonlog.so" }}
events: {{ broadcast = false disable = "{UNUSED_EVENTS}" }}
""")
    (folder / "janus.transport.http.jcfg").write_text(
        f'general: {{ json = "compact" base_path = "/janus" http = true port = {JANUS_HTTP_PORT} https = false }}\n'
        "admin: { admin_http = false }\n"
    )
    (folder / "janus.transport.websockets.jcfg").write_text(
        f'general: {{ json = "compact" ws = true ws_port = {JANUS_WS_PORT} ws_ip = "127.0.0.1" wss = false }}\n'
        "admin: { admin_ws = false }\n"
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text(
        f'room-{ROOM}: {{ description = "classbox test" publishers = 4 bitrate = 0 fir_freq = 2 '
        'audiocodec = "opus" videocodec = "h264,vp8" }\n'
    )


def _whip_config(folder: Path) -> Path:
    """simple-whip-server reads `./config.js` beside its code: a copy of the code with ours."""
    code = folder / "whip-src"
    shutil.copytree(WHIP_SRC, code, dirs_exist_ok=True, ignore=shutil.ignore_patterns("config.js"))
    (code / "config.js").write_text(
        "module.exports = {"
        f" janus: {{ address: 'ws://127.0.0.1:{JANUS_WS_PORT}' }}, port: {WHIP_PORT}, rest: '/whip',"
        " allowTrickle: true, strictETags: false, iceServers: [] };\n"
    )
    return code / "server.js"


@dataclass
class Sfu:
    """Janus + simple-whip-server in their own namespace; the test's side of the veth is BOX_ADDRESS."""

    folder: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    janus: subprocess.Popen[bytes] | None = None
    whip: subprocess.Popen[bytes] | None = None

    @property
    def namespace(self) -> str:
        return f"whip-sfu-{self.tag}"

    @property
    def whip_base(self) -> str:
        return f"http://{SFU_ADDRESS}:{WHIP_PORT}/whip"

    @property
    def janus_url(self) -> str:
        return f"http://{SFU_ADDRESS}:{JANUS_HTTP_PORT}/janus"

    def endpoint_url(self, endpoint: str) -> str:
        return f"{self.whip_base}/endpoint/{endpoint}"

    def _in_namespace(self, *argv: str | Path) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *map(str, argv)]

    def make_link(self) -> None:
        inside, outside = f"whipS{self.tag}", f"whipH{self.tag}"
        commands = [
            ["ip", "netns", "add", self.namespace],
            ["ip", "link", "add", outside, "type", "veth", "peer", "name", inside],
            ["ip", "link", "set", inside, "netns", self.namespace],
            ["ip", "addr", "add", f"{BOX_ADDRESS}/24", "dev", outside],
            ["ip", "link", "set", outside, "up"],
            self._in_namespace("ip", "addr", "add", f"{SFU_ADDRESS}/24", "dev", inside),
            self._in_namespace("ip", "link", "set", inside, "up"),
            self._in_namespace("ip", "link", "set", "lo", "up"),
        ]
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)

    def set_link(self, up: bool) -> None:
        """Cut (or restore) the box's link to the SFU, as a school uplink dropping (the SFU itself runs on)."""
        # The SFU's end goes down: the box's route stays (flagged linkdown) and its packets are lost, as on a
        # dead uplink. Taking the box's own end down would drop the route, and the box would try its default
        # route instead, where something else may answer.
        state = "up" if up else "down"
        command = self._in_namespace("ip", "link", "set", f"whipS{self.tag}", state)
        subprocess.run(command, check=True, capture_output=True)
        log.info("sfu: the box's link is %s", state)  # the time the logs measure a mend from

    def remove_link(self) -> None:
        subprocess.run(["ip", "link", "del", f"whipH{self.tag}"], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)

    def start_janus(self) -> None:
        """Start Janus (again) and wait until it answers; simple-whip-server reconnects to it by itself."""
        config = self.folder / "janus"
        log = (self.folder / "janus.log").open("ab")
        self.janus = subprocess.Popen(
            self._in_namespace("janus", "-F", config, "-C", config / "janus.jcfg"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(lambda: self._get(f"{self.janus_url}/info") is not None, 15, 0.1, "Janus answering /janus/info")

    def stop_janus(self) -> None:
        """Kill Janus at once, as a crashed or unplugged SFU (no goodbye to its peers)."""
        if self.janus is not None:
            self.janus.kill()
            self.janus.wait()
            self.janus = None

    def start_whip(self) -> None:
        server = _whip_config(self.folder)
        log = (self.folder / "whip.log").open("ab")
        env = {**os.environ, "NODE_PATH": str(HERE / "node_modules"), "DEBUG": "whip:*"}
        self.whip = subprocess.Popen(
            self._in_namespace("node", server),
            cwd=server.parent,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(lambda: self._get(f"{self.whip_base}/healthcheck") is not None, 15, 0.1, "simple-whip-server")

    def whip_ready(self) -> bool:
        """True once simple-whip-server is connected to Janus again (it retries every 2 s)."""
        return "Connected to Janus" in (self.folder / "whip.log").read_text(errors="replace").rsplit("Lost", 1)[-1]

    def create_endpoint(self, endpoint: str, token: str, label: str = "classbox") -> None:
        body = json.dumps({"id": endpoint, "room": ROOM, "token": token, "label": label}).encode()
        request = urllib.request.Request(
            f"{self.whip_base}/create", body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def _get(self, url: str) -> bytes | None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                data: bytes = response.read()
                return data
        except (OSError, urllib.error.URLError):
            return None

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n" + (self.folder / name).read_text(errors="replace")[-4000:]
            for name in ("janus.log", "whip.log")
            if (self.folder / name).exists()
        )

    def close(self) -> None:
        self.stop_janus()
        if self.whip is not None:
            stop_process(self.whip)
            self.whip = None
        self.remove_link()


@contextlib.contextmanager
def running_sfu(folder: Path) -> Iterator[Sfu]:
    """Janus and simple-whip-server up in a namespace of their own until the block ends."""
    sfu = Sfu(folder)
    _janus_config(folder / "janus")
    try:
        sfu.make_link()
        sfu.start_janus()
        sfu.start_whip()
        wait_for(sfu.whip_ready, 15, 0.1, "simple-whip-server connected to Janus")
        yield sfu
    finally:
        sfu.close()


class Subscriber:
    """The cloud student: joins the VideoRoom through Janus's HTTP API and plays the box's stream with aiortc."""

    def __init__(self, janus_url: str) -> None:
        self.janus_url = janus_url
        self.frames = {"video": 0, "audio": 0}
        self._tasks: list[asyncio.Task[None]] = []
        self.pc: Any = None

    async def _call(self, client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(self.janus_url + path, json={**body, "transaction": uuid.uuid4().hex})
        data: dict[str, Any] = response.json()
        return data

    async def watch(self, client: Any, label: str) -> None:
        """Find the publisher named `label` and subscribe to it; frames are counted as they decode."""
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        session = (await self._call(client, "", {"janus": "create"}))["data"]["id"]
        base = f"/{session}"
        handle = (await self._call(client, base, {"janus": "attach", "plugin": "janus.plugin.videoroom"}))["data"]["id"]
        path = f"{base}/{handle}"
        listing = {"request": "listparticipants", "room": ROOM}
        listed = await self._call(client, path, {"janus": "message", "body": listing})
        participants = listed["plugindata"]["data"]["participants"]
        feed = next(p["id"] for p in participants if p.get("display") == label and p.get("publisher"))
        join = {"request": "join", "ptype": "subscriber", "room": ROOM, "streams": [{"feed": feed}]}
        await self._call(client, path, {"janus": "message", "body": join})
        offer = await self._poll_jsep(client, base)
        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.on("track", lambda track: self._tasks.append(asyncio.create_task(self._consume(track))))
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        jsep = {"type": "answer", "sdp": pc.localDescription.sdp}
        await self._call(client, path, {"janus": "message", "body": {"request": "start"}, "jsep": jsep})
        self._tasks.append(asyncio.create_task(self._keep_polling(client, base)))

    async def _poll_jsep(self, client: Any, base: str) -> dict[str, Any]:
        for _ in range(20):
            response = await client.get(self.janus_url + base, params={"maxev": 5}, timeout=35)
            events = response.json()
            for event in events if isinstance(events, list) else [events]:
                if "jsep" in event:
                    jsep: dict[str, Any] = event["jsep"]
                    return jsep
        raise AssertionError("Janus sent no subscriber offer")

    async def _keep_polling(self, client: Any, base: str) -> None:
        while True:  # Janus ends a session nobody polls within its timeout; a cut link only pauses this
            try:
                await client.get(self.janus_url + base, params={"maxev": 5}, timeout=35)
            except Exception:
                await asyncio.sleep(0.5)

    async def _consume(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames[track.kind] += 1

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.pc is not None:
            await self.pc.close()
