"""Maintenance: the diagnostics bundle for support (config without secrets, health, recent logs, versions)."""

from __future__ import annotations

import io
import json
import logging
import platform
import shutil
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import tomli_w

from edge import __version__
from edge.core.config import BoxConfig, save_config
from edge.system.settings import masked

log = logging.getLogger(__name__)

# What a factory reset keeps: how this box sits in its OS (paths, ports, programs), never a secret.
KEPT_ON_RESET = {
    "box": ("state_dir",),
    "console": ("serial_port", "baudrate", "socket_path", "network_dir"),
}
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


def reset_config(config: BoxConfig) -> BoxConfig:
    """The built-in defaults, with the settings that tie the box to its OS kept (no secret is kept)."""
    fresh = BoxConfig()
    for section, names in KEPT_ON_RESET.items():
        for name in names:
            setattr(getattr(fresh, section), name, getattr(getattr(config, section), name))
    return fresh


def factory_reset(config: BoxConfig, config_path: Path | None) -> None:
    """Delete everything in the state folder and write the config back to its defaults (its history goes too)."""
    state = config.box.state_dir.resolve()
    if state == Path(state.anchor) or state == Path.home():
        raise ValueError(f"refusing to empty {state}: box.state_dir must be the box's own folder")
    for child in state.iterdir() if state.is_dir() else ():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if config_path is not None:
        save_config(reset_config(config), config_path)
        for old in config_path.parent.glob(config_path.name + ".*"):  # `.prev` (secrets) and the numbered history
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    log.warning("factory reset: state folder %s emptied, config back to its defaults", state)
