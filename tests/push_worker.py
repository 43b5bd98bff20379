"""A process that queues one file in an outbox and uploads it, for the SIGKILL-mid-upload test.

    python tests/push_worker.py DB URL FILE CHUNK_BYTES DELAY_S

DELAY_S slows every chunk down (a stand-in for a slow WAN budget) so the test can kill it midway.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sync.push import Outbox, file_sha256


class SlowBudget:
    """Lets every chunk through after a pause."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    async def take(self, nbytes: int) -> None:
        """Wait, then allow the chunk."""
        await asyncio.sleep(self.delay_s)


async def main(db: Path, url: str, path: Path, chunk: int, delay_s: float) -> None:
    """Queue `path` (once) and deliver the queue."""
    outbox = Outbox(db, url, chunk_size=chunk, budget=SlowBudget(delay_s), retry_first_s=0.1, retry_max_s=0.5)
    try:
        outbox.add(path, ref="lesson-1", kind="recording", sha256=file_sha256(path), metadata={"box": "test"})
        await outbox.drain()
    finally:
        outbox.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])))
