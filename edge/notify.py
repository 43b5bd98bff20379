"""systemd's notify protocol (sd_notify): READY, WATCHDOG, STATUS, STOPPING over a datagram socket."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to $NOTIFY_SOCKET; does nothing when the daemon runs without systemd."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address
        self._socket: socket.socket | None = None
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """True when a notify socket was given."""
        return self._socket is not None

    def send(self, *fields: str) -> None:
        """Send one message made of `KEY=value` lines; failures are logged, never raised."""
        if self._socket is None:
            return
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as err:
            log.warning("systemd notify failed: %s", err)

    def ready(self, status: str) -> None:
        """READY=1 with a status line."""
        self.send("READY=1", f"STATUS={status}")

    def status(self, text: str) -> None:
        """A STATUS= line a technician reads in `systemctl status`."""
        self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        """WATCHDOG=1: the event loop is alive."""
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        """STOPPING=1."""
        self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for, in seconds, or None when there is none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.05)
    except ValueError:
        return None
