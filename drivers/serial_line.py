"""A serial line (8N1) read by a thread this driver owns: bytes go to a callback, b"" when the line is gone.

pyserial blocks, so reading runs in its own thread with a short time-out (the stop event is checked
between reads); writing blocks too, at most `write_timeout_s`, and is for the caller to run in a thread.
A port that disappears (USB adapter unplugged, pty closed) ends the reader with one b"" to the callback.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import serial

READ_TIMEOUT_S = 0.2
WRITE_TIMEOUT_S = 2.0
READ_MAX = 4096


class SerialLineError(OSError):
    """The port cannot be opened, or went away while writing."""


class SerialLine:
    """One open serial port and its reader thread."""

    def __init__(self, port: str, baudrate: int, on_data: Callable[[bytes], None]) -> None:
        self.port = port
        self._on_data = on_data
        self._stop = threading.Event()
        try:
            self._serial = serial.Serial(
                port, baudrate, bytesize=8, parity="N", stopbits=1, timeout=READ_TIMEOUT_S,
                write_timeout=WRITE_TIMEOUT_S, exclusive=True,
            )  # fmt: skip
        except (serial.SerialException, OSError, ValueError) as err:
            raise SerialLineError(f"cannot open {port}: {err}") from err
        self._thread = threading.Thread(target=self._read, name=f"serial:{port}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._serial.read(max(1, min(self._serial.in_waiting, READ_MAX)))
                if data:
                    self._on_data(data)
        except (serial.SerialException, OSError, TypeError):
            pass  # the port went away (TypeError: pyserial reading a closed fd)
        finally:
            if not self._stop.is_set():
                self._on_data(b"")

    def write(self, data: bytes) -> None:
        """Send `data` (blocking, bounded by the write time-out); SerialLineError when the port is gone."""
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as err:
            raise SerialLineError(f"{self.port}: {err}") from err

    def close(self) -> None:
        """Stop the reader and close the port (idempotent; blocks up to one read time-out)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(READ_TIMEOUT_S * 5)
        with contextlib.suppress(serial.SerialException, OSError):
            self._serial.close()
