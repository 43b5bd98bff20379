"""The official tus server (@tus/server + @tus/file-store) on loopback, for upload tests.

`tests/servers/tus/server.mjs` stores uploads in a directory, checks each finished file against
its `sha256` metadata (460 when it differs) and logs every request as a JSON line, so tests can
count the bytes a client really sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

SERVER_DIR = Path(__file__).parent / "servers" / "tus"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TusServer:
    """One server process; `stop()` then `start()` brings it back on the same port and directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / "uploads"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "requests.jsonl"
        self.log_path.touch()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/files"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self._process = subprocess.Popen(
            ["node", str(SERVER_DIR / "server.mjs"), str(self.port), str(self.directory), str(self.log_path)],
            cwd=SERVER_DIR,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tus server exited with {self._process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("tus server did not answer within 15 s")

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def requests(self) -> list[dict[str, Any]]:
        """Every request (and finish check) the server logged so far."""
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def patched_bytes(self, since: int = 0) -> int:
        """Bytes the server received in PATCH bodies, counting log lines from `since`."""
        return sum(r["length"] for r in self.requests()[since:] if r.get("method") == "PATCH")

    def uploads(self) -> list[Path]:
        """The stored upload files (not their .json info)."""
        return sorted(p for p in self.directory.iterdir() if p.suffix != ".json")

    def info(self, upload: Path) -> dict[str, Any]:
        """The server's record of an upload (size, offset, metadata)."""
        data: dict[str, Any] = json.loads(upload.with_name(upload.name + ".json").read_text())
        return data


def sha256_of(path: Path) -> str:
    """The sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def require_tus_server() -> None:
    """Fail with a clear message when the test server's npm packages are missing (./bootstrap test installs them)."""
    if shutil.which("node") is None or not (SERVER_DIR / "node_modules" / "@tus" / "server").is_dir():
        pytest.fail(f"the tus test server is not installed: run `npm ci` in {SERVER_DIR} (./bootstrap test does)")
