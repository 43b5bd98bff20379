#!/usr/bin/env python3
"""WHIP uplink benchmark: the box's CPU while it publishes the lesson to a cloud SFU, alone and beside a local viewer.

The box (`classbox demo`, the default 720p30 high layer published with audio) publishes to a real
Janus VideoRoom behind simple-whip-server, run in a network namespace of the bench's own (root
needed; see tests/servers/janus_sfu.py). In the same run: the box's CPU over a window with no local
viewers (encoders + the one published session), then over a window with one local WHEP viewer
added (the same shared packets, one more SRTP stream). The ratio says what a local viewer costs
next to the publication; neither encodes anything more.

    sudo python bench/whip.py [--seconds 10] [--settle 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from _webrtc import REPO, Player, cpu_seconds, free_port, stop

from tests.servers.janus_sfu import available, running_sfu

TOKEN = "bench-token"
CONFIG = """
[web]
host = "127.0.0.1"
port = {port}
https_port = 0
[recording]
enabled = false
[discovery]
enabled = false
[uplink]
mode = "both"
whip_url = "{whip_url}"
token = "{token}"
layers = ["high"]
"""


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=20) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


def post_json(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


def uplink(base: str) -> dict[str, Any]:
    report: dict[str, Any] = get_json(base + "/healthz")["components"]["uplink"]
    return report


def wait_publishing(base: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if uplink(base).get("uplink_publishing") == 1:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the box did not publish within {within}s: {uplink(base)}")


async def window(pid: int, base: str, seconds: float) -> dict[str, float]:
    """The box's CPU (% of one core) and the uplink's bitrate over `seconds`."""
    began, cpu0 = time.monotonic(), cpu_seconds(pid)
    rates = []
    while time.monotonic() - began < seconds:
        await asyncio.sleep(1.0)
        rates.append(float((await asyncio.to_thread(uplink, base)).get("uplink_kbps", 0.0)))
    elapsed = time.monotonic() - began
    return {"cpu_pct": round(100 * (cpu_seconds(pid) - cpu0) / elapsed, 1), "uplink_kbps": round(max(rates), 1)}


async def measure(pid: int, base: str, join_code: str, seconds: float, settle: float) -> dict[str, Any]:
    await asyncio.sleep(settle)
    alone = await window(pid, base, seconds)
    async with aiohttp.ClientSession() as session:
        viewer = Player()
        await viewer.join(session, f"{base}/whep/{join_code}")
        deadline = time.monotonic() + 20
        while viewer.pc.connectionState != "connected" and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        await asyncio.sleep(settle)
        beside = await window(pid, base, seconds)
        await viewer.leave(session, base)
    return {
        "publishing_no_local_viewer": alone,
        "publishing_and_one_local_viewer": beside,
        "cpu_ratio_viewer_vs_alone": round(beside["cpu_pct"] / max(alone["cpu_pct"], 0.1), 3),
        "reconnects": uplink(base).get("uplink_reconnects_total"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=4.0)
    args = parser.parse_args()
    missing = available()
    if missing:
        print(f"bench/whip.py: {missing}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-whip-") as tmp, running_sfu(Path(tmp) / "sfu") as sfu:
        sfu.create_endpoint("bench", TOKEN, label="bench")
        port = free_port()
        config = Path(tmp) / "classbox.toml"
        config.write_text(CONFIG.format(port=port, whip_url=sfu.endpoint_url("bench"), token=TOKEN))
        argv = [sys.executable, "-m", "edge", "demo", "--config", str(config), "--state-dir", f"{tmp}/state"]
        argv += ["--port", str(port), "--host", "127.0.0.1", "--https-port", "0"]
        base = f"http://127.0.0.1:{port}"
        with (Path(tmp) / "box.log").open("wb") as log:
            proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        get_json(base + "/healthz")
                        break
                    except OSError:
                        if proc.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError("the box did not start") from None
                        time.sleep(0.2)
                lesson = post_json(base + "/api/lessons")
                wait_publishing(base)
                result = asyncio.run(measure(proc.pid, base, lesson["join_code"], args.seconds, args.settle))
            finally:
                stop(proc)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
