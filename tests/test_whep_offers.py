"""WHEP offers wrong in every way we found answer 400 with their reason; 503 when the box cannot serve."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import resource
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.helpers import DaemonProcess, http_json
from tests.stream_fixture import live_box, offer_sdp, small_config

SDP = {"Content-Type": "application/sdp"}


def sub(pattern: str, replacement: str) -> Callable[[str], str]:
    return lambda sdp: re.sub(pattern, replacement, sdp, flags=re.MULTILINE)


def after_mid0(line: str) -> Callable[[str], str]:
    return lambda sdp: sdp.replace("a=mid:0\r\n", f"a=mid:0\r\n{line}\r\n", 1)


# (what is wrong, how to make it from a good offer, the reason the box must give)
BAD_OFFERS = [
    # answered 500 before: aiortc raised while answering, or while cleaning up after it
    ("no mid", sub(r"^a=mid:.*\r\n", ""), "has no a=mid"),
    ("repeated mid", sub(r"^a=mid:1", "a=mid:0"), "repeats a=mid:0"),
    ("a NUL byte", lambda sdp: sdp.replace("a=mid:0", "a=mid:\x000", 1), "control characters"),
    ("a mid with a space", sub(r"^a=mid:0", "a=mid:0 0"), "not 1 to 16 token characters"),
    ("a mid of 5000 characters", sub(r"^a=mid:0", "a=mid:" + "x" * 5000), "not 1 to 16 token characters"),
    ("BUNDLE names a missing section", lambda sdp: sdp[: sdp.index("m=audio")], "names mid 1, which no section"),
    ("a text section", lambda sdp: sdp.replace("m=audio", "m=text", 1), "has a text section"),
    # answered 201 before, with a connection that cannot work or that breaks the viewer's sockets later
    ("no fingerprint", sub(r"^a=fingerprint:.*\r\n", ""), "no DTLS fingerprint"),
    ("no setup", sub(r"^a=setup:.*\r\n", ""), "no DTLS fingerprint and setup role"),
    ("a fingerprint that is no hash", sub(r"^a=fingerprint:sha-256 .*$", "a=fingerprint:sha-256 ZZ"), "not 32 hex"),
    ("only unknown fingerprints", sub(r"^a=fingerprint:sha-\d+", "a=fingerprint:md7"), "no algorithm this box checks"),
    ("candidate port", after_mid0("a=candidate:1 1 udp 1 192.0.2.9 99999999 typ host"), "out of range"),
    ("a candidate named in DNS", after_mid0("a=candidate:1 1 udp 1 box.example 5 typ host"), "an mDNS name (.local)"),
    ("a one-character ICE password", sub(r"^a=ice-pwd:.*$", "a=ice-pwd:x"), "the pwd 22 to 256"),
    ("ssrc past 32 bits", after_mid0("a=ssrc:99999999999999999999 cname:x"), "a=ssrc:99999999999999999999"),
    ("extmap id", after_mid0("a=extmap:4096 urn:ietf:params:rtp-hdrext:sdes:mid"), "a=extmap:4096 is out of range"),
    # refused before too: kept so that each keeps its reason
    ("no ICE credentials", sub(r"^a=ice-(ufrag|pwd):.*\r\n", ""), "ICE username fragment or password is missing"),
    ("an unknown setup role", sub(r"^a=setup:\w+", "a=setup:sideways"), "could not be read"),
    ("an m-line without formats", sub(r"^(m=video \d+ \S+).*$", r"\1"), "could not be read"),
    ("junk codecs", sub(r"^a=rtpmap:(\d+) H264/90000", r"a=rtpmap:\1 JUNK/90000"), "no codec in common"),
    ("rtcp-fb without a value", sub(r"^a=rtcp-fb:(\d+) .*$", r"a=rtcp-fb:\1"), "could not be read"),
    ("no rtcp-mux", sub(r"^a=rtcp-mux\r\n", ""), "RTCP mux is not enabled"),
    ("a sendonly video", sub(r"^a=recvonly", "a=sendonly"), "must be recvonly"),
]


async def good_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.createDataChannel("lesson")
        return await offer_sdp(pc)
    finally:
        await pc.close()


async def test_every_bad_offer_gets_400_and_its_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = await good_offer()
    async with live_box(small_config(tmp_path)) as live, httpx.AsyncClient(base_url=live.base, timeout=30) as client:
        lesson = await live.start_lesson()
        for what, mutate, reason in BAD_OFFERS:
            offer = mutate(good)
            assert offer != good, what
            answer = await client.post(f"/whep/{lesson.join_code}", content=offer.encode(), headers=SDP)
            assert answer.status_code == 400, (what, answer.text)
            assert reason in answer.json()["detail"], (what, answer.json())
            assert answer.headers["access-control-allow-origin"] == "*"
        assert live.hub.count == 0
        assert live.media.fanout.subscribers == 0
        fine = await client.post(f"/whep/{lesson.join_code}", content=good.encode(), headers=SDP)
        assert fine.status_code == 201
        await client.delete(fine.headers["location"])
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def lowest_free_fd(pid: int) -> int:
    """The descriptor number the process's next open() would get."""
    used = {int(name) for name in os.listdir(f"/proc/{pid}/fd")}
    return next(n for n in range(len(used) + 1) if n not in used)


@pytest.mark.slow
def test_an_offer_the_box_cannot_serve_now_gets_503_and_the_box_goes_on(tmp_path: Path) -> None:
    config = tmp_path / "classbox.toml"
    config.write_text("[recording]\nenabled = false\n")
    offer = asyncio.run(good_offer())
    with DaemonProcess(tmp_path / "state", "--config", str(config)) as daemon:
        daemon.wait_healthy()
        status, lesson = http_json(daemon.url + "/api/lessons", "POST", {"title": "Out of sockets"})
        assert status == 201, lesson
        url = f"/whep/{lesson['join_code']}"
        connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
        try:
            connection.request("GET", "/api/watch/" + lesson["join_code"])  # the connection is open before the limit
            assert connection.getresponse().read()
            pid = daemon.proc.pid
            limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free_fd(pid), limits[1]))
            try:
                connection.request("POST", url, body=offer.encode(), headers=SDP)
                refused = connection.getresponse()
                body = refused.read().decode()
            finally:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
        finally:
            connection.close()
        assert refused.status == 503, body
        assert "the box cannot take a viewer now: Too many open files" in body
        assert refused.getheader("Retry-After") == "30"
        joined = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
        try:
            joined.request("POST", url, body=offer.encode(), headers=SDP)
            answer = joined.getresponse()
            answer.read()
            assert answer.status == 201  # with descriptors back, the same offer is answered
        finally:
            joined.close()
        assert daemon.health() is not None
