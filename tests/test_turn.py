"""Time-limited TURN credentials (TURN REST API) against a real coturn with `use-auth-secret`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy

from edge.core.config import IceServer
from edge.stream.ice import credentials
from tests.stream_fixture import join, live_box, small_config, until
from tests.turn_server import TurnServer

SECRET = "shared-turn-secret-of-the-school"
TTL_S = 600
LINK_RE = re.compile(
    r'^<([^>]+)>; rel="ice-server"; username="([^"]+)"; credential="([^"]+)"; credential-type="password"$'
)


@pytest.fixture
def turn(tmp_path: Path) -> Iterator[TurnServer]:
    server = TurnServer(tmp_path / "turn", auth_secret=SECRET)
    try:
        yield server
    finally:
        server.close()


def minted_server(turn: TurnServer) -> IceServer:
    return IceServer(urls=[turn.url], auth_secret=SECRET, ttl_s=TTL_S)


def expected_credential(username: str, secret: str = SECRET) -> str:
    """The TURN REST API credential, computed here independently of the box's code."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


async def allocate(turn: TurnServer, username: str, password: str) -> None:
    """Make (and release) a real TURN allocation; raises stun.TransactionFailed when refused."""
    transport, _ = await create_turn_endpoint(asyncio.DatagramProtocol, ("127.0.0.1", turn.port), username, password)
    transport.close()


async def test_a_viewer_relayed_with_minted_credentials_plays_the_lesson(
    tmp_path: Path, turn: TurnServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = small_config(tmp_path)
    config.stream.ice_servers = [minted_server(turn)]
    config.stream.relay_only = True
    async with live_box(config) as live, httpx.AsyncClient(base_url=live.base) as client:
        lesson = await live.start_lesson()
        preflight = await client.options(f"/whep/{lesson.join_code}")
        match = LINK_RE.match(preflight.headers["link"])
        assert match is not None, preflight.headers["link"]
        url, username, credential = match.groups()
        expiry, who = username.split(":")
        assert who == lesson.id
        assert time.time() < int(expiry) <= time.time() + TTL_S + 1
        assert credential == expected_credential(username)
        assert SECRET not in str(preflight.headers)
        student = RTCConfiguration(
            iceServers=[RTCIceServer(urls=url, username=username, credential=credential)],
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )
        player = await join(client, f"/whep/{lesson.join_code}", rtc=student)
        try:
            await until(lambda: player.frames["video"] >= 10 and player.frames["audio"] >= 20, 20.0, "relayed media")
            viewer = live.viewer_of(player)
            assert viewer is not None
            assert viewer.video_sender is not None
            pair = viewer.video_sender.transport.transport._connection._nominated[1]
            assert pair.local_candidate.type == "relay"
            assert pair.remote_candidate.type == "relay"
            box_turn = viewer.pc._RTCPeerConnection__configuration.iceServers[0]  # type: ignore[attr-defined]
            assert box_turn.username.endswith(f":{viewer.id}")  # the box's own side: the viewer's minted credential
            assert box_turn.credential == expected_credential(box_turn.username)
        finally:
            await player.close(client)
    assert turn.allocations() >= 2  # the box's side and the student's
    assert SECRET not in caplog.text
    assert SECRET not in repr(config)


async def test_coturn_refuses_an_expired_or_forged_credential(turn: TurnServer) -> None:
    server = minted_server(turn)
    await allocate(turn, *credentials(server, "probe"))  # a fresh one is accepted: the refusals below mean something
    expired = credentials(server, "probe", now=time.time() - TTL_S - 60)
    assert int(expired[0].split(":")[0]) < time.time()
    future = f"{int(time.time()) + TTL_S}:probe"
    forged = (future, expected_credential(future, secret="a guess"))
    for username, password in (expired, forged):
        with pytest.raises(stun.TransactionFailed) as refused:
            await allocate(turn, username, password)
        assert refused.value.response.error_code == 401
    assert turn.allocations() == 1
