"""The shared web door: what anyone on the LAN may read, cross-origin refusals, body limits."""

from __future__ import annotations

import asyncio
import select
import socket
from pathlib import Path

import httpx
import pytest

from edge.core.config import BoxConfig
from edge.doors.web.server import bind_socket
from edge.system.accounts import hash_pin
from tests.helpers import DaemonProcess
from tests.stream_fixture import live_box, small_config

PIN = "2468"
PIN_HASH = hash_pin(PIN)  # at import: argon2 would block the test's loop


def lan_config(tmp_path: Path) -> BoxConfig:
    """A box whose panel is elsewhere: this test's loopback client is just someone on the LAN."""
    config = small_config(tmp_path)
    config.web.panel_addresses = ["192.0.2.1/32"]
    config.web.teacher_pin_hash = PIN_HASH
    return config


async def test_anyone_reads_status_only_and_the_teacher_reads_the_details(tmp_path: Path) -> None:
    async with live_box(lan_config(tmp_path), with_devices=False) as live, httpx.AsyncClient(base_url=live.base) as c:
        lesson = await live.start_lesson("Algebra")
        teacher = {"X-Panel-Pin": PIN}
        for headers in ({}, {"X-Panel-Pin": "0000"}):  # no PIN, or a wrong one: the reduced answer, never a 401
            health = await c.get("/healthz", headers=headers)
            assert health.status_code == 200
            body = health.json()
            assert set(body) == {"status", "components"}
            assert body["components"]["web"] == {"status": "ok"}
            assert all(set(component) == {"status"} for component in body["components"].values())
            assert lesson.join_code not in health.text
            current = await c.get("/api/lessons/current", headers=headers)
            assert current.status_code == 200
            assert current.json() == {"lesson": {"state": "live", "title": "Algebra"}}
            home = await c.get("/", headers=headers)
            assert home.status_code == 200
            assert "Algebra" in home.text
            assert lesson.join_code not in home.text
        assert f'href="/watch/{lesson.join_code}"' in (await c.get("/", headers=teacher)).text
        full = (await c.get("/healthz", headers=teacher)).json()
        assert full["lesson"]["join_code"] == lesson.join_code
        assert full["components"]["web"]["detail"].startswith("listening on")
        current = (await c.get("/api/lessons/current", headers=teacher)).json()
        assert current["lesson"]["join_code"] == lesson.join_code
        assert current["lesson"]["started_by"] == "panel"
        await live.box.stop_lesson("panel")
        assert (await c.get("/api/lessons/current")).json() == {"lesson": None}


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM) in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def read_response(sock: socket.socket) -> bytes:
    """Everything up to the end of the response headers and the short JSON body after them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(
        next((line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), b"0")
    )
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


def send_chunked_until_answered(sock: socket.socket, total: int) -> tuple[bytes, int]:
    """Send up to `total` bytes as 64 KiB chunks, stopping once the server answers; (answer, bytes sent)."""
    block = b"v=0\r\n" + b"a" * (64 * 1024 - 5)
    chunk = b"%x\r\n%s\r\n" % (len(block), block)
    sent = 0
    while sent < total:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(block)
    return read_response(sock), sent


@pytest.mark.slow
def test_a_huge_body_is_refused_while_it_arrives_and_never_held(tmp_path: Path) -> None:
    with DaemonProcess(tmp_path / "state") as daemon:
        daemon.wait_healthy()
        before = peak_rss_kib(daemon.proc.pid)
        head = (
            f"POST /whep/abcdef HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\nContent-Type: application/sdp\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
            sock.sendall(head)
            answer, sent = send_chunked_until_answered(sock, 256 * 1024 * 1024)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"larger than 65536 bytes" in answer
        assert sent < 64 * 1024 * 1024  # refused while arriving, not after the whole body
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
            sock.sendall(
                f"POST /api/lessons HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {10**12}\r\n\r\n".encode()
            )
            declared = read_response(sock)  # answered at once: no body byte was sent
        assert declared.startswith(b"HTTP/1.1 413 "), declared[:200]
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
            sock.sendall(
                b"POST /whep/abcdef HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\n"
                b"Content-Length: 70000\r\n\r\n"
            )
            student = read_response(sock)
        assert student.startswith(b"HTTP/1.1 413 "), student[:200]
        assert b"access-control-allow-origin: *" in student.lower()  # a player on another origin reads why
        assert peak_rss_kib(daemon.proc.pid) - before < 16 * 1024
        assert daemon.health() is not None


async def test_state_changes_from_another_origin_are_refused_and_json_must_say_so(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    config.web.public_url = "https://box12.school.example"
    async with live_box(config, with_devices=False) as live, httpx.AsyncClient(base_url=live.base) as c:
        own = live.base
        refusals = [
            ({"Origin": "http://127.0.0.1:1"}, 403),  # another port is another origin
            ({"Origin": "null"}, 403),
            ({"Sec-Fetch-Site": "same-site"}, 403),
            ({"Sec-Fetch-Site": "cross-site", "Origin": own}, 403),
        ]
        for headers, status in refusals:
            answer = await c.post("/api/lessons", json={"title": "Forged"}, headers=headers)
            assert answer.status_code == status, headers
            assert "own pages" in answer.json()["detail"]
        plain = await c.post("/api/lessons", content=b'{"title": "Forged"}', headers={"Content-Type": "text/plain"})
        assert plain.status_code == 415
        assert live.box.current_lesson() is None
        started = await c.post(
            "/api/lessons", json={"title": "Mine"}, headers={"Origin": own, "Sec-Fetch-Site": "same-origin"}
        )
        assert started.status_code == 201
        stopped = await c.post("/api/lessons/current/stop", headers={"Origin": "https://box12.school.example"})
        assert stopped.status_code == 200  # the public URL is the box's own origin too
        assert (await c.post("/api/lessons", json={})).status_code == 201  # no browser headers: curl, the CLI
        preflight = await c.options("/whep/abcdef", headers={"Origin": "https://player.example"})
        assert preflight.status_code == 204  # students' players stay CORS-open
        leave = await c.delete("/whep/abcdef/123", headers={"Origin": "https://player.example"})
        assert leave.status_code == 404
        assert leave.headers["access-control-allow-origin"] == "*"


async def test_the_door_s_connections_send_each_answer_at_once_with_nagle_off() -> None:
    """asyncio turns Nagle off only on sockets made as TCP: the door's accepted connections must be."""
    accepted: asyncio.Queue[int] = asyncio.Queue()

    class Door(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.put_nowait(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    for host in ("127.0.0.1", "::"):
        sock = bind_socket(host, 0)
        server = await asyncio.get_running_loop().create_server(Door, sock=sock)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
            assert await asyncio.wait_for(accepted.get(), 5) != 0, host
            writer.close()
        finally:
            server.close()
