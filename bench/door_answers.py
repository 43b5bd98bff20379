"""How long one answer takes on a kept-alive connection to the box's web door, and the same with Nagle on.

    python bench/door_answers.py [--requests 200]

Serves a small FastAPI route through the door's own listener (`edge.doors.web.server`: uvicorn on a socket
`bind_socket` made) and times sequential GETs from one httpx client on one connection, as the panel's
and admin page's scripts make them. The baseline, in the same run: the same server on a socket made
with protocol 0, which asyncio leaves with Nagle on (each answer then waits for the client's delayed ACK).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # before bench/: its sync.py would shadow the sync package

import httpx  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from edge.doors.web.server import _close, _listen, bind_socket  # noqa: E402

app = FastAPI()


@app.get("/api/status")
def status() -> dict[str, str]:
    """An answer about the size of the panel's status poll."""
    return {"lesson": "none", "state": "ready", "padding": "x" * 400}


def nagle_on_socket() -> socket.socket:
    """The listener as the door made it before: protocol 0, so asyncio leaves Nagle on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def answers_ms(sock: socket.socket, requests: int) -> list[float]:
    """Milliseconds per answer for `requests` sequential GETs on one kept-alive connection."""
    listener = await _listen(app, sock, "bench:door")
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/status"
    times: list[float] = []
    try:
        async with httpx.AsyncClient() as client:
            (await client.get(url)).raise_for_status()  # the connection opens here
            for _ in range(requests):
                began = time.perf_counter()
                (await client.get(url)).raise_for_status()
                times.append((time.perf_counter() - began) * 1000)
    finally:
        await _close(listener)
    return times


def row(name: str, times: list[float]) -> str:
    p95 = statistics.quantiles(times, n=20)[-1]
    return f"{name:<32} median {statistics.median(times):6.2f} ms   p95 {p95:6.2f} ms   ({len(times)} answers)"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    door = await answers_ms(bind_socket("127.0.0.1", 0), args.requests)
    baseline = await answers_ms(nagle_on_socket(), args.requests)
    print(row("the door (Nagle off)", door))
    print(row("baseline: protocol 0 (Nagle on)", baseline))
    print(f"the door answers {statistics.median(baseline) / statistics.median(door):.1f}x sooner (median)")


if __name__ == "__main__":
    asyncio.run(main())
