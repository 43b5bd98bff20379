"""The box's systemd units as systemd reads them: hardening measured, syntax verified, users made, first boot.

The booted image is tested separately (tests/image/, `./bootstrap image-test`); these run in seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edge.core.config import load_config
from edge.firstboot import first_boot
from edge.system.certificate import load_certificate

UNITS = Path(__file__).resolve().parent.parent / "systemd"
DAEMON_EXPOSURE_MAX = 2.5
# What the units run, made as stand-ins in a scratch root: verify checks they exist and are executable.
EXECUTABLES = (
    "opt/classbox/.venv/bin/classbox",
    "usr/bin/cage",
    "usr/bin/chromium",
    "usr/bin/touch",
    "usr/bin/networkctl",
)


def unit_files() -> list[Path]:
    return sorted(p for p in UNITS.iterdir() if p.suffix in (".service", ".path"))


def exposure(unit: Path) -> float:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(rf"Overall exposure level for {re.escape(unit.name)}: ([0-9.]+)", out)
    assert found, out
    return float(found.group(1))


def test_daemon_unit_exposure_is_at_most_2_5() -> None:
    figure = exposure(UNITS / "classbox.service")
    print(f"classbox.service exposure {figure}")
    assert figure <= DAEMON_EXPOSURE_MAX


def test_daemon_unit_is_notify_with_watchdog_restart_limit_and_directories() -> None:
    text = (UNITS / "classbox.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=30",
        "Restart=always",
        "StartLimitBurst=5",
        "StateDirectory=classbox",
        "ConfigurationDirectory=classbox",
        "LogsDirectory=classbox",
        "User=classbox",
        "SupplementaryGroups=video audio dialout input",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.MULTILINE), line


def test_units_verify_clean(tmp_path: Path) -> None:
    """`systemd-analyze verify` in a scratch root holding systemd's own units and ours: no word to say."""
    shutil.copytree("/usr/lib/systemd/system", tmp_path / "usr/lib/systemd/system", symlinks=True)
    target = tmp_path / "etc/systemd/system"
    target.mkdir(parents=True)
    for unit in unit_files():
        shutil.copy(unit, target / unit.name)
    for name in EXECUTABLES:
        stand_in = tmp_path / name
        stand_in.parent.mkdir(parents=True, exist_ok=True)
        stand_in.write_text("#!/bin/sh\n")
        stand_in.chmod(0o755)
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", *(f"/etc/systemd/system/{u.name}" for u in unit_files())],
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_sysusers_make_the_daemon_user_with_its_device_groups(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("passwd", "group"):
        shutil.copy(f"/etc/{name}", etc / name)
    groups = (etc / "group").read_text()
    for needed in ("video", "audio", "dialout", "input", "render"):
        if not re.search(rf"^{needed}:", groups, re.MULTILINE):
            groups += f"{needed}:x:{900 + len(groups) % 50}:\n"
    (etc / "group").write_text(groups)
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(UNITS / "classbox.sysusers")], check=True)
    members = {line.split(":")[0]: line.split(":")[3].split(",") for line in (etc / "group").read_text().splitlines()}
    for group in ("video", "audio", "dialout", "input"):
        assert "classbox" in members[group], group
    assert "classbox-kiosk" in members["video"]
    passwd = {line.split(":")[0]: line.split(":") for line in (etc / "passwd").read_text().splitlines()}
    assert passwd["classbox"][6] == "/usr/sbin/nologin"


@pytest.mark.parametrize("config_exists", [False, True])
def test_first_boot_gives_id_certificate_and_setup_code_once(tmp_path: Path, config_exists: bool) -> None:
    path, state = tmp_path / "classbox.toml", tmp_path / "state"
    if config_exists:
        path.write_text('[box]\nname = "Room 12"\n')
    done = first_boot(path, state)
    assert done.config_written
    assert re.fullmatch(r"box-[0-9a-zA-Z_-]+", done.box_id)
    assert load_config(path).box.id == done.box_id
    assert load_config(path).box.name == ("Room 12" if config_exists else "Classroom")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    certificate = load_certificate(state)
    assert certificate is not None
    assert done.fingerprint == certificate.fingerprint
    assert done.setup_code_file == state / "admin-setup-code"
    assert stat.S_IMODE(done.setup_code_file.stat().st_mode) == 0o600
    code = done.setup_code_file.read_text()

    again = first_boot(path, state)
    assert (again.box_id, again.fingerprint, again.config_written) == (done.box_id, done.fingerprint, False)
    assert done.setup_code_file.read_text() == code


def test_first_boot_command_never_prints_the_setup_code(tmp_path: Path) -> None:
    path, state = tmp_path / "classbox.toml", tmp_path / "state"
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "first-boot", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "STATE_DIRECTORY": str(state)},
        check=True,
    )
    code = (state / "admin-setup-code").read_text().strip()
    assert code not in result.stdout + result.stderr
    assert "admin setup code in" in result.stdout
    assert load_config(path).box.state_dir == state
