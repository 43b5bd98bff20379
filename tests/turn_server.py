"""A real coturn TURN server on loopback (long-term credentials), for viewers sent through a relay."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import free_port, stop_process

USER, PASSWORD, REALM = "classbox", "turn-secret", "classbox.test"


class TurnServer:
    """`turnserver` on 127.0.0.1 with one user, or TURN REST API credentials given `auth_secret`; relays on loopback."""

    def __init__(self, workdir: Path, auth_secret: str | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()
        self.log = workdir / "turn.log"
        relay = 49152 + self.port % 8000
        argv = [
            "turnserver",
            "-n",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--simple-log",
            "--verbose",
            "--allow-loopback-peers",
        ]
        argv += ["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={self.port}"]
        argv += [f"--min-port={relay}", f"--max-port={relay + 200}", "--lt-cred-mech", f"--realm={REALM}"]
        if auth_secret is None:
            argv += [f"--user={USER}:{PASSWORD}"]
        else:  # usernames "<unix-expiry>:<anything>", credential base64(hmac-sha1(secret, username))
            argv += ["--use-auth-secret", f"--static-auth-secret={auth_secret}"]
        argv += [f"--userdb={workdir / 'turn.db'}", f"--pidfile={workdir / 'turn.pid'}"]
        argv += [f"--log-file={self.log}"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self._wait_up()

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}"

    def _wait_up(self) -> None:
        """Up once it answers a STUN binding request on its port."""
        request = bytes.fromhex("000100002112a442") + b"classbox-t01"
        deadline = time.monotonic() + 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"turnserver exited with {self.proc.returncode}")
                sock.sendto(request, ("127.0.0.1", self.port))
                try:
                    if sock.recv(2048)[:2] == b"\x01\x01":  # a binding success response
                        return
                except TimeoutError:
                    continue
        self.close()
        raise RuntimeError("turnserver did not answer within 10 s")

    def allocations(self) -> int:
        """How many relay allocations the server's log shows were made."""
        return sum("ALLOCATE processed, success" in line for line in self.log.read_text(errors="replace").splitlines())

    def close(self) -> None:
        stop_process(self.proc)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now (TCP too: coturn listens on both)."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
