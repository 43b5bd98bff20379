"""The service layer's settings: read by dotted name, validated before saving, saved atomically, rolled back."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.box import Box
from edge.core.config import BoxConfig, load_config, save_config
from edge.core.errors import ConfigError
from edge.core.events import EventBus


def box_with_file(tmp_path: Path, port: int = 8090) -> Box:
    config = BoxConfig()
    config.box.state_dir = tmp_path / "state"
    config.web.port = port
    path = tmp_path / "classbox.toml"
    save_config(config, path)
    return Box(config, EventBus(), path)


def test_a_setting_is_read_by_its_dotted_name(tmp_path: Path) -> None:
    settings = box_with_file(tmp_path).settings
    assert settings.get("web.port") == 8090
    assert settings.get("cameras.0.source") == "synthetic"
    with pytest.raises(KeyError, match="no setting named 'web.nope'"):
        settings.get("web.nope")
    with pytest.raises(KeyError):
        settings.get("cameras.9.source")


def test_a_bad_change_is_refused_naming_its_field_and_nothing_is_written(tmp_path: Path) -> None:
    box = box_with_file(tmp_path)
    before = (tmp_path / "classbox.toml").read_bytes()
    with pytest.raises(ConfigError) as refused:
        box.settings.with_changes({"web": {"port": 70000}})
    assert any(line.startswith("web.port") for line in refused.value.problems)
    assert (tmp_path / "classbox.toml").read_bytes() == before
    assert box.config.web.port == 8090


def test_a_saved_change_survives_a_reload_and_rolls_back(tmp_path: Path) -> None:
    box = box_with_file(tmp_path)
    changed = box.settings.with_changes({"box": {"name": "Room 12"}, "web": {"port": 8091}})
    box.settings.save(changed)
    saved = load_config(tmp_path / "classbox.toml")
    assert (saved.box.name, saved.web.port) == ("Room 12", 8091)
    assert box.settings.previous() is not None
    assert box.settings.previous().web.port == 8090  # type: ignore[union-attr]
    restored = box.settings.rollback()
    assert restored.web.port == 8090
    assert load_config(tmp_path / "classbox.toml").web.port == 8090


def test_without_a_config_file_there_is_nowhere_to_save(tmp_path: Path) -> None:
    config = BoxConfig()
    config.box.state_dir = tmp_path / "state"
    box = Box(config, EventBus())
    with pytest.raises(ConfigError, match="nowhere to save"):
        box.settings.save(config)
    assert list(tmp_path.iterdir()) == []
