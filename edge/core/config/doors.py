"""How people and other boxes reach the box: web pages, serial console, LAN discovery, admin sign-in."""

from __future__ import annotations

import ipaddress

from pydantic import Field, ValidationInfo, field_validator

from edge.core.config.base import Port, Section
from edge.core.texts import N_


def _argon2_hash(value: str, how: str = "") -> str:
    if value and not value.startswith("$argon2"):
        raise ValueError(f"must be an argon2 hash of the PIN, never the PIN itself{how}")
    return value


class WebSection(Section):
    """The one HTTP port every web door shares (panel, watch, board, admin, API)."""

    host: str = Field(
        default="0.0.0.0",
        title=N_("Listen address"),
        description=N_("The address the web pages listen on (0.0.0.0: every network)."),
    )
    port: Port = Field(
        default=8080, title=N_("HTTP port"), description=N_("The one port of every web page and the API.")
    )
    panel_addresses: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        title=N_("Panel addresses"),
        description=N_("Addresses (or networks) whose requests act as the teacher without a PIN."),
    )
    teacher_pin_hash: str = Field(
        default="",
        repr=False,
        title=N_("Teacher PIN"),
        description=N_("Set on the accounts and PINs page; stored as an argon2 hash."),
    )
    public_url: str = Field(
        default="",
        title=N_("Public address"),
        description=N_(
            "The address students use to reach the box, if not the one they typed (e.g. https://box.school.example)."
        ),
    )
    https_port: int = Field(
        default=8443,
        ge=0,
        le=65535,
        title=N_("HTTPS port"),
        description=N_("The same pages over HTTPS with the box's own certificate; admins sign in only there. 0: off."),
    )

    @field_validator("panel_addresses")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as err:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 10.0.0.5/32)") from err
        return value

    @field_validator("teacher_pin_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        return _argon2_hash(value, " (set it with `classbox config set-pin`)")

    @field_validator("https_port")
    @classmethod
    def _second_port(cls, value: int, info: ValidationInfo) -> int:
        if value and value == info.data.get("port"):
            raise ValueError("must differ from web.port (HTTPS is served on a second port)")
        return value


class ConsoleSection(Section):
    """The technician's serial console."""

    serial_port: str = Field(
        default="",
        title=N_("Serial port"),
        description=N_("The technician's console port, e.g. /dev/ttyS0; empty: none."),
    )
    baudrate: int = Field(
        default=115200, ge=1200, le=4_000_000, title=N_("Baud rate"), description=N_("The serial port's speed.")
    )
    tech_pin_hash: str = Field(
        default="",
        repr=False,
        title=N_("Technician PIN"),
        description=N_("Set on the accounts and PINs page; stored as an argon2 hash."),
    )
    socket_path: str = Field(
        default="",
        title=N_("Console socket"),
        description=N_("Where `classbox console` reaches the running box; empty: console.sock in the state folder."),
    )
    idle_logout_s: float = Field(
        default=600.0,
        ge=10.0,
        le=86_400.0,
        title=N_("Console idle logout (s)"),
        description=N_("A technician who types nothing for this long is logged out."),
    )
    network_dir: str = Field(
        default="/etc/systemd/network",
        title=N_("Network settings folder"),
        description=N_("Where the console's `net set` writes its systemd-networkd .network file."),
    )
    net_confirm_s: float = Field(
        default=120.0,
        ge=5.0,
        le=3600.0,
        title=N_("Network change confirm time (s)"),
        description=N_("A network change not confirmed from the console within this time is undone."),
    )

    @field_validator("tech_pin_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        return _argon2_hash(value)


class DiscoverySection(Section):
    """Zeroconf advertisement of this box and browsing for peers."""

    enabled: bool = Field(
        default=True,
        title=N_("Find other boxes"),
        description=N_("Advertise this box and find others on the LAN (zeroconf)."),
    )
    interfaces: list[str] = Field(
        default_factory=list,
        title=N_("Interfaces"),
        description=N_("Addresses to advertise on and browse; empty: all."),
    )


class AdminSection(Section):
    """The IT staff's admin page: how long a signed-in session may sit unused."""

    idle_minutes: int = Field(
        default=30,
        ge=1,
        le=720,
        title=N_("Sign-out after idle minutes"),
        description=N_("An admin session unused this long ends (it ends 12 hours after sign-in in any case)."),
    )
