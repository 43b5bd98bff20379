"""The admin page's "Live to cloud" part: the WHIP uplink's state and a check of the address and token.

The settings themselves (mode, WHIP address, token, layers, player address) are the generated
settings form of the `cloud` group; this adds what a form cannot say: whether publishing works.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from edge.core.errors import StreamUnavailable
from edge.doors.web.deps import BoxDep
from edge.doors.web.routes.accounts import AdminChangeDep, AdminDep

router = APIRouter()


@router.get("/api/admin/cloud")
async def cloud_status(box: BoxDep, who: AdminDep) -> dict[str, Any]:
    """Mode, state, the last error in plain words, bitrate and reconnects of publishing to the cloud server."""
    return box.uplink_status()


@router.post("/api/admin/cloud/check")
async def cloud_check(box: BoxDep, who: AdminChangeDep) -> dict[str, Any]:
    """Publish a test session to the configured address with the saved token and end it: ok, or why not."""
    try:
        error = await box.check_uplink()
    except StreamUnavailable as err:
        error = str(err)
    return {"ok": not error, "error": error}
