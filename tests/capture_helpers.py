"""Test stand-ins for capture devices: a generated clip and a real RTSP camera on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port

SERVERS = Path(__file__).parent / "servers"


def make_clip(folder: Path, seconds: int = 1) -> Path:
    """A small 320x240 15 fps H.264 clip with a keyframe every second."""
    path = folder / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


class RtspCamera:
    """tests/servers/rtsp_camera.py as a process group: `kill()` unplugs it, `start()` plugs it back."""

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Serve the clip (returns once the server listens)."""
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVERS / "rtsp_camera.py"), str(self.clip), str(self.port)],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        assert b"ready" in self.proc.stdout.readline()

    def kill(self) -> None:
        """SIGKILL the server and its ffmpeg (idempotent)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
