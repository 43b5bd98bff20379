"""First boot of a box: its id written into the config, its HTTPS certificate and the admin setup code made.

The image runs this once before the daemon (classbox-firstboot.service), so the console and
`classbox admin setup-code` have the code and the fingerprint before anyone opens a page. Running it
again changes nothing: the id, the certificate and an unspent code are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.box import Box
from edge.core.config import BoxConfig, load_config, save_config
from edge.core.events import EventBus


@dataclass(frozen=True)
class FirstBoot:
    """What the box is known by after its first boot (no secret: the setup code stays in its 0600 file)."""

    box_id: str
    config_written: bool
    fingerprint: str | None
    setup_code_file: Path | None


def first_boot(path: Path, state_dir: Path | None = None) -> FirstBoot:
    """Give the box its id (saved in the config file at `path`, made if missing), certificate and setup code."""
    config = load_config(path) if path.exists() else BoxConfig()
    if state_dir is not None and "state_dir" not in config.box.model_fields_set:
        config.box.state_dir = state_dir
    written = not config.box.id
    if written:
        config.box.id = config.box.resolved_id()
        save_config(config, path)
    box = Box(config, EventBus())
    box.open()  # the state database, the setup code while no admin exists, the certificate
    try:
        code_file = box.accounts.code_path if box.needs_setup() else None
    finally:
        box.close()
    fingerprint = box.certificate.fingerprint if box.certificate else None
    return FirstBoot(config.box.id, written, fingerprint, code_file)
