"""The IT staff's credential: first-boot setup code, sign-in, lock-out, sessions, CSRF, HTTPS and its certificate."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser

from edge.doors.web.routes.accounts import is_loopback
from edge.system.accounts import PIN_FAILURES_ALLOWED, PIN_LOCKOUT_S, SESSION_MAX_S, SETUP_CODE_ALPHABET
from edge.system.certificate import fingerprint
from tests.helpers import REPO, DaemonProcess, http_json, wait_for
from tests.stream_fixture import LiveBox, live_box, small_config

PASSWORD = "correct horse battery"
SYSTEM_CAS = ssl.create_default_context()  # at import: loading the CA file would block a test's loop


def client_of(live: LiveBox) -> httpx.AsyncClient:
    """An HTTP client of the box over plain HTTP on loopback."""
    return httpx.AsyncClient(base_url=live.base, verify=SYSTEM_CAS, timeout=30)


@contextlib.asynccontextmanager
async def lan_box(tmp_path: Path, **admin: int) -> AsyncIterator[tuple[LiveBox, list[float]]]:
    """A box in this loop whose monotonic clock the test moves on (`offset[0]` seconds ahead)."""
    config = small_config(tmp_path)
    for key, value in admin.items():
        setattr(config.admin, key, value)
    async with live_box(config, with_devices=False) as live:
        offset = [0.0]
        real = live.box.clock.monotonic
        live.box.clock.monotonic = lambda: real() + offset[0]
        yield live, offset


def setup_code(state_dir: Path) -> str:
    return (state_dir / "admin-setup-code").read_text().strip()


async def first_admin(client: httpx.AsyncClient, live: LiveBox, user: str = "it") -> dict[str, str]:
    code = setup_code(live.box.config.box.state_dir)
    answer = await client.post("/api/admin/setup", json={"code": code, "user": user, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    body: dict[str, str] = answer.json()
    return body


def cookie_of(response: httpx.Response) -> SimpleCookie:
    jar = SimpleCookie()
    jar.load(response.headers["set-cookie"])
    return jar


def test_first_boot_setup_takes_the_code_once_and_never_a_wrong_one(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with DaemonProcess(state) as daemon:
        daemon.wait_healthy()
        code_file = state / "admin-setup-code"
        assert stat.S_IMODE(code_file.stat().st_mode) == 0o600
        code = code_file.read_text().strip()
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4]
        assert set("".join(groups)) <= set(SETUP_CODE_ALPHABET)
        printed = subprocess.run(
            [sys.executable, "-m", "edge", "admin", "setup-code"],
            cwd=REPO,
            env={**os.environ, "STATE_DIRECTORY": str(state), "CLASSBOX_CONFIG": str(tmp_path / "none.toml")},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert printed.returncode == 0
        assert printed.stdout.strip() == code
        url = daemon.url + "/api/admin/setup"
        wrong = "".join(reversed(code))
        status, body = http_json(url, "POST", {"code": wrong, "user": "it", "password": PASSWORD})
        assert (status, body["detail"]) == (401, "wrong setup code")
        status, body = http_json(url, "POST", {"code": code, "user": "it", "password": "short"})
        assert (status, body["detail"]) == (400, "a password has at least 10 characters")
        status, body = http_json(url, "POST", {"code": code, "user": "Robert'); DROP", "password": PASSWORD})
        assert status == 400
        assert "username" in body["detail"]
        assert code_file.exists()  # refused requests spent nothing
        status, _ = http_json(daemon.url + "/api/admin/login", "POST", {"user": "it", "password": PASSWORD})
        assert status == 401
        typed = code.lower().replace("-", " ")  # as someone might type it off the screen
        status, body = http_json(url, "POST", {"code": typed, "user": "it", "password": PASSWORD})
        assert status == 201
        assert body["user"] == "it"
        assert not code_file.exists()
        status, body = http_json(url, "POST", {"code": code, "user": "eve", "password": PASSWORD})
        assert status == 409
        status, _ = http_json(daemon.url + "/api/admin/login", "POST", {"user": "eve", "password": PASSWORD})
        assert status == 401
        status, body = http_json(daemon.url + "/api/admin/login", "POST", {"user": "it", "password": PASSWORD})
        assert status == 200
        assert body["user"] == "it"
        assert daemon.terminate() == 0
    log = daemon.log()
    for secret in (code, PASSWORD, body["csrf"]):
        assert secret not in log
    with DaemonProcess(state) as again:  # a restart makes no new code: the box has its admin
        again.wait_healthy()
        assert not code_file.exists()
        status, _ = http_json(again.url + "/api/admin/login", "POST", {"user": "it", "password": PASSWORD})
        assert status == 200


async def test_wrong_setup_codes_lock_out_like_sign_ins(tmp_path: Path) -> None:
    async with lan_box(tmp_path) as (live, offset), client_of(live) as client:
        code = setup_code(live.box.config.box.state_dir)
        for _ in range(PIN_FAILURES_ALLOWED):
            wrong = {"code": "AAAA-AAAA-AAAA", "user": "it", "password": PASSWORD}
            answer = await client.post("/api/admin/setup", json=wrong)
            assert answer.status_code == 401
        answer = await client.post("/api/admin/setup", json={"code": code, "user": "it", "password": PASSWORD})
        assert answer.status_code == 429  # even the right code, while locked out
        assert int(answer.headers["retry-after"]) == PIN_LOCKOUT_S
        offset[0] += PIN_LOCKOUT_S
        answer = await client.post("/api/admin/setup", json={"code": code, "user": "it", "password": PASSWORD})
        assert answer.status_code == 201


async def test_wrong_password_then_lock_out_then_the_window_passes(tmp_path: Path) -> None:
    async with lan_box(tmp_path) as (live, offset), client_of(live) as client:
        await first_admin(client, live)
        for user in ("it", "nobody", "it", "it", "nobody"):  # unknown users count the same
            answer = await client.post("/api/admin/login", json={"user": user, "password": "not the password"})
            assert answer.status_code == 401
            assert answer.json()["detail"] == "wrong username or password"
            assert "set-cookie" not in answer.headers
        answer = await client.post("/api/admin/login", json={"user": "it", "password": PASSWORD})
        assert answer.status_code == 429
        assert "too many failed sign-ins" in answer.json()["detail"]
        assert "set-cookie" not in answer.headers
        offset[0] += PIN_LOCKOUT_S / 2
        assert (await client.post("/api/admin/login", json={"user": "it", "password": PASSWORD})).status_code == 429
        offset[0] += PIN_LOCKOUT_S / 2  # the first failures are now out of the window
        answer = await client.post("/api/admin/login", json={"user": "it", "password": PASSWORD})
        assert answer.status_code == 200


async def test_changes_need_the_sessions_own_csrf_token(tmp_path: Path) -> None:
    async with (
        lan_box(tmp_path) as (live, _),
        client_of(live) as first,
        client_of(live) as second,
    ):
        mine = await first_admin(first, live)
        theirs = (await second.post("/api/admin/login", json={"user": "it", "password": PASSWORD})).json()
        assert mine["csrf"] != theirs["csrf"]
        session = await first.get("/api/admin/session")
        assert session.json() == {"user": "it", "csrf": mine["csrf"]}
        assert (await first.post("/api/admin/logout")).status_code == 403
        refused = await first.post("/api/admin/logout", headers={"X-CSRF-Token": theirs["csrf"]})
        assert refused.status_code == 403
        assert "CSRF" in refused.json()["detail"]
        form = await first.post("/admin/logout", data={"csrf": theirs["csrf"]})
        assert form.status_code == 403
        assert (await first.get("/api/admin/session")).status_code == 200  # refused changes changed nothing
        done = await first.post("/api/admin/logout", headers={"X-CSRF-Token": mine["csrf"]})
        assert done.status_code == 200
        assert (await first.get("/api/admin/session")).status_code == 401
        assert (await second.get("/api/admin/session")).status_code == 200  # only that session ended
        evil = await second.post(
            "/admin/login", data={"user": "it", "password": PASSWORD}, headers={"Origin": "http://evil.example"}
        )
        assert evil.status_code == 403  # a form on another site cannot sign this browser in
        assert "set-cookie" not in evil.headers
        elsewhere = await second.post("/api/lessons", data={"title": "x"})
        assert elsewhere.status_code == 415  # forms only where the admin pages post them
        out = await second.post("/admin/logout", data={"csrf": theirs["csrf"]})
        assert (out.status_code, out.headers["location"]) == (303, "/admin/login")
        assert (await second.get("/api/admin/session")).status_code == 401


async def test_admins_add_and_remove_accounts_and_change_their_password(tmp_path: Path) -> None:
    async with lan_box(tmp_path) as (live, _), client_of(live) as it, client_of(live) as ana:
        mine = {"X-CSRF-Token": (await first_admin(it, live))["csrf"]}
        new = {"user": "Ana", "password": "another long one"}
        assert (await it.post("/api/admin/accounts", json=new)).status_code == 403  # no CSRF token
        added = await it.post("/api/admin/accounts", json=new, headers=mine)
        assert (added.status_code, added.json()) == (201, {"user": "ana"})
        assert (await it.post("/api/admin/accounts", json=new, headers=mine)).status_code == 400  # taken
        short = await it.post("/api/admin/accounts", json={"user": "bo", "password": "short"}, headers=mine)
        assert short.status_code == 400
        listed = (await it.get("/api/admin/accounts")).json()["accounts"]
        assert [a["user"] for a in listed] == ["ana", "it"]
        assert "password" not in str(listed)
        theirs = {"X-CSRF-Token": (await ana.post("/api/admin/login", json=new)).json()["csrf"]}
        assert (await ana.delete("/api/admin/accounts/ana", headers=theirs)).status_code == 409  # not one's own
        assert (await it.delete("/api/admin/accounts/ana", headers=mine)).status_code == 200
        assert (await ana.get("/api/admin/session")).status_code == 401  # the deleted account's session ended
        assert (await it.delete("/api/admin/accounts/it", headers=mine)).status_code == 409  # the last one stays
        change = {"current": "not the password", "password": "a brand new password"}
        assert (await it.post("/api/admin/password", json=change, headers=mine)).status_code == 401
        change["current"] = PASSWORD
        assert (await it.post("/api/admin/password", json=change, headers=mine)).status_code == 200
        assert (await it.get("/api/admin/session")).status_code == 401  # signed out everywhere
        old = await it.post("/api/admin/login", json={"user": "it", "password": PASSWORD})
        assert old.status_code == 401
        again = await it.post("/api/admin/login", json={"user": "it", "password": "a brand new password"})
        assert again.status_code == 200


async def test_sessions_expire_when_idle_and_after_twelve_hours(tmp_path: Path) -> None:
    async with lan_box(tmp_path, idle_minutes=30) as (live, offset), client_of(live) as client:
        await first_admin(client, live)
        offset[0] += 29 * 60
        assert (await client.get("/api/admin/session")).status_code == 200  # used: idle time starts again
        offset[0] += 29 * 60
        assert (await client.get("/api/admin/session")).status_code == 200
        offset[0] += 30 * 60 + 1
        assert (await client.get("/api/admin/session")).status_code == 401
        await client.post("/api/admin/login", json={"user": "it", "password": PASSWORD})
        began = offset[0]
        while offset[0] - began < SESSION_MAX_S - 20 * 60:
            offset[0] += 20 * 60
            assert (await client.get("/api/admin/session")).status_code == 200
        offset[0] += 20 * 60
        assert (await client.get("/api/admin/session")).status_code == 401  # never idle, but twelve hours old


async def test_cookie_is_httponly_strict_and_secure_on_https(tmp_path: Path) -> None:
    async with lan_box(tmp_path) as (live, _), client_of(live) as client:
        answer = await client.post(
            "/api/admin/setup",
            json={"code": setup_code(live.box.config.box.state_dir), "user": "it", "password": PASSWORD},
        )
        plain = cookie_of(answer)["classbox_admin"]
        assert plain["httponly"]
        assert plain["samesite"].lower() == "strict"
        assert plain["path"] == "/"
        assert not plain["secure"]  # loopback over plain HTTP: a Secure cookie would never come back
        assert len(plain.value) >= 43  # 32 random bytes, URL-safe base64
        certificate = live.box.certificate
        assert certificate is not None
        context = ssl.create_default_context(cafile=str(certificate.cert_path))
        https = f"https://127.0.0.1:{live.box.config.web.https_port}"
        async with httpx.AsyncClient(base_url=https, verify=context) as secure_client:
            answer = await secure_client.post("/api/admin/login", json={"user": "it", "password": PASSWORD})
            assert answer.status_code == 200
            cookie = cookie_of(answer)["classbox_admin"]
            assert cookie["secure"]
            assert cookie["httponly"]
            assert cookie["samesite"].lower() == "strict"
            assert (await secure_client.get("/api/admin/session")).json()["user"] == "it"


def test_https_port_taken_leaves_the_web_door_degraded_and_plain_http_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with DaemonProcess(tmp_path / "state", "--https-port", str(port)) as daemon:
            web = daemon.wait_healthy()["components"]["web"]
            assert web["status"] == "degraded"  # not down: students and the panel use plain HTTP
            assert f"HTTPS port {port}" in web["detail"]
            assert http_json(daemon.url + "/api/lessons/current")[0] == 200
            assert daemon.terminate() == 0
        assert f"cannot listen for HTTPS on port {port}" in daemon.log()


# -- another machine on the LAN: a veth into a network namespace of the test's own ----------------


@contextlib.contextmanager
def lan_namespace() -> Iterator[tuple[str, str, str]]:
    """(namespace, the box's address, the client's address): a veth from this host into `accounts-<pid>`."""
    tag = str(os.getpid() % 100_000)
    ns, host_end, ns_end = f"accounts-{tag}", f"acc{tag}h", f"acc{tag}n"
    subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
    box_ip, client_ip = f"{subnet}.1", f"{subnet}.2"
    commands = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end],
        ["ip", "link", "set", ns_end, "netns", ns],
        ["ip", "addr", "add", f"{box_ip}/24", "dev", host_end],
        ["ip", "link", "set", host_end, "up"],
        ["ip", "-n", ns, "addr", "add", f"{client_ip}/24", "dev", ns_end],
        ["ip", "-n", ns, "link", "set", ns_end, "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
    ]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, timeout=10)
        yield ns, box_ip, client_ip
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def answers(url: str) -> bool:
    try:
        return http_json(url)[0] == 200
    except OSError:  # not listening yet
        return False


CLIENT = """
import json, socket, ssl, sys, urllib.error, urllib.request
url, cafile = sys.argv[1], sys.argv[2]
body = json.dumps({"user": "it", "password": sys.argv[3]}).encode()
request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
context = ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
try:
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        out = {"status": answer.status, "body": json.loads(answer.read()), "cookie": answer.headers.get("set-cookie")}
except urllib.error.HTTPError as err:
    out = {"status": err.code, "body": json.loads(err.read()), "cookie": None}
if url.startswith("https"):
    host, port = url.split("/")[2].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            out["peer_cert"] = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))
print(json.dumps(out))
"""


def from_namespace(ns: str, url: str, cafile: Path) -> dict[str, object]:
    result = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, url, str(cafile), PASSWORD],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


@pytest.mark.slow
def test_plain_http_sign_in_from_the_lan_is_refused_and_https_serves_the_box_certificate(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace")
    state = tmp_path / "state"
    with lan_namespace() as (ns, box_ip, _client_ip), DaemonProcess(state, "--host", box_ip) as daemon:
        wait_for(lambda: answers(f"http://{box_ip}:{daemon.port}/healthz"), 30, 0.2, "the daemon on the veth")
        code = setup_code(state)
        setup = {"code": code, "user": "it", "password": PASSWORD}
        assert http_json(f"http://{box_ip}:{daemon.port}/api/admin/setup", "POST", setup)[0] == 403
        # From this host to its own veth address is not loopback either; the box's own console uses 127.0.0.1.
        cert_path = state / "tls" / "cert.pem"
        https = f"https://{box_ip}:{daemon.https_port}"
        context = ssl.create_default_context(cafile=str(cert_path))
        with httpx.Client(base_url=https, verify=context) as client:
            assert client.post("/api/admin/setup", json=setup).status_code == 201
        plain = from_namespace(ns, f"http://{box_ip}:{daemon.port}/api/admin/login", cert_path)
        assert plain["status"] == 403
        assert plain["cookie"] is None
        assert f"https://{box_ip}:{daemon.https_port}/admin/login" in str(plain["body"])
        secure = from_namespace(ns, f"{https}/api/admin/login", cert_path)  # verified against the box's own certificate
        assert secure["status"] == 200
        assert "Secure" in str(secure["cookie"])
        assert "HttpOnly" in str(secure["cookie"])
        printed = subprocess.run(
            [sys.executable, "-m", "edge", "admin", "fingerprint"],
            cwd=REPO,
            env={**os.environ, "STATE_DIRECTORY": str(state), "CLASSBOX_CONFIG": str(tmp_path / "none.toml")},
            capture_output=True,
            text=True,
            timeout=30,
        )
        served = fingerprint(str(secure["peer_cert"]).encode())
        assert printed.stdout.strip() == f"SHA-256 {served}"
        assert served == fingerprint(cert_path.read_bytes())
        assert stat.S_IMODE((state / "tls" / "key.pem").stat().st_mode) == 0o600
        assert daemon.terminate() == 0


# -- the pages, in Chromium --------------------------------------------------------------------------


@pytest.mark.browser
async def test_setup_and_sign_in_pages_in_chromium(tmp_path: Path, browser: Browser) -> None:
    async with lan_box(tmp_path) as (live, _):
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        await page.goto(live.base + "/admin/login")
        assert page.url.endswith("/admin/setup")  # no admin yet: the setup page
        await page.fill("#code", "AAAA-AAAA-AAAA")
        await page.fill("#user", "it")
        await page.fill("#password", PASSWORD)
        await page.fill("#password2", PASSWORD)
        await page.click("#create")
        assert await page.text_content("#error") == "wrong setup code"
        await page.screenshot(path=str(screenshot("setup", "en", 390, 844)), full_page=True)
        assert await page.input_value("#user") == "it"  # what was typed stays, the secrets do not
        assert await page.input_value("#password") == ""
        await page.fill("#code", setup_code(live.box.config.box.state_dir))
        await page.fill("#password", PASSWORD)
        await page.fill("#password2", PASSWORD)
        await page.click("#create")
        await page.wait_for_url("**/admin")
        cookies = {c["name"]: c for c in await context.cookies()}
        assert cookies["classbox_admin"]["httpOnly"]
        assert cookies["classbox_admin"]["sameSite"] == "Strict"
        assert await page.evaluate("document.cookie") == ""  # scripts never see it
        await page.goto("about:blank")  # leave the dashboard first: signed out, its script goes to sign-in itself
        await context.clear_cookies()
        await page.goto(live.base + "/admin/login")
        assert page.url.endswith("/admin/login")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the phone
        await page.screenshot(path=str(screenshot("login", "en", 390, 844)))
        await page.fill("#user", "it")
        await page.fill("#password", "not the password")
        await page.click("#sign-in")
        assert await page.text_content("#error") == "wrong username or password"
        await page.fill("#password", PASSWORD)
        await page.click("#sign-in")
        await page.wait_for_url("**/admin")
        assert "classbox_admin" in {c["name"] for c in await context.cookies()}
        live.box.config.box.language = "ar"
        await page.goto(live.base + "/admin/login")
        assert await page.get_attribute("html", "dir") == "rtl"
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await context.close()


def screenshot(page: str, language: str, width: int, height: int) -> Path:
    folder = REPO / "docs" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{page}-{language}-{width}x{height}.png"


def test_setup_code_file_is_written_before_anyone_can_ask(tmp_path: Path) -> None:
    """`classbox admin setup-code` says there is none where the box never started."""
    printed = subprocess.run(
        [sys.executable, "-m", "edge", "admin", "setup-code"],
        cwd=REPO,
        env={**os.environ, "STATE_DIRECTORY": str(tmp_path), "CLASSBOX_CONFIG": str(tmp_path / "none.toml")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert printed.returncode == 1
    assert printed.stdout == ""


def test_the_box_itself_is_loopback_also_as_an_ipv4_mapped_address_and_nothing_else_is() -> None:
    assert all(is_loopback(a) for a in ("127.0.0.1", "127.0.0.9", "::1", "::ffff:127.0.0.1"))
    assert not any(is_loopback(a) for a in ("192.0.2.7", "::ffff:192.0.2.7", "2001:db8::1", "?", ""))
