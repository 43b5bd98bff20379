"""The daemon as a real subprocess: health, lessons, teacher PIN, systemd notify, supervision, exit."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.system.accounts import hash_pin
from tests.helpers import REPO, DaemonProcess, http_json, wait_for

READY_STATUS = r"STATUS=(ok; lesson: none|(starting|degraded|down); lesson: none; attention: [\w:, -]+)"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


def receive_until(sock: socket.socket, wanted: str, timeout: float = 15.0) -> list[str]:
    """Every notify message up to and including the first one containing `wanted`."""
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            continue
        messages.append(message)
        if wanted in message:
            return messages
    raise AssertionError(f"no notify message with {wanted!r}; got {messages}")


@pytest.mark.slow
def test_lifecycle_health_lessons_and_notify(tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    with DaemonProcess(tmp_path / "state", env=env) as daemon:
        messages = receive_until(sock, "READY=1")
        assert any("STATUS=starting" in m for m in messages)
        ready, status_line = messages[-1].split("\n")
        assert ready == "READY=1"
        assert re.fullmatch(READY_STATUS, status_line), status_line
        # READY means the doors answer
        health = daemon.health()
        assert health is not None
        assert health["status"] in ("ok", "degraded")
        assert health["components"]["web"]["status"] == "ok"
        receive_until(sock, "WATCHDOG=1", timeout=3)

        status, body = http_json(daemon.url + "/api/lessons", "POST", {"title": "Fractions"})
        assert status == 201, body
        assert len(body["join_code"]) == 6
        lesson_id = body["id"]
        status, body = http_json(daemon.url + "/api/lessons", "POST", {"title": "Again"})
        assert status == 409
        status, body = http_json(daemon.url + "/api/lessons/current")
        assert body["lesson"]["id"] == lesson_id
        assert body["lesson"]["title"] == "Fractions"
        receive_until(sock, "lesson: Fractions", timeout=8)
        status, metrics = http_json(daemon.url + "/metrics")
        assert status == 200
        assert "classbox_lesson_live 1.0" in metrics
        assert 'classbox_component_status{component="web",status="ok"} 1.0' in metrics
        status, body = http_json(daemon.url + "/api/lessons/current/stop", "POST")
        assert status == 200
        assert body["lesson"]["state"] == "ended"
        status, body = http_json(daemon.url + "/api/lessons/current/stop", "POST")
        assert status == 409

        began = time.monotonic()
        assert daemon.terminate(timeout=5) == 0
        assert time.monotonic() - began < 5
        receive_until(sock, "STOPPING=1", timeout=1)


def test_notifier_drops_and_counts_what_a_full_socket_cannot_take_and_logs_once(
    notify_socket: tuple[socket.socket, str], caplog: pytest.LogCaptureFixture
) -> None:
    from edge.core.notify import Notifier

    sock, path = notify_socket
    notifier = Notifier(path)
    try:
        sent = [notifier.watchdog() for _ in range(40)]
        assert sent.count(True) >= 1
        assert notifier.dropped == sent.count(False) > 0
        assert sent == sorted(sent, reverse=True)  # accepted until the queue is full, dropped after
        assert [r.getMessage() for r in caplog.records].count(
            "systemd notify socket: its queue is full: nobody reads it; dropping what cannot be sent "
            "(count: daemon.notify_dropped)"
        ) == 1
        sock.recv(4096)
        assert notifier.status("ok; lesson: none")  # room again: sent
    finally:
        notifier.close()


@pytest.mark.slow
def test_a_notify_socket_nobody_reads_never_stalls_the_box(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    _, path = notify_socket  # bound and never read: its queue is full after about ten messages
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}  # a WATCHDOG=1 and maybe a STATUS= every 0.5 s
    with DaemonProcess(tmp_path / "state", env=env) as daemon:

        def dropped() -> int:
            health = daemon.health()
            assert health is not None, "the box stopped answering"
            return int(health["components"]["daemon"]["notify_dropped"])

        daemon.wait_healthy()
        for number in range(16):
            status, body = http_json(daemon.url + "/api/lessons", "POST", {"title": f"Lesson {number}"})
            assert status == 201, body
            status, body = http_json(daemon.url + "/api/lessons/current/stop", "POST")
            assert status == 200, body
        wait_for(lambda: dropped() >= 5, 15, 0.2, "notify messages to be dropped")
        before = dropped()
        status, body = http_json(daemon.url + "/api/lessons", "POST", {"title": "Still answering"})
        assert status == 201, body
        wait_for(lambda: dropped() > before, 5, 0.1, "the next tick to be dropped too")
        assert http_json(daemon.url + "/api/lessons/current/stop", "POST")[0] == 200
        status, metrics = http_json(daemon.url + "/metrics")
        assert 'classbox_notify_dropped{component="daemon"}' in metrics
        assert daemon.terminate() == 0
    assert daemon.log().count("systemd notify socket: its queue is full") == 1


@pytest.mark.slow
def test_a_ready_dropped_while_the_notify_socket_was_full_is_sent_again(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:  # systemd busy: its queue full before we start
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                filler.sendto(b"FILLER=1", path)
    with DaemonProcess(tmp_path / "state", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}) as daemon:
        daemon.wait_healthy()
        wait_for(lambda: (daemon.health() or {})["components"]["daemon"]["notify_dropped"] >= 2, 10, 0.1, "drops")
        messages = receive_until(sock, "READY=1")  # reading makes room: the next tick sends READY=1 again
        assert set(messages[:-1]) <= {"FILLER=1", "WATCHDOG=1"}, messages
        ready, status_line = messages[-1].split("\n")
        assert ready == "READY=1"
        assert re.fullmatch(READY_STATUS, status_line), status_line
        assert daemon.terminate() == 0


@pytest.mark.slow
def test_lesson_survives_restart_as_interrupted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with DaemonProcess(state) as daemon:
        daemon.wait_healthy()
        status, body = http_json(daemon.url + "/api/lessons", "POST", {"title": "Cut"})
        assert status == 201
        lesson_id = body["id"]
        daemon.kill()
    with DaemonProcess(state) as daemon:
        health = daemon.wait_healthy()
        assert health["lesson"] is None
        status, body = http_json(daemon.url + "/api/lessons/current")
        assert body == {"lesson": None}
        assert daemon.terminate() == 0
    import sqlite3

    with sqlite3.connect(state / "box.db") as db:
        assert db.execute("select state from lessons where id = ?", [lesson_id]).fetchone() == ("interrupted",)


@pytest.mark.slow
def test_teacher_pin_guards_lessons_for_non_panel_addresses(tmp_path: Path) -> None:
    config = tmp_path / "classbox.toml"
    config.write_text(f'[web]\npanel_addresses = ["10.99.99.99/32"]\nteacher_pin_hash = "{hash_pin("2468")}"\n')
    with DaemonProcess(tmp_path / "state", "--config", str(config)) as daemon:
        daemon.wait_healthy()
        status, body = http_json(daemon.url + "/api/lessons", "POST", {})
        assert status == 401
        assert body["detail"] == "a PIN is required"
        status, body = http_json(daemon.url + "/api/lessons", "POST", {}, {"X-Panel-Pin": "1111"})
        assert status == 403
        assert http_json(daemon.url + "/api/lessons/current")[1] == {"lesson": None}
        status, body = http_json(daemon.url + "/api/lessons", "POST", {}, {"X-Panel-Pin": "2468"})
        assert status == 201
        assert body["lesson"]["title"] == "Lesson"
        assert daemon.terminate() == 0
    log = daemon.log()
    assert "2468" not in log
    assert "$argon2" not in log


@pytest.mark.slow
def test_crashed_component_is_restarted_and_shown(tmp_path: Path) -> None:
    with DaemonProcess(tmp_path / "state", "--fault", "web") as daemon:

        def restarted() -> dict[str, object] | None:
            health = daemon.health()
            if (
                health
                and health["components"]["web"]["restarts"] >= 1
                and health["components"]["web"]["status"] == "ok"
            ):
                return health
            return None

        health = wait_for(restarted, 20, 0.1, "web to be restarted")
        assert "fault drill" in str(health["components"]["web"]["last_error"])
        assert health["components"]["web"]["status"] == "ok"
        assert daemon.proc.poll() is None
        assert daemon.terminate() == 0
    assert "web failed: InjectedFault" in daemon.log()


def test_bad_config_exits_non_zero_naming_the_key(tmp_path: Path) -> None:
    import subprocess

    config = tmp_path / "bad.toml"
    config.write_text('[web]\nport = "eighty"\n[lesson]\nmax_viewers = 0\n')
    before = sorted(tmp_path.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "web.port: 'eighty' is not allowed" in result.stderr
    assert "lesson.max_viewers: 0 is not allowed" in result.stderr
    assert sorted(tmp_path.iterdir()) == before
    check = subprocess.run(
        [sys.executable, "-m", "edge", "config", "check", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 2
    assert "web.port" in check.stderr


def as_systemd_runs_it(config: Path) -> list[str]:
    """The unit's ExecStart with its --config pointed at `config`, in a network namespace of its own.

    The unit runs on the default port (8080): a private loopback keeps it off the machine's.
    """
    unit = (REPO / "systemd" / "classbox.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    program, *args = shlex.split(exec_start.removeprefix("ExecStart="))
    assert program.endswith("/bin/classbox"), program
    args[args.index("--config") + 1] = str(config)
    netns = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    return [*netns, sys.executable, "-m", "edge", *args]


def healthz_inside(pid: int, port: int = 8080) -> dict[str, Any] | None:
    """GET /healthz from inside the network namespace of process `pid`."""
    get = f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/healthz', timeout=5).read().decode())"
    result = subprocess.run(
        ["nsenter", "--target", str(pid), "--net", sys.executable, "-c", get],
        capture_output=True,
        text=True,
        timeout=15,
    )
    body: dict[str, Any] | None = json.loads(result.stdout) if result.returncode == 0 and result.stdout else None
    return body


@pytest.mark.slow
def test_first_boot_without_a_config_file_runs_on_the_defaults_and_says_so(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, notify_path = notify_socket
    missing = tmp_path / "etc" / "classbox" / "classbox.toml"
    state = tmp_path / "state"
    env = {**os.environ, "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "30000000", "STATE_DIRECTORY": str(state)}
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(as_systemd_runs_it(missing), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = receive_until(sock, "READY=1", timeout=30)[-1]
        assert f"no config file at {missing}: running on the built-in defaults" in ready
        health = wait_for(lambda: healthz_inside(proc.pid), 20, 0.2, "/healthz inside the daemon's namespace")
        assert health["components"]["daemon"]["status"] == "degraded"
        assert str(missing) in health["components"]["daemon"]["detail"]
        assert health["components"]["web"]["status"] == "ok"
        assert (state / "box.db").is_file()
        assert not missing.exists()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
    assert code == 0, log_path.read_text()
    assert log_path.read_text().count("running on the built-in defaults") == 2  # the warning, then the ready line


def test_an_invalid_config_file_is_still_refused_as_systemd_runs_it(tmp_path: Path) -> None:
    config = tmp_path / "classbox.toml"
    config.write_text("[web]\nport = 0\n")
    result = subprocess.run(
        as_systemd_runs_it(config),
        cwd=REPO,
        env={**os.environ, "STATE_DIRECTORY": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    unit = (REPO / "systemd" / "classbox.service").read_text()
    assert "\nRestartPreventExitStatus=2\n" in unit  # systemd does not restart it in a loop
    assert result.stderr.splitlines()[-2:] == [
        f"classbox: config refused: {config}",
        "  web.port: 0 is not allowed: Input should be greater than or equal to 1",
    ]
    assert not (tmp_path / "state").exists()


def test_cli_version_and_help() -> None:
    import subprocess

    from edge import __version__

    out = subprocess.run([sys.executable, "-m", "edge", "--version"], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == f"classbox {__version__}"
    for command in (["run"], ["demo"], ["config", "check"], ["config", "set-pin"]):
        result = subprocess.run(
            [sys.executable, "-m", "edge", *command, "--help"], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0
        assert "usage: classbox" in result.stdout


@pytest.mark.slow
def test_sigterm_during_a_live_lesson_exits_cleanly_and_keeps_the_recording(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with DaemonProcess(state) as daemon:
        daemon.wait_healthy()
        status, body = http_json(daemon.url + "/api/lessons", "POST", {"title": "Live at shutdown"})
        assert status == 201
        wait_for(lambda: (daemon.health() or {}).get("components", {}).get("recorder", {}).get("recording"), 10)
        segments = state / "recordings" / body["id"]
        wait_for(lambda: any(p.stat().st_size for p in segments.glob("seg-*")), 10, 0.1, "media in the open segment")
        began = time.monotonic()
        assert daemon.terminate(timeout=5) == 0
        assert time.monotonic() - began < 5
    with DaemonProcess(state) as daemon:
        daemon.wait_healthy()

        def recovered() -> list[dict[str, object]] | None:
            status, listing = http_json(daemon.url + "/api/recordings")
            ready = [r for r in listing.get("recordings", []) if r.get("state") == "ready"] if status == 200 else []
            return ready or None

        recordings = wait_for(recovered, 20, 0.2, "the recording to be finalised after the restart")
        assert recordings[0]["title"] == "Live at shutdown"
        assert daemon.terminate() == 0
