"""schemathesis over the app's whole OpenAPI schema, against the real daemon: no input makes a server error.

Generated requests go to a daemon subprocess over loopback HTTP, once as anyone on the LAN and once
with an admin session (cookie and CSRF token). Sign-out is left out of the admin run: it would end
the session every other request relies on (tests/test_accounts.py covers it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from edge.box import Box
from edge.core.config import BoxConfig, dump_config
from edge.core.events import EventBus
from edge.doors.web.app import create_app
from edge.system.accounts import hash_pin
from tests.helpers import DaemonProcess, http_json
from tests.test_accounts import PASSWORD

EXAMPLES = 4  # per operation and run: ~35 operations x 2 runs stay near a minute on a shared machine
# The schema is the app's own, built here as the daemon builds it; requests go to the daemon.
schema = schemathesis.openapi.from_dict(create_app(Box(BoxConfig(), EventBus())).openapi())


@dataclass
class Server:
    url: str
    admin: dict[str, str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A demo daemon whose panel is elsewhere (loopback is just someone on the LAN), with an admin signed in."""
    folder = tmp_path_factory.mktemp("schemathesis")
    config = BoxConfig()
    config.web.panel_addresses = ["192.0.2.1/32"]
    config.web.teacher_pin_hash = hash_pin("2468")
    config.recording.enabled = False
    config.discovery.enabled = False
    path = folder / "classbox.toml"
    path.write_text(dump_config(config))
    state = folder / "state"
    with DaemonProcess(state, "--config", str(path)) as daemon:
        daemon.wait_healthy(60)
        code = (state / "admin-setup-code").read_text().strip()
        status, body = http_json(
            daemon.url + "/api/admin/setup", "POST", {"code": code, "user": "it", "password": PASSWORD}
        )
        assert status == 201
        answer = requests.post(daemon.url + "/api/admin/login", json={"user": "it", "password": PASSWORD}, timeout=60)
        assert answer.status_code == 200
        cookie = f"classbox_admin={answer.cookies['classbox_admin']}"
        yield Server(daemon.url, {"Cookie": cookie, "X-CSRF-Token": answer.json()["csrf"]})
        assert daemon.proc.poll() is None, daemon.log()
        daemon.terminate(timeout=30)


def no_server_error(case: schemathesis.Case, base_url: str, headers: dict[str, str]) -> None:
    """Send `case`; fail on a 5xx other than 503 (the box cannot take it now, with its reason)."""
    kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
    kwargs["timeout"] = 60
    with requests.request(**kwargs, stream=True) as response:  # an event stream is judged by its status alone
        status = response.status_code
        if status >= 500:
            detail = response.raw.read(2000, decode_content=True)
            assert status == 503, f"{case.method} {case.formatted_path}: {status} {detail!r}\n{case.as_curl_command()}"


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_anyone_gets_no_server_error(case: schemathesis.Case, server: Server) -> None:
    no_server_error(case, server.url, {})


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_an_admin_gets_no_server_error(case: schemathesis.Case, server: Server) -> None:
    if case.path.endswith(("/logout", "/api/admin/restart")):
        return  # the run's own session must last it, and a restart would end every session and connection
    no_server_error(case, server.url, server.admin)
