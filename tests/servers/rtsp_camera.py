"""A small real RTSP camera for tests: ffmpeg packetizes a looped clip to RTP, this serves it over RTSP.

Usage: python rtsp_camera.py CLIP PORT   (serves rtsp://127.0.0.1:PORT/cam; RTP interleaved over TCP).
Killing its process group is a camera unplug. It speaks just enough RTSP for FFmpeg's client:
OPTIONS, DESCRIBE, SETUP (TCP interleaved), PLAY, GET_PARAMETER, TEARDOWN.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys
import tempfile
from pathlib import Path


class RtpRelay(asyncio.DatagramProtocol):
    """Receives ffmpeg's RTP packets and copies them, interleaved, to every playing client."""

    def __init__(self) -> None:
        self.clients: set[asyncio.StreamWriter] = set()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        frame = b"$\x00" + len(data).to_bytes(2, "big") + data
        for writer in list(self.clients):
            if writer.is_closing() or writer.transport.get_write_buffer_size() > 1_000_000:
                self.clients.discard(writer)
                continue
            writer.write(frame)


def _free_udp_pair() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1]) & ~1
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
            ):
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free UDP port pair")


def _session_sdp(raw: str) -> str:
    lines = [line for line in raw.splitlines() if line and not line.startswith("c=")]
    out: list[str] = []
    for line in lines:
        if line.startswith("m=video"):
            out += ["c=IN IP4 0.0.0.0", "a=control:*"] if not any(x.startswith("a=control:*") for x in out) else []
            out.append(re.sub(r"^m=video \d+", "m=video 0", line))
            out.append("a=control:trackID=0")
        else:
            out.append(line)
    return "\r\n".join(out) + "\r\n"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length:
        await reader.readexactly(length)
    return lines[0], headers


class Camera:
    """The RTSP side: one session per connection, all sharing the one RTP relay."""

    def __init__(self, sdp: str, relay: RtpRelay) -> None:
        self.sdp = sdp
        self.relay = relay

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            while True:
                request = await _read_request(reader)
                if request is None or not self._answer(request[0], request[1], writer):
                    break
                await writer.drain()
        self.relay.clients.discard(writer)
        writer.close()

    def _answer(self, line: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> bool:
        method, url = (line.split(" ") + ["", ""])[:2]
        cseq = headers.get("cseq", "0")
        extra: dict[str, str] = {}
        body = ""
        if method == "OPTIONS":
            extra["Public"] = "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"
        elif method == "DESCRIBE":
            extra["Content-Type"] = "application/sdp"
            extra["Content-Base"] = url.rstrip("/") + "/"
            body = self.sdp
        elif method == "SETUP":
            if "interleaved" not in headers.get("transport", ""):
                self._send(writer, "461 Unsupported Transport", cseq, {}, "")
                return True
            extra["Transport"] = "RTP/AVP/TCP;unicast;interleaved=0-1"
            extra["Session"] = "c1a55b0x;timeout=60"
        elif method in ("PLAY", "GET_PARAMETER"):
            extra["Session"] = "c1a55b0x"
        elif method == "TEARDOWN":
            self._send(writer, "200 OK", cseq, {}, "")
            return False
        else:
            self._send(writer, "405 Method Not Allowed", cseq, {}, "")
            return True
        self._send(writer, "200 OK", cseq, extra, body)
        if method == "PLAY":
            self.relay.clients.add(writer)
        return True

    def _send(self, writer: asyncio.StreamWriter, status: str, cseq: str, extra: dict[str, str], body: str) -> None:
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", *(f"{k}: {v}" for k, v in extra.items())]
        lines.append(f"Content-Length: {len(body.encode())}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n" + body).encode())


async def serve(clip: Path, port: int) -> None:
    """Run ffmpeg and the RTSP server until killed."""
    loop = asyncio.get_running_loop()
    rtp_port = _free_udp_pair()
    relay = RtpRelay()
    rtp, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", rtp_port))
    rtcp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", rtp_port + 1))
    with tempfile.TemporaryDirectory() as tmp:
        sdp_path = Path(tmp) / "cam.sdp"
        ffmpeg = await asyncio.create_subprocess_exec(
            "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-an", "-c:v",
            "copy", "-f", "rtp", "-sdp_file", str(sdp_path), f"rtp://127.0.0.1:{rtp_port}?rtcpport={rtp_port + 1}",
        )  # fmt: skip
        try:
            while not sdp_path.exists() or not sdp_path.read_text().strip():  # noqa: ASYNC110 - ffmpeg writes it
                await asyncio.sleep(0.05)
            camera = Camera(_session_sdp(sdp_path.read_text()), relay)
            server = await asyncio.start_server(camera.handle, "127.0.0.1", port)
            print(f"rtsp://127.0.0.1:{port}/cam ready", flush=True)
            async with server:
                await server.serve_forever()
        finally:
            ffmpeg.kill()
            await ffmpeg.wait()
            rtp.close()
            rtcp.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(Path(sys.argv[1]), int(sys.argv[2])))
    os._exit(0)
