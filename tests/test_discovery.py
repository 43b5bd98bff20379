"""Discovery on the LAN: the box's web pages found by any mDNS browser, and boxes that list each other.

Everything is python-zeroconf bound to 127.0.0.1 (multicast on loopback): the test's own browser
plays an IT person's mDNS browser; in the last test the boxes are real daemons (subprocesses).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect
from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edge import __version__, wiring
from edge.box import Box
from edge.core.config import BoxConfig
from edge.core.events import EventBus
from edge.discovery.lan import HTTP_TYPE, HTTPS_TYPE, Discovery, instance_name
from tests.helpers import REPO, DaemonProcess, free_port

LOOPBACK = ["127.0.0.1"]
SCREENSHOTS = REPO / "docs" / "screenshots"


def config_for(state: Path, box_id: str, name: str, room: str) -> BoxConfig:
    config = BoxConfig()
    config.box.id, config.box.name, config.box.room, config.box.state_dir = box_id, name, room, state
    config.web.host, config.web.port, config.web.https_port = "127.0.0.1", free_port(), free_port()
    config.discovery.interfaces = LOOPBACK
    return config


class Watcher:
    """An mDNS browser on loopback: the services of one type it sees now, by instance name."""

    def __init__(self, zc: AsyncZeroconf, kinds: list[str]) -> None:
        self.zc = zc
        self.present: set[str] = set()
        self.updates = 0
        self.browser = AsyncServiceBrowser(zc.zeroconf, kinds, handlers=[self._changed])

    def _changed(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            self.present.discard(name)
        else:
            self.present.add(name)
            self.updates += 1

    async def resolve(self, kind: str, name: str) -> AsyncServiceInfo:
        info = AsyncServiceInfo(kind, name)
        assert await info.async_request(self.zc.zeroconf, 3000), f"{name} did not resolve"
        return info


async def until(predicate: Callable[[], Any], what: str, within: float = 15.0) -> None:
    """Wait on the loop until `predicate()` holds."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def watcher() -> AsyncIterator[Watcher]:
    zc = AsyncZeroconf(interfaces=LOOPBACK)
    watching = Watcher(zc, [HTTP_TYPE, HTTPS_TYPE])
    try:
        yield watching
    finally:
        await watching.browser.async_cancel()
        await zc.async_close()


@asynccontextmanager
async def advertised(config: BoxConfig, addresses: Callable[[], list[str]] | None = None) -> AsyncIterator[Discovery]:
    """A box's discovery component started (its other parts are not needed to advertise)."""
    box = Box(config, EventBus())
    await asyncio.to_thread(box.open)  # makes the HTTPS certificate
    discovery = wiring.discovery(box.services, addresses=addresses)
    try:
        await discovery.start()
        yield discovery
    finally:
        await discovery.stop()
        await discovery.stop()  # idempotent
        box.close()


async def test_an_mdns_browser_finds_the_web_pages_with_the_box_txt_and_loses_them_on_stop(
    tmp_path: Path, watcher: Watcher
) -> None:
    config = config_for(tmp_path / "a", "box-lan-a", "Grade 5, Room 12", "12")
    name = instance_name(config.box.name, config.box.id)
    http_name, https_name = f"{name}.{HTTP_TYPE}", f"{name}.{HTTPS_TYPE}"
    async with advertised(config):
        await until(lambda: {http_name, https_name} <= watcher.present, "both web services")
        http = await watcher.resolve(HTTP_TYPE, http_name)
        assert http.port == config.web.port
        assert http.parsed_addresses() == ["127.0.0.1"]
        assert http.properties == {
            b"product": b"classbox",
            b"id": b"box-lan-a",
            b"name": b"Grade 5, Room 12",
            b"room": b"12",
            b"version": __version__.encode(),
            b"path": b"/admin",
        }
        https = await watcher.resolve(HTTPS_TYPE, https_name)
        assert https.port == config.web.https_port
        assert https.properties[b"path"] == b"/admin"
    await until(lambda: not ({http_name, https_name} & watcher.present), "the goodbyes of both services")


def test_the_instance_name_fits_one_dns_label_and_keeps_the_id() -> None:
    assert instance_name("Grade 5, Room 12", "box-a") == "Grade 5, Room 12 (box-a)"
    long = instance_name("École élémentaire Jean-Jaurès, salle polyvalente du rez-de-chaussée", "box-0123456789")
    assert len(long.encode()) <= 63
    assert long.endswith(" (box-0123456789)")
    assert instance_name("x", "b" * 64) == "b" * 63


async def test_a_box_whose_address_changes_announces_the_new_one(tmp_path: Path, watcher: Watcher) -> None:
    config = config_for(tmp_path / "a", "box-lan-move", "Moving box", "")
    config.web.https_port = 0
    where = ["127.0.0.1"]
    name = f"{instance_name(config.box.name, config.box.id)}.{HTTP_TYPE}"
    async with advertised(config, lambda: list(where)) as discovery:
        await until(lambda: name in watcher.present, "the web service")
        assert await discovery.check_addresses() is False  # nothing changed: nothing sent
        where[:] = ["127.0.0.2"]
        assert await discovery.check_addresses() is True
        assert discovery.addresses == ["127.0.0.2"]

        async def moved() -> bool:
            info = await watcher.resolve(HTTP_TYPE, name)
            return "127.0.0.2" in info.parsed_addresses()

        await until_async(moved, "the new address announced")


async def test_a_box_that_cannot_advertise_is_degraded_and_lists_nobody(tmp_path: Path) -> None:
    config = config_for(tmp_path / "a", "box-lan-nowhere", "Nowhere", "")
    config.discovery.interfaces = ["192.0.2.1"]  # TEST-NET-1: no interface of this machine has it
    async with advertised(config) as discovery:
        assert discovery.zeroconf is None
        assert discovery.health().status == "degraded"
        assert discovery.health().detail == "LAN discovery unavailable: no interface has the address 192.0.2.1"
        assert discovery.boxes() == []
        assert discovery.peer_urls() == []


async def until_async(predicate: Callable[[], Awaitable[bool]], what: str, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.1)


async def test_two_boxes_list_each_other_by_id_and_not_themselves(tmp_path: Path) -> None:
    a = config_for(tmp_path / "a", "box-lan-pair-a", "Room A", "A")
    b = config_for(tmp_path / "b", "box-lan-pair-b", "Room B", "B")
    async with advertised(a) as seen_by_a, advertised(b) as seen_by_b:
        await until(lambda: "box-lan-pair-b" in {x["id"] for x in seen_by_a.boxes()}, "A seeing B")
        await until(lambda: "box-lan-pair-a" in {x["id"] for x in seen_by_b.boxes()}, "B seeing A")
        await until(lambda: _listed(seen_by_a, "box-lan-pair-b").get("url"), "B's plain web page")
        entry = _listed(seen_by_a, "box-lan-pair-b")
        assert entry["name"] == "Room B"
        assert entry["room"] == "B"
        assert entry["url"] == f"http://127.0.0.1:{b.web.port}"
        await until(
            lambda: _listed(seen_by_a, "box-lan-pair-b")["admin_url"] == f"https://127.0.0.1:{b.web.https_port}/admin",
            "B's admin page over HTTPS",
        )
        assert [x for x in seen_by_a.boxes() if x["id"] == "box-lan-pair-a"] == []
        assert [x["id"] for x in seen_by_a.boxes()].count("box-lan-pair-b") == 1  # one entry for its two services
        assert f"http://127.0.0.1:{b.web.port}" in seen_by_a.peer_urls()  # the courseware peers share the instance


async def test_a_box_that_stops_leaves_the_other_boxs_list_and_courseware_peers_which_never_hold_itself(
    tmp_path: Path,
) -> None:
    a = config_for(tmp_path / "a", "box-lan-gone-a", "Room A", "A")
    b = config_for(tmp_path / "b", "box-lan-gone-b", "Room B", "B")
    b_url = f"http://127.0.0.1:{b.web.port}"
    async with advertised(a) as seen_by_a:
        async with advertised(b):
            await until(lambda: b_url in seen_by_a.peer_urls(), "B among A's courseware peers")
            await until(lambda: _listed(seen_by_a, "box-lan-gone-b"), "B on A's list")
        await until(lambda: b_url not in seen_by_a.peer_urls(), "B gone from A's courseware peers")
        await until(lambda: not _listed(seen_by_a, "box-lan-gone-b"), "B gone from A's list")
        assert f"http://127.0.0.1:{a.web.port}" not in seen_by_a.peer_urls()  # A heard its own service all along


def _listed(discovery: Discovery, box_id: str) -> dict[str, Any]:
    return next((x for x in discovery.boxes() if x["id"] == box_id), {})


# -- two real daemons ---------------------------------------------------------------------------------

SETUP_CODE = "admin-setup-code"
SMALL = """
[[cameras]]
name = "teacher"
width = 640
height = 360
fps = 10
[stream.high]
width = 640
height = 360
fps = 10
kbps = 400
[stream.low]
width = 320
height = 180
fps = 10
kbps = 150
[stream.lowest]
enabled = false
"""  # the machine is shared: small layers


def _daemon(tmp: Path, box_id: str, name: str) -> DaemonProcess:
    config = tmp / f"{box_id}.toml"
    config.write_text(f'[box]\nid = "{box_id}"\nname = "{name}"\n{SMALL}')
    return DaemonProcess(tmp / box_id, "--config", str(config))


ADMIN = {"user": "it", "password": "correct horse battery"}


async def _admin(daemon: DaemonProcess) -> httpx.AsyncClient:
    """An admin session on `daemon` (the first admin, made with the setup code)."""
    client = await asyncio.to_thread(httpx.AsyncClient, base_url=daemon.url, timeout=10)  # loads the CA file
    code = (await asyncio.to_thread((daemon.state_dir / SETUP_CODE).read_text)).strip()
    answer = await client.post("/api/admin/setup", json={"code": code, **ADMIN})
    if answer.status_code != 201:
        await client.aclose()
        raise AssertionError(answer.text)
    return client


async def _ids(client: httpx.AsyncClient) -> set[str]:
    answer = await client.get("/api/admin/boxes")
    assert answer.status_code == 200, answer.text
    assert answer.json()["discovering"] is True
    return {entry["id"] for entry in answer.json()["boxes"]}


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[DaemonProcess, DaemonProcess]]:
    first, second = _daemon(tmp_path, "box-lan-d1", "First"), _daemon(tmp_path, "box-lan-d2", "Second")
    try:
        await asyncio.gather(asyncio.to_thread(first.wait_healthy, 60), asyncio.to_thread(second.wait_healthy, 60))
        yield first, second
    finally:
        await asyncio.to_thread(first.__exit__)
        await asyncio.to_thread(second.__exit__)


@pytest.mark.slow
@pytest.mark.browser
async def test_two_daemons_list_each_other_on_the_dashboard_and_a_stopped_box_disappears(
    pair: tuple[DaemonProcess, DaemonProcess], browser: Browser
) -> None:
    first, second = pair
    anyone = await asyncio.to_thread(httpx.AsyncClient)  # the CA file loads off the loop
    async with AsyncExitStack() as stack, anyone:
        at_first = await _admin(first)
        stack.push_async_callback(at_first.aclose)
        at_second = await _admin(second)
        stack.push_async_callback(at_second.aclose)
        assert (await anyone.get(first.url + "/api/admin/boxes")).status_code in (401, 403)
        await until_async(lambda: _has(at_first, "box-lan-d2"), "the first box listing the second")
        await until_async(lambda: _has(at_second, "box-lan-d1"), "the second box listing the first")
        assert "box-lan-d1" not in await _ids(at_first)

        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        signed_in = await context.request.post(first.url + "/api/admin/login", data=ADMIN)
        assert signed_in.ok, await signed_in.text()
        page = await context.new_page()
        await page.goto(first.url + "/admin")
        entry = page.locator('#boxes li[data-box="box-lan-d2"]')
        await expect(entry).to_contain_text("Second")
        await expect(entry.locator("a")).to_have_attribute("href", re.compile(r"^https://127\.0\.0\.1:\d+/admin$"))
        await page.locator("section.lan-boxes").screenshot(path=str(SCREENSHOTS / "admin-boxes-en-1280x800.png"))

        assert await asyncio.to_thread(second.terminate, 15) == 0
        await until_async(lambda: _has(at_first, "box-lan-d2", False), "the stopped box gone from the list")
        await expect(entry).to_have_count(0, timeout=10_000)
        await expect(page.locator("#boxes-empty")).to_be_visible()
        await context.close()


async def _has(client: httpx.AsyncClient, box_id: str, present: bool = True) -> bool:
    return (box_id in await _ids(client)) is present
