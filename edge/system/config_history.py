"""Numbered versions of the config file, kept beside it for the admin page's history and rollback.

Each save from the service layer is kept as `<config>.history/NNNNNN.toml` (mode 0600, as the file:
versions hold secrets), its first line a comment with when, by whom, what changed and why; the
newest HISTORY_KEPT are kept.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from edge.core.config import BoxConfig, dump_config, load_config
from sync.atomic import write_atomic

HISTORY_KEPT = 20
VERSION_RE = re.compile(r"^(\d{6})\.toml$")


class ConfigHistory:
    """Numbered versions of the config file beside it (`<config>.history/NNNNNN.toml`), newest kept."""

    def __init__(self, config_path: Path, kept: int = HISTORY_KEPT) -> None:
        self.dir = config_path.with_name(config_path.name + ".history")
        self._kept = kept

    def versions(self) -> list[dict[str, Any]]:
        """Every version kept, newest first: number, when, by whom, what changed."""
        found = []
        for path in self._files():
            header = self._header(path)
            found.append({"version": int(VERSION_RE.match(path.name).group(1)), **header})  # type: ignore[union-attr]
        return sorted(found, key=lambda v: v["version"], reverse=True)

    def record(self, config: BoxConfig, by: str, changed: list[str], note: str = "") -> int:
        """Keep `config` as the next version; returns its number. `note` is `kind:subject` (settings:streaming,
        pin:teacher, rollback:3, file: for the file as it was before the first change)."""
        numbers = [int(VERSION_RE.match(p.name).group(1)) for p in self._files()]  # type: ignore[union-attr]
        number = max(numbers, default=0) + 1
        header = {"at": time.time(), "by": by, "changed": changed, "note": note}
        text = f"# classbox config version {number}: {json.dumps(header)}\n" + dump_config(config)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.dir / f"{number:06d}.toml", text.encode(), mode=0o600)
        for old in sorted(self._files())[: -self._kept]:
            old.unlink(missing_ok=True)
        return number

    def load(self, number: int) -> BoxConfig:
        """Version `number` (raise KeyError when it is not kept)."""
        path = self.dir / f"{number:06d}.toml"
        if not path.is_file():
            raise KeyError(number)
        return load_config(path)

    def _files(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return [p for p in self.dir.iterdir() if VERSION_RE.match(p.name)]

    @staticmethod
    def _header(path: Path) -> dict[str, Any]:
        try:
            with path.open(encoding="utf-8") as file:
                first = file.readline()
            header: dict[str, Any] = json.loads(first.split(": ", 1)[1])
        except (OSError, IndexError, ValueError):
            return {"at": None, "by": "", "changed": [], "note": ""}
        return header
