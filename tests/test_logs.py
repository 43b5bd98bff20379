"""Logging: secrets masked everywhere; journald gets priorities when stderr is the journal stream."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from edge.core.logs import redact, setup_logging


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("teacher pin=2468 accepted", "2468"),
        ('upload {"token": "s3cr3t-xyz"}', "s3cr3t-xyz"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("hash $argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", "c2FsdA"),
        ("turn credential=hunter2", "hunter2"),
    ],
)
def test_secrets_are_masked(line: str, secret: str) -> None:
    assert secret not in redact(line)


def test_terminal_format_is_redacted() -> None:
    stream = io.StringIO()
    setup_logging("info", stream)
    logging.getLogger("t").info("password=letmein for %s", "admin")
    assert "letmein" not in stream.getvalue()
    assert "admin" in stream.getvalue()


def test_journald_gets_priority_prefixes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "journal"
    with path.open("w") as stream:
        stat = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        setup_logging("info", stream)
        logging.getLogger("edge.test").warning("camera offline")
        logging.getLogger("edge.test").error("disk full")
    lines = path.read_text().splitlines()
    assert lines == ["<4>edge.test: camera offline", "<3>edge.test: disk full"]
    logging.getLogger().handlers.clear()
