"""The `uploads` component: runs the outbox (sync/push.py) when `upload.tus_url` is set.

It queues every finished recording and its ink log, mirrors the outbox's progress into the
recordings catalogue, publishes `upload.progress`, `upload.done`, `upload.failed` and
`upload.retry` on the bus, and reports queue and byte counts as health metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from edge.board.export import BOARD_PDF
from edge.core.component import Component
from edge.core.events import EventBus
from edge.core.ports import BudgetSource, ConfigSource, DatabaseSource
from edge.recording.catalogue import Catalogue, Recording
from sync.push import Budget, Outbox, OutboxItem, file_sha256

log = logging.getLogger(__name__)

KINDS = ("recording", "ink", "board")


class SharedBudget:
    """The WAN budget the courseware component owns, looked up per chunk (it may restart)."""

    def __init__(self, budget: BudgetSource) -> None:
        self._budget = budget

    async def take(self, nbytes: int) -> None:
        """Take from the box's WAN budget; no budget running means no limit."""
        budget = self._budget()
        if budget is not None:
            await budget.take(nbytes)


def upload_metadata(box_id: str, recording: Recording) -> dict[str, str]:
    """What the server learns about a recording (tus Upload-Metadata)."""
    return {
        "box": box_id,
        "lesson": recording.lesson_id,
        "recording": recording.id,
        "title": recording.title,
        "started_at": f"{recording.started_at:.3f}",
        "duration_s": f"{recording.duration_s or 0:.3f}",
        "interrupted": "1" if recording.interrupted else "0",
    }


class Uploads(Component):
    """Delivers finished recordings to the cloud over tus, under the WAN budget."""

    name = "uploads"

    def __init__(
        self,
        *,
        config: ConfigSource,
        bus: EventBus,
        db: DatabaseSource,
        box_id: str,
        wan_budget: BudgetSource,
        save_board_pdf: Callable[[str], Awaitable[Path | None]],
        budget: Budget | None = None,
        retry_first_s: float = 2.0,
    ) -> None:
        """`save_board_pdf`: writes a recording's board beside it; `budget`: else the WAN budget as it is now."""
        super().__init__()
        self._config, self._bus, self._db, self._box_id = config, bus, db, box_id
        self._save_board_pdf = save_board_pdf
        self._budget = budget if budget is not None else SharedBudget(wan_budget)
        self._retry_first_s = retry_first_s
        self.outbox: Outbox | None = None

    @property
    def catalogue(self) -> Catalogue:
        """The recordings catalogue."""
        return Catalogue(self._db())

    async def start(self) -> None:
        cfg = self._config().upload
        if not cfg.tus_url:
            self.set_health("ok", "uploads off (upload.tus_url is not set)")
            return
        self.outbox = Outbox(
            self._config().box.state_dir / "outbox.db",
            cfg.tus_url,
            chunk_size=cfg.chunk_size_kb * 1024,
            token=cfg.token,
            budget=self._budget,
            retry_first_s=self._retry_first_s,
        )
        self.outbox.listen(self._on_outbox)
        for recording in self.catalogue.ready():
            self.queue(recording)
        self._report()

    async def run(self) -> None:
        if self.outbox is None:
            await asyncio.Event().wait()
            return
        with self._bus.subscribe("recording.") as finished:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.outbox.run(), name="uploads:outbox")
                group.create_task(self._queue_finished(finished), name="uploads:queue")

    async def stop(self) -> None:
        outbox, self.outbox = self.outbox, None
        if outbox is not None:
            outbox.close()

    async def _queue_finished(self, events: Any) -> None:
        async for event in events:
            if event.topic == "recording.finished":
                recording = self.catalogue.get(event.data["recording"]["id"])
                if recording is not None and recording.state == "ready":
                    await self._export_board(recording)
                    self.queue(recording)

    async def _export_board(self, recording: Recording) -> None:
        """The lesson's board as `board.pdf` beside the recording, uploaded with it (a failure only logs)."""
        try:
            await self._save_board_pdf(recording.id)
        except Exception:
            log.exception("the board of recording %s could not be exported", recording.id)

    def queue(self, recording: Recording) -> None:
        """Put a finished recording and its ink log in the outbox (idempotent)."""
        if self.outbox is None or recording.upload_state in ("uploaded",) or recording.segmented:
            return  # a recording kept as segments (no room to join) is queued once the recorder has joined it
        meta = upload_metadata(self._box_id, recording)
        files = [("recording", recording.path, recording.sha256), ("ink", recording.ink_path, recording.ink_sha256)]
        board = Path(recording.dir) / BOARD_PDF
        if board.is_file():
            files.append(("board", str(board), file_sha256(board)))
        for kind, path, sha256 in files:
            if path and sha256 and Path(path).is_file():
                self.outbox.add(Path(path), ref=recording.id, kind=kind, sha256=sha256, metadata=meta)
        if recording.upload_state == "local":
            self.catalogue.update(recording.id, upload_state="queued")
        self._maybe_confirmed(recording.id)  # delivered before a crash kept the catalogue from hearing it
        self._report()

    def _on_outbox(self, event: str, item: OutboxItem) -> None:
        bus = self._bus
        data = {"recording": item.ref, "kind": item.kind, "offset": item.offset, "size": item.size}
        if event == "progress":
            bus.publish("upload.progress", **data)
            if item.kind == "recording":
                self.catalogue.update(item.ref, upload_state="uploading", uploaded_bytes=item.offset)
        elif event == "done":
            bus.publish("upload.done", url=item.upload_url, **data)
            self._maybe_confirmed(item.ref)
        elif event == "failed":
            bus.publish("upload.failed", error=item.error, **data)
            self.catalogue.update(item.ref, upload_state="failed", upload_error=item.error)
        elif event == "retry":
            bus.publish("upload.retry", error=item.error, attempts=item.attempts, **data)
        self._report(item if event == "retry" else None)

    def _maybe_confirmed(self, recording_id: str) -> None:
        assert self.outbox is not None
        items = self.outbox.items(recording_id)
        if items and all(i.state == "done" for i in items):
            self.catalogue.update(recording_id, upload_state="uploaded", uploaded_at=time.time(), upload_error="")
            log.info("recording %s is on the server", recording_id)
            self._bus.publish("recording.uploaded", recording=recording_id)

    def _report(self, retrying: OutboxItem | None = None) -> None:
        if self.outbox is None:
            return
        stats = self.outbox.stats()
        metrics = {
            "upload_queue": stats.queued,
            "upload_bytes_pending": stats.bytes_pending,
            "upload_bytes_sent": stats.bytes_sent,
            "uploads_done": stats.done,
            "uploads_failed": stats.failed,
            "upload_retries": stats.retries,
        }
        if stats.failed:
            self.set_health("degraded", f"{stats.failed} uploads refused; see GET /api/recordings", **metrics)
        elif retrying is not None:
            self.set_health("degraded", f"upload retrying: {retrying.error}", **metrics)
        else:
            self.set_health("ok", f"{stats.queued} files waiting to upload", **metrics)
