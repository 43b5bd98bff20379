"""Settings: the config read, validated and saved (the file before the last save kept for rollback).

What the admin page and the console's `config get|set` call; the schema, its validation and the
atomic writes are edge/config.py's, this only puts them behind the service layer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.config import BoxConfig, load_config, parse_config, rollback_config, save_config
from edge.errors import ConfigError
from sync.atomic import previous_path

NO_FILE = "this box runs without a config file: there is nowhere to save settings"


class Settings:
    """The config the box runs on and the file it is read from and saved to (None: a demo, nothing to save).

    Saving writes the file; applying a change to the running box is for the component it concerns.
    """

    def __init__(self, config: Callable[[], BoxConfig], path: Path | None = None) -> None:
        self._config = config
        self.path = path

    @property
    def config(self) -> BoxConfig:
        """The config the box runs on now."""
        return self._config()

    def get(self, key: str) -> Any:
        """One setting by its dotted name (`web.port`, `cameras.0.device`); KeyError for an unknown name."""
        value: Any = self.config.model_dump(mode="json")
        for part in key.split("."):
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            elif isinstance(value, dict) and part in value:
                value = value[part]
            else:
                raise KeyError(f"no setting named {key!r}")
        return value

    def check(self, data: dict[str, Any]) -> BoxConfig:
        """Validate a whole config (as read from TOML or a form); ConfigError with one line per problem."""
        return parse_config(data, "settings")

    def with_changes(self, changes: dict[str, Any]) -> BoxConfig:
        """The current config with `changes` (section -> fields) applied, validated; nothing is saved."""
        data = self.config.model_dump(mode="json")
        for section, fields in changes.items():
            current = data.get(section)
            data[section] = {**current, **fields} if isinstance(current, dict) and isinstance(fields, dict) else fields
        return self.check(data)

    def save(self, config: BoxConfig) -> None:
        """Write `config` atomically to the config file (the one it replaces kept for rollback)."""
        save_config(config, self._file())

    def previous(self) -> BoxConfig | None:
        """The config saved before the last save, if there is one."""
        previous = previous_path(self._file())
        return load_config(previous) if previous.exists() else None

    def rollback(self) -> BoxConfig:
        """Bring back the config file saved before the last save, and return it."""
        return rollback_config(self._file())

    def _file(self) -> Path:
        if self.path is None:
            raise ConfigError("settings", [NO_FILE])
        return self.path
