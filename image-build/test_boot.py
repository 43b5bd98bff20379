"""The box's OS image, built and booted under qemu (TCG), checked from the host as a technician would.

Run by `./bootstrap image-test` (its own CI step after the main suite; never part of `pytest`'s
default run). The image is the product's, plus a root shell on ttyS1 for looking inside
(`--test-shell`); students' and teachers' doors are reached through qemu's hostfwd, the technician
console on ttyS0 through qemu's serial socket. Each stage prints how long it took.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pexpect import fdpexpect

from edge.core.config import BoxConfig, VideoLayerConfig, dump_config
from edge.system.accounts import hash_pin

HERE = Path(__file__).resolve().parent
PIN = "2468"
TECH_PIN = "135790"
BOOT_S = 600.0  # TCG on a shared 2-core machine: the kernel, systemd and the daemon's first imports
TIMINGS: dict[str, float] = {}
pytestmark = pytest.mark.timeout(1500)  # the first test builds the image (uncached: ~10 min here)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def timed(stage: str) -> Iterator[None]:
    start = time.monotonic()
    yield
    TIMINGS[stage] = time.monotonic() - start
    print(f"image test: {stage}: {TIMINGS[stage]:.1f} s")


def seed_config(path: Path) -> Path:
    """A small box for an emulated CPU: a 320x180 camera, one-second segments, the teacher PIN."""
    config = BoxConfig()
    camera = config.cameras[0]
    camera.width, camera.height, camera.fps = 320, 180, 10
    config.stream.high = VideoLayerConfig(width=320, height=180, fps=10, kbps=250)
    config.stream.low = VideoLayerConfig(width=160, height=120, fps=5, kbps=80)
    config.stream.lowest.enabled = False
    config.stream.keyframe_interval_s = 1.0
    config.recording.segment_seconds = 1.0
    config.web.teacher_pin_hash = hash_pin(PIN)
    config.console.serial_port = ""
    config.console.tech_pin_hash = hash_pin(TECH_PIN)
    path.write_text(dump_config(config))
    return path


class Serial:
    """One of qemu's serial ports (a unix socket), read and written through pexpect."""

    def __init__(self, path: Path, timeout: float = 60.0) -> None:
        wait_for(path.exists, 30, f"qemu's socket {path.name}", 0.1)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.child = fdpexpect.fdspawn(self.sock.fileno(), encoding="utf-8", codec_errors="replace", timeout=timeout)
        self._count = 0

    def run(self, command: str, timeout: float = 60.0) -> str:
        """Run a shell command on the test shell (ttyS1); its output (the markers keep the echo out)."""
        self._count += 1
        n = self._count
        self.child.sendline(f"echo __B$((0+{n}))__; {command}; echo __E$((0+{n}))__")
        self.child.expect(f"__B{n}__", timeout=timeout)
        self.child.expect(f"__E{n}__", timeout=timeout)
        return str(self.child.before).replace("\r", "").strip()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Box:
    """A booted image: qemu, its HTTP port on the host, its serial ports."""

    disk: Path
    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def boot(self) -> None:
        for name in ("ttyS0.sock", "ttyS1.sock"):
            (self.directory / name).unlink(missing_ok=True)
        command = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "Nehalem", "-m", "1536", "-smp", "2",
            "-nodefaults", "-display", "none", "-no-reboot",
            "-drive", f"file={self.disk},format=qcow2,if=virtio",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.port}-:8080",
            "-device", "virtio-net-pci,netdev=n0",
            "-chardev", f"socket,id=s0,path={self.directory / 'ttyS0.sock'},server=on,wait=off,"
            f"logfile={self.directory / 'ttyS0.log'},logappend=on",
            "-serial", "chardev:s0",
            "-chardev", f"socket,id=s1,path={self.directory / 'ttyS1.sock'},server=on,wait=off",
            "-serial", "chardev:s1",
        ]  # fmt: skip
        with (self.directory / "qemu.log").open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def power_cut(self) -> None:
        """SIGKILL qemu: the box loses power, whatever it had not written is gone."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def http(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"X-Panel-Pin": PIN, "Content-Type": "application/json"}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    def healthy(self) -> dict[str, Any] | None:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"qemu exited:\n{self.console_log()[-3000:]}")
        try:
            status, body = self.http("/healthz")
        except OSError:
            return None
        return body if status == 200 else None

    def console_log(self) -> str:
        path = self.directory / "ttyS0.log"
        return path.read_text(errors="replace") if path.exists() else ""


def build_image(out: Path, config: Path) -> None:
    command = [str(HERE / "build"), "--out", str(out), "--config", str(config), "--data-mb", "512", "--test-shell"]
    subprocess.run(command, check=True)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    if not shutil.which("qemu-system-x86_64"):
        pytest.fail("qemu-system-x86_64 is missing: ./bootstrap image-test installs it")
    directory = tmp_path_factory.mktemp("image")
    image = directory / "classbox.img"
    prebuilt = os.environ.get("CLASSBOX_TEST_IMAGE")  # an image built by hand with build_image()'s options
    if prebuilt:
        image = Path(prebuilt)
    else:
        with timed("build the image (cached base and virtualenv reused)"):
            build_image(image, seed_config(directory / "classbox.toml"))
    disk = directory / "disk.qcow2"  # the box's disk: the image below, every write of every boot above it
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F", "raw", str(disk)], check=True)
    machine = Box(disk, directory)
    try:
        yield machine
    finally:
        machine.power_cut()
        print("image test timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items()))


@pytest.fixture(scope="module")
def shell(box: Box) -> Iterator[Serial]:
    with timed("boot to /healthz answering"):
        box.boot()
        wait_for(lambda: answering(box), BOOT_S, "/healthz through hostfwd", 2.0)
    serial = Serial(box.directory / "ttyS1.sock")
    yield serial
    serial.close()


def answering(box: Box) -> dict[str, Any] | None:
    """/healthz once every component has started (ok, or degraded: a box with synthetic devices may be)."""
    health = box.healthy()
    return health if health and health["status"] in ("ok", "degraded") else None


def systemd_state(shell: Serial, unit: str) -> dict[str, str]:
    out = shell.run(f"systemctl show -p ActiveState,SubState,MainPID,NRestarts,StatusText {unit}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_the_daemon_reaches_ready_on_a_read_only_root(box: Box, shell: Serial) -> None:
    health = box.healthy()
    assert health is not None
    assert health["status"] in ("ok", "degraded"), health
    daemon = systemd_state(shell, "classbox.service")
    assert (daemon["ActiveState"], daemon["SubState"]) == ("active", "running"), daemon  # READY=1 arrived
    with timed("boot to no job left"):
        state = shell.run("systemctl is-system-running --wait", timeout=BOOT_S)
    assert state == "running", shell.run("systemctl --failed --no-legend")
    assert shell.run("findmnt -no OPTIONS /").startswith("ro"), "the root file system is read-only"
    assert shell.run("touch /usr/x 2>&1 || echo refused").endswith("refused")
    assert shell.run("findmnt -no SOURCE,FSTYPE /var") == "/dev/disk/by-label/classbox-data ext4"
    assert shell.run("findmnt -no TARGET /etc/classbox"), "the config folder is the data partition's"
    assert shell.run("findmnt -no TARGET /etc/systemd/network"), "network settings are writable"
    assert shell.run("systemctl is-enabled ssh.service 2>&1") == "disabled"
    assert shell.run("systemctl is-active ssh.service 2>&1") == "inactive"
    assert shell.run("ls /var/log/journal | wc -l") == "1", "journald keeps its files on the data partition"
    first = shell.run(
        "cat /var/lib/classbox/first-boot.done >/dev/null && grep -c '^id = \"box-' /etc/classbox/classbox.toml"
    )
    assert first == "1", "the first-boot unit wrote the box id"
    assert shell.run("stat -c %a /var/lib/classbox/admin-setup-code") == "600"
    assert shell.run("systemctl is-active classbox-kiosk.service") == "inactive"  # no display: condition unmet


def test_the_technician_console_answers_on_ttys0(box: Box, shell: Serial) -> None:
    assert shell.run("systemctl is-enabled classbox-console.service 2>&1") == "enabled"
    assert shell.run("systemctl is-enabled serial-getty@ttyS0.service 2>&1") == "masked"
    console = Serial(box.directory / "ttyS0.sock", timeout=120)
    try:
        with timed("console: PIN, status, prompt on ttyS0"):
            console.child.sendline("")
            console.child.expect("Technician PIN: ")
            console.child.sendline(TECH_PIN)
            console.child.expect("classbox> ")
            console.child.sendline("status")
            console.child.expect("classbox> ")
        assert "Classroom" in box.console_log(), "the banner names the box"
    finally:
        console.close()


def test_a_killed_daemon_is_restarted_by_systemd(box: Box, shell: Serial) -> None:
    before = systemd_state(shell, "classbox.service")
    with timed("SIGKILL to /healthz answering again"):
        shell.run(f"kill -9 {before['MainPID']}")
        wait_for(
            lambda: systemd_state(shell, "classbox.service")["MainPID"] not in ("0", before["MainPID"]),
            120,
            "a new main PID",
        )
        wait_for(lambda: systemd_state(shell, "classbox.service")["ActiveState"] == "active", BOOT_S, "active again")
        wait_for(lambda: answering(box), BOOT_S, "/healthz again", 1.0)
    after = systemd_state(shell, "classbox.service")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1, (before, after)


def test_a_power_cut_mid_lesson_boots_clean_with_the_recording_recovered(box: Box, shell: Serial) -> None:
    status, body = box.http("/api/lessons", "POST", {"title": "Cut short"})
    assert status == 201, body
    lesson = body["id"]
    directory = f"/var/lib/classbox/recordings/{lesson}"
    with timed("lesson to three closed segments"):
        wait_for(lambda: int(shell.run(f"ls {directory} | grep -c '^seg-.*ts$' || true") or 0) >= 3, 180, "segments")
    shell.run("sleep 6")  # past ext4's 5 s commit: the closed segments have reached the disk
    box.power_cut()
    with timed("power cut to /healthz answering"):
        box.boot()
        wait_for(lambda: answering(box), BOOT_S, "/healthz after the power cut", 2.0)
    shell.close()
    again = Serial(box.directory / "ttyS1.sock")
    try:
        state = again.run("systemctl is-system-running --wait", timeout=BOOT_S)
        assert state == "running", again.run("systemctl --failed --no-legend")
        boots = again.run("journalctl --list-boots | grep -c -E '[0-9a-f]{32}'")
        assert int(boots) >= 2, "the journal kept the boot that was cut"
    finally:
        again.close()
    status, body = box.http("/api/lessons/current")
    assert (status, body["lesson"]) == (200, None), body

    def recovered() -> dict[str, Any] | None:
        status, body = box.http("/api/recordings")
        assert status == 200, body
        found = [r for r in body["recordings"] if r["lesson_id"] == lesson]
        return found[0] if found and found[0]["state"] == "ready" else None

    with timed("recording recovered after the cut"):
        recording = wait_for(recovered, 300, "the cut lesson's recording ready", 2.0)
    print(f"recovered recording: {recording['duration_s']} s, state {recording['state']}")
    assert recording["interrupted"] is True
    assert recording["state"] == "ready"
    assert recording["duration_s"] >= 2.0
