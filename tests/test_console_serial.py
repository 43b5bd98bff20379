"""The console in the real daemon over a pty pair: pyserial opens the pty's slave (through a symlink that plays a USB
adapter's /dev node) as the serial port; the test types on the master with pexpect. Also the Unix socket and
`classbox console` (bridged, and offline) on a pty as standard input/output."""

from __future__ import annotations

import os
import stat
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
from pexpect import fdpexpect

from edge.system.accounts import hash_pin
from edge.system.network import addresses
from tests.helpers import REPO, DaemonProcess, http_json, wait_for
from tests.test_console import fake_programs

pytestmark = pytest.mark.slow

PIN = "2468"
PROMPT = "classbox> "


@dataclass
class Rig:
    root: Path
    daemon: DaemonProcess
    link: Path
    master: int
    term: fdpexpect.fdspawn
    slave: int | None = None

    def plug(self) -> None:
        """A new pty, the symlink pointed at its slave: the adapter is (re)plugged."""
        master, slave = os.openpty()
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)
        self.master, self.slave = master, slave  # kept open: a master with no slave open reads as EOF
        self.term = fdpexpect.fdspawn(master, timeout=20, encoding="utf-8", codec_errors="replace")

    def unplug(self) -> None:
        """The adapter is pulled: the pty is gone."""
        self.term.close()  # closes the master fd
        if self.slave is not None:
            os.close(self.slave)
            self.slave = None


def _config(root: Path, link: Path) -> Path:
    path = root / "classbox.toml"
    path.write_text(
        f'[box]\nname = "room-7"\n\n[console]\nserial_port = "{link}"\ntech_pin_hash = "{hash_pin(PIN)}"\n'
        f'network_dir = "{root}/network"\n'
    )
    return path


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("console")
    link = root / "ttyUSB-console"
    master, slave = os.openpty()
    link.symlink_to(os.ttyname(slave))  # the slave stays open: until the daemon opens it, the master would read EOF
    config = _config(root, link)
    daemon = DaemonProcess(root / "state", "--config", str(config), env=fake_programs(root / "bin", root / "calls"))
    term = fdpexpect.fdspawn(master, timeout=20, encoding="utf-8", codec_errors="replace")
    rig = Rig(root, daemon, link, master, term, slave)
    try:
        daemon.wait_healthy(30)
        yield rig
    finally:
        rig.unplug()
        daemon.terminate()


def login(term: fdpexpect.fdspawn) -> None:
    term.expect("Technician PIN: ")
    term.send(PIN + "\r")
    term.expect(PROMPT)


def run(term: fdpexpect.fdspawn, command: str) -> str:
    """Type a command; what it printed."""
    term.send(command + "\r")
    term.expect(PROMPT)
    return str(term.before)


def logout(term: fdpexpect.fdspawn) -> None:
    term.send("\x04")
    term.expect("Logged out.")


def test_banner_then_a_wrong_and_a_right_pin(rig: Rig) -> None:
    term = rig.term
    term.expect("classbox [0-9.]+ · room-7")
    term.expect("State: ")
    term.expect("Addresses: ")
    term.expect("Setup code for the first admin account: [A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}")
    term.expect("HTTPS fingerprint")
    term.expect("Technician PIN: ")
    term.send("1357\r")
    term.expect("wrong PIN")
    term.expect("Technician PIN: ")
    term.send(PIN + "\r")
    term.expect("Logged in")
    term.expect(PROMPT)
    assert PIN not in str(term.before)  # the PIN echoed as stars only
    logout(term)


def test_status_devices_and_the_live_device_test(rig: Rig) -> None:
    term = rig.term
    login(term)
    status = run(term, "status")
    assert "Lesson: none" in status
    findings = run(term, "doctor")
    assert ("[clock]" in findings) == ("[clock]" in status)  # status ends with the doctor's findings
    assert "    fix: " in findings or "Nothing wrong found." in findings
    devices = run(term, "devices")
    assert "camera" in devices
    assert "synthetic" in devices
    tested = run(term, "devices test")
    assert "frames per second" in tested
    fps = float(tested.split("Camera teacher: ")[1].split(" frames")[0])
    assert fps > 1.0  # the synthetic camera delivers (no speed asserted: any steady picture passes)
    assert "dBFS" in tested
    logout(term)


def test_logs_follow_until_ctrl_c_and_the_lesson_commands(rig: Rig) -> None:
    term = rig.term
    login(term)
    assert "classbox ready" in run(term, "logs 500")
    term.send("logs follow\r")
    term.expect("Following; Ctrl-C stops.")
    status, body = http_json(rig.daemon.url + "/api/lessons", "POST", {"title": "Console drill"})
    assert status == 201, body
    term.expect("Console drill")  # the lesson's log line arrives while following
    term.send("\x03")
    term.expect(r"\^C")
    term.expect(PROMPT)
    assert "Console drill, live since" in run(term, "lesson")
    assert "Lesson Console drill stopped." in run(term, "lesson stop")
    assert "Not done: no lesson is live" in run(term, "lesson stop")
    logout(term)


def test_sync_config_net_diag_reboot_and_garbage(rig: Rig) -> None:
    term = rig.term
    login(term)
    assert "Courseware: last pull" in run(term, "sync")
    assert "paused" in run(term, "sync pause")
    assert "paused: yes" in run(term, "sync status")
    assert "asked for" in run(term, "sync now")
    assert "resumed" in run(term, "sync resume")
    assert "Saved (version" in run(term, "config set box.room B-12")
    assert 'box.room = "B-12"' in run(term, "config get box.room")
    assert "Not done" in run(term, "config set box.language xx")
    iface = addresses()[0][0]
    assert iface in run(term, "net")
    assert "net confirm" in run(term, f"net set {iface} static 10.77.0.5/24 gateway 10.77.0.1")
    written = rig.root / "network" / f"10-classbox-{iface}.network"
    assert "Address=10.77.0.5/24" in written.read_text()
    assert "Kept the new settings" in run(term, "net confirm")
    calls = (rig.root / "calls").read_text().splitlines()
    assert calls == ["networkctl reload", f"networkctl reconfigure {iface}"]
    usb = rig.root / "usb"
    usb.mkdir()
    assert "Diagnostics written to" in run(term, f"diag {usb}")
    (bundle,) = usb.iterdir()
    assert "config.toml" in zipfile.ZipFile(bundle).namelist()
    assert "argon2" not in zipfile.ZipFile(bundle).read("config.toml").decode()
    term.send("reboot\r")
    term.expect("Type reboot to confirm: ")
    assert "Rebooting." in run(term, "reboot")
    assert (rig.root / "calls").read_text().splitlines()[-1] == "systemctl reboot"
    os.write(rig.master, bytes(range(0x80, 0xC0)) + b"\r")  # a wrong baud rate's noise
    term.expect("Unreadable bytes refused")
    term.expect(PROMPT)
    assert "Line too long" in run(term, "x" * 400)
    logout(term)


def test_the_adapter_pulled_and_plugged_again(rig: Rig) -> None:
    rig.term.expect("Technician PIN: ")
    rig.unplug()
    wait_for(lambda: "waiting for" in _console_detail(rig), 15, what="the console to notice the port is gone")
    rig.plug()
    rig.term.expect("classbox [0-9.]+ · room-7", timeout=20)
    login(rig.term)
    assert "Lesson: none" in run(rig.term, "status")
    logout(rig.term)
    health = rig.daemon.wait_healthy()
    assert health["status"] != "down"  # the rest of the daemon never noticed


def _console_detail(rig: Rig) -> str:
    _, body = http_json(rig.daemon.url + "/healthz")
    return str(body)


def test_classbox_console_bridges_to_the_running_box(rig: Rig) -> None:
    sock_path = rig.daemon.state_dir / "console.sock"
    assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600
    child = pexpect.spawn(
        sys.executable, ["-m", "edge", "console", "--config", str(rig.root / "classbox.toml")],
        cwd=REPO, env={**os.environ, "CLASSBOX_CONFIG": str(rig.root / "classbox.toml")}, timeout=20, encoding="utf-8",
    )  # fmt: skip
    try:
        child.expect("State: ")
        child.expect("Technician PIN: ")
        assert "offline" not in str(child.before)
        child.send(PIN + "\r")
        child.expect(PROMPT)
        assert "Lesson: none" in run(child, "status")  # type: ignore[arg-type]
        assert "needs it" not in run(child, "sync")  # type: ignore[arg-type]
    finally:
        child.close()


def test_classbox_console_offline_on_a_pty(tmp_path: Path) -> None:
    config = tmp_path / "classbox.toml"
    config.write_text(
        f'[box]\nname = "room-9"\nstate_dir = "{tmp_path}/state"\n\n[web]\nhttps_port = 0\n\n'
        f'[console]\ntech_pin_hash = "{hash_pin(PIN)}"\n'
    )
    env = {**os.environ, **fake_programs(tmp_path / "bin", tmp_path / "calls")}
    child = pexpect.spawn(
        sys.executable, ["-m", "edge", "console", "--config", str(config)], cwd=REPO, env=env, timeout=20,
        encoding="utf-8",
    )  # fmt: skip
    try:
        child.expect("box software not running \\(offline console\\)")
        login(child)  # type: ignore[arg-type]
        assert "Lesson: none" in run(child, "status")  # type: ignore[arg-type]
        assert "needs it" in run(child, "lesson")  # type: ignore[arg-type]
        assert 'box.name = "room-9"' in run(child, "config get box.name")  # type: ignore[arg-type]
        child.send("restart\r")
        child.expect("Starting the box software.")
        child.expect(pexpect.EOF)  # the offline console ends; systemd starts it again, bridged to the daemon
        assert (tmp_path / "calls").read_text() == "systemctl restart classbox.service\n"
    finally:
        child.close()
    assert child.exitstatus == 0
