"""Logging: readable on a terminal, journald priorities under systemd, secrets always masked."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections import deque
from typing import Any, TextIO

_SECRET_PATTERNS = [
    re.compile(r"(?i)\b(pin|password|passwd|token|secret|credential|authorization)(\"?\s*[=:]\s*\"?)([^\s\",;&]+)"),
    re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]+)"),
    re.compile(r"\$argon2[a-z]*\$[^\s\"']+"),
]
# scheme://user:password@host: the whole user-info goes (up to the authority's last '@').
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]*(?:@[^\s/?#@]*)*@")
_JOURNAL_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def redact(text: str) -> str:
    """Mask anything that looks like a credential in `text` (URL user-info included)."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}***@", text)
    text = _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}***", text)
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    return _SECRET_PATTERNS[2].sub("$argon2***", text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose output never carries a credential."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JournalFormatter(RedactingFormatter):
    """Prefixes `<priority>` so journald files each line at its level (sd-daemon(3))."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _JOURNAL_PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def _stream_is_journal(stream: TextIO) -> bool:
    journal = os.environ.get("JOURNAL_STREAM", "")
    if not journal:
        return False
    try:
        stat = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return journal == f"{stat.st_dev}:{stat.st_ino}"


def setup_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Configure the root logger once for the process."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter
    if _stream_is_journal(stream):
        formatter = JournalFormatter("%(name)s: %(message)s")
    else:
        formatter = RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aioice", "aiortc", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class LogRing(logging.Handler):
    """The last `size` log records, redacted, for the admin page's log tail and the diagnostics bundle."""

    def __init__(self, size: int = 2000) -> None:
        super().__init__()
        self.size = size
        self._lines: deque[dict[str, Any]] = deque(maxlen=size)
        self._formatter = RedactingFormatter("%(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self._formatter.format(record)
        except Exception:  # a bad format string must not take logging down
            self.handleError(record)
            return
        self._lines.append(
            {"at": record.created, "level": record.levelname.lower(), "name": record.name, "message": message}
        )

    def tail(self, limit: int = 200, level: str = "", contains: str = "") -> list[dict[str, Any]]:
        """The newest `limit` records at `level` or above whose logger or message contains `contains`, oldest first."""
        floor = logging.getLevelName(level.upper()) if level else 0
        needle = contains.casefold()
        found = [
            line
            for line in list(self._lines)
            if logging.getLevelName(line["level"].upper()) >= floor
            and (not needle or needle in line["message"].casefold() or needle in line["name"].casefold())
        ]
        return found[-limit:] if limit > 0 else []
