"""Maintenance: the diagnostics bundle for support (config without secrets, health, recent logs, versions)."""

from __future__ import annotations

import io
import json
import platform
import sys
import time
import zipfile
from importlib import metadata
from typing import Any

import tomli_w

from edge import __version__
from edge.config import BoxConfig
from edge.service.settings import masked

SECRET_SHOWN = "(secret, not shown)"
VERSIONS_OF = (
    "fastapi",
    "uvicorn",
    "pydantic",
    "aiortc",
    "av",
    "opencv-python-headless",
    "PyAudio",
    "tuf",
    "sqlite-utils",
)


def redacted_config(config: BoxConfig) -> str:
    """The config as TOML, every secret replaced by a note."""
    return tomli_w.dumps(masked(config.model_dump(mode="json"), SECRET_SHOWN))


def diagnostics(
    config: BoxConfig, health: dict[str, Any], log_lines: list[dict[str, Any]], history: list[dict[str, Any]]
) -> bytes:
    """A zip for the vendor's support: config without secrets, health, recent logs, versions, config history."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("config.toml", redacted_config(config))
        bundle.writestr("health.json", json.dumps(health, indent=2, default=str))
        bundle.writestr("logs.txt", "".join(_log_line(line) for line in log_lines))
        bundle.writestr("versions.json", json.dumps(versions(), indent=2))
        bundle.writestr("config-history.json", json.dumps(history, indent=2))
    return buffer.getvalue()


def _log_line(line: dict[str, Any]) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(line["at"]))
    return f"{stamp} {line['level'].upper():7} {line['name']}: {line['message']}\n"


def versions() -> dict[str, str]:
    """The versions a support engineer asks for first."""
    found = {"classbox": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for name in VERSIONS_OF:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
