"""The WHIP uplink's parts that need no SFU: Link headers, refusals, settings, where students are sent."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from edge.box import Box
from edge.core.component import ComponentHealth, Components
from edge.core.config import BoxConfig, parse_config
from edge.core.errors import ConfigError
from edge.core.events import EventBus
from edge.health.status import status_lines
from edge.stream.ice_restart import IceOffer, offer_sdpfrag, parse_sdpfrag
from edge.stream.uplink_service import player_url
from edge.stream.whip import UplinkSession
from edge.stream.whip_http import WhipError, WhipRefused, _refusal, parse_ice_links
from sync.budget import Budget


def test_ice_servers_come_from_link_headers_with_their_credentials() -> None:
    values = [
        '<stun:stun.example.net>; rel="ice-server"',
        '<turn:turn.example.net?transport=udp>; rel="ice-server"; username="box 1"; '
        'credential="p\\"w;d"; credential-type="password", <https://example.net/doc>; rel="help"',
        "<turns:t.example.net:443>;rel=ice-server;username=u;credential=c",
        '<http://not-ice.example>; rel="ice-server"',
    ]
    servers = parse_ice_links(values)
    assert [(s.urls, s.username, s.credential) for s in servers] == [
        ("stun:stun.example.net", None, None),
        ("turn:turn.example.net?transport=udp", "box 1", 'p"w;d'),
        ("turns:t.example.net:443", "u", "c"),
    ]


def test_refusals_say_what_to_do_and_a_wrong_token_is_its_own_kind() -> None:
    assert isinstance(_refusal(403, "Unauthorized"), WhipRefused)
    assert isinstance(_refusal(401, ""), WhipRefused)
    assert "check the token" in str(_refusal(401, ""))
    in_use = _refusal(403, "Endpoint ID already in use")
    assert not isinstance(in_use, WhipRefused)
    assert isinstance(in_use, WhipError)
    assert "no WHIP endpoint" in str(_refusal(404, "Invalid endpoint ID"))
    assert "<html>" not in str(_refusal(500, "<html><body>boom</body></html>"))
    assert "HTTP 503" in str(_refusal(503, "Janus unavailable"))


def test_the_uplink_settings_are_checked_and_the_token_is_never_shown() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({"uplink": {"mode": "cloud", "token": "t0ps3cret"}})
    assert "whip_url" in str(refused.value)
    assert "t0ps3cret" not in str(refused.value)
    with pytest.raises(ConfigError, match="http:// or https://"):
        parse_config({"uplink": {"whip_url": "ftp://sfu.example/whip"}})
    with pytest.raises(ConfigError, match="each layer once"):
        parse_config({"uplink": {"layers": ["low", "low"]}})
    config = parse_config({"uplink": {"mode": "both", "whip_url": "https://sfu.example/whip/x", "token": "t0ps3cret"}})
    assert config.uplink.publishes()
    assert "t0ps3cret" not in repr(config)
    assert not BoxConfig().uplink.publishes()


class FakeUplinkState:
    """Only the one answer player_url asks for (the real component is tested against Janus)."""

    def __init__(self, serving: bool) -> None:
        self.serving = serving

    def status(self) -> dict[str, Any]:
        return {}

    def serves_students(self) -> bool:
        return self.serving

    async def check(self, url: str, token: str) -> str:
        return ""


def test_students_are_sent_to_the_cloud_player_only_when_the_lesson_is_there() -> None:
    cloud = parse_config(
        {
            "uplink": {
                "mode": "cloud",
                "whip_url": "https://sfu.example/w",
                "player_url": "https://p.example/{join_code}",
            }
        }
    ).uplink
    assert player_url(None, cloud, "abc123") == "https://p.example/abc123"  # cloud only: there is nowhere else
    both = cloud.model_copy(update={"mode": "both"})
    assert player_url(FakeUplinkState(True), both, "abc123") == "https://p.example/abc123"
    assert player_url(FakeUplinkState(False), both, "abc123") is None  # refused: the box's own link still works
    local = cloud.model_copy(update={"mode": "local"})
    assert player_url(FakeUplinkState(True), local, "abc123") is None


def test_the_join_link_is_the_box_s_own_without_a_cloud(tmp_path: Path) -> None:
    config = BoxConfig()
    config.box.state_dir = tmp_path
    config.web.public_url = "https://box.school.example"
    box = Box(config, EventBus())
    assert box.join_url("abc123") == "https://box.school.example/watch/abc123"
    config.uplink.whip_url, config.uplink.player_url = "https://sfu.example/w", "https://p.example/{join_code}"
    config.uplink.mode = "cloud"
    assert box.join_url("abc123") == "https://p.example/abc123"
    assert box.uplink_status()["state"] == "off"


def test_the_status_strip_says_live_to_cloud_in_plain_words() -> None:
    publishing = Components({"uplink": ComponentHealth(status="ok", metrics={"uplink_state": "publishing"})})
    off = Components({"uplink": ComponentHealth(status="ok", metrics={"uplink_state": "off"})})
    today = dt.date.today()
    lines = status_lines({}, publishing, [], today)
    assert [line.text() for line in lines] == ["Live to cloud: students outside this room watch through the cloud"]
    assert status_lines({}, off, [], today) == []


def test_a_configured_link_rate_is_not_replaced_by_an_estimate(tmp_path: Path) -> None:
    budget = Budget(tmp_path / "c.json", link_kbps=2400)
    budget.observe(100_000_000, 0.1)  # a pull from a LAN or loopback server: gigabits
    budget.set_live_reservation(648)
    assert budget.status()["link_estimate_kbps"] == 2400
    assert budget.status()["rate_kbps"] == 2400 - 648
    estimated = Budget(tmp_path / "d.json")
    estimated.observe(1_000_000, 1.0)
    assert estimated.status()["link_estimate_kbps"] == 8000


def test_a_dead_session_is_told_from_rtcp_and_bytes_not_from_connection_state() -> None:
    from edge.media.packets import PacketFanout
    from edge.stream.feeds import SharedPacketizer

    session = UplinkSession(PacketFanout(), ["high"], SharedPacketizer())
    start = session.opened_at
    assert session.problem(start + 5) == ""  # connecting: no RTCP due yet
    assert "no media path" in session.problem(start + 11)
    session.rtcp_at, session.sent_at = start + 1, start + 1
    assert session.problem(start + 3.5) == ""
    assert "stopped answering" in session.problem(start + 4.5)
    session.rtcp_at = start + 4.4  # RTCP still comes, but nothing went out
    assert "no media went" in session.problem(start + 4.5)


def test_an_ice_restart_offers_new_credentials_and_reads_the_server_s_answer_or_says_why_not() -> None:
    offer = IceOffer("ab12", "p" * 22, ["1 1 udp 2130706431 10.0.0.2 40000 typ host"])
    fragment = offer_sdpfrag(offer, ["0", "1", "2"], "video")
    assert fragment.splitlines() == [
        "a=group:BUNDLE 0 1 2",
        "m=video 9 UDP/TLS/RTP/SAVPF 0",
        "a=mid:0",
        "a=ice-ufrag:ab12",
        f"a=ice-pwd:{'p' * 22}",
        "a=candidate:1 1 udp 2130706431 10.0.0.2 40000 typ host",
        "a=end-of-candidates",
    ]
    answer = parse_sdpfrag("a=ice-ufrag:Zx9q\r\na=ice-pwd:serverpassword0123456789\r\n")  # simple-whip-server's
    assert (answer.ufrag, answer.pwd, answer.candidates) == ("Zx9q", "serverpassword0123456789", [])
    with_candidate = parse_sdpfrag("a=ice-ufrag:u\na=ice-pwd:p\na=candidate:2 1 udp 1 10.0.0.1 5000 typ host\n")
    assert with_candidate.candidates == ["2 1 udp 1 10.0.0.1 5000 typ host"]
    with pytest.raises(ValueError, match="no new ICE credentials"):
        parse_sdpfrag("a=ice-ufrag:u\r\n")
    broken = "a=ice-ufrag:u\na=ice-pwd:p\na=candidate:garbage\na=candidate:3 1 udp 1 10.0.0.3 6 typ host\n"
    skipped = parse_sdpfrag(broken)
    assert skipped.candidates == ["3 1 udp 1 10.0.0.3 6 typ host"]  # the server switched already: the rest will do
    with pytest.raises(ValueError, match="too long"):
        parse_sdpfrag("a=ice-ufrag:u\n" * 5000)
    refused = _refusal(403, "Endpoint ID not published", "the ICE restart")
    assert not isinstance(refused, WhipRefused)  # the session is gone, the token is not in doubt
    assert "ICE restart" in str(refused)
