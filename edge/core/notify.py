"""systemd's notify protocol (sd_notify): READY, WATCHDOG, STATUS, STOPPING over a datagram socket."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to $NOTIFY_SOCKET; does nothing when the daemon runs without systemd.

    Sends never block the event loop: a message that cannot go at once (nobody reads the socket,
    its queue is full, systemd is gone) is dropped and counted in `dropped`, and logged once per kind.
    """

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address
        self._socket: socket.socket | None = None
        self._logged: set[int | None] = set()
        self.dropped = 0
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)

    @property
    def enabled(self) -> bool:
        """True when a notify socket was given."""
        return self._socket is not None

    def send(self, *fields: str) -> bool:
        """Send one message made of `KEY=value` lines; False when it was dropped (never raises, never blocks)."""
        if self._socket is None:
            return True
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as err:
            self._drop(err)
            return False
        return True

    def _drop(self, err: OSError) -> None:
        self.dropped += 1
        if err.errno in self._logged:
            return
        self._logged.add(err.errno)
        reason = "its queue is full: nobody reads it" if isinstance(err, BlockingIOError) else err.strerror
        log.warning("systemd notify socket: %s; dropping what cannot be sent (count: daemon.notify_dropped)", reason)

    def ready(self, status: str) -> bool:
        """READY=1 with a status line; False when dropped."""
        return self.send("READY=1", f"STATUS={status}")

    def status(self, text: str) -> bool:
        """A STATUS= line a technician reads in `systemctl status`; False when dropped."""
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: the event loop is alive; False when dropped."""
        return self.send("WATCHDOG=1")

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
