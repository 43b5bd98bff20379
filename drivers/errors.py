"""The drivers' exception hierarchy; foreign errors (OpenCV, PortAudio, OS) are translated here."""

from __future__ import annotations


class DriverError(Exception):
    """Base of every error a driver raises on purpose."""


class DeviceSpecError(DriverError, ValueError):
    """A device spec (index, path, URL, name) has the wrong form; the message says what is expected."""


class DeviceUnavailable(DriverError):
    """A device could not be opened or stopped answering; the driver retries it with backoff."""


class DeviceEnded(DriverError):
    """A finite source (a file played once) has no more frames; the driver does not retry it."""
