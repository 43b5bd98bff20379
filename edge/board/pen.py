"""The `board-input` component: the board's pen and touch (drivers/board.py) drawn on the board's state.

It also publishes the board as it is when a lesson starts, so the recording's ink log begins with it.

The driver's thread hands each contact to the loop; a contact going down begins a stroke, its
moves add points (they leave in pieces of FLUSH_SPAN_S), going up ends it: the same pipeline as the
board page's pointer events (the bus, the viewers' data channels, the recording's ink log).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from drivers.board import BoardInput, Contact, Mapping, open_board_input
from drivers.errors import DriverError
from edge.board.ink import InkError, Point, new_stroke
from edge.board.state import Board
from edge.core.component import Component
from edge.core.events import EventBus
from edge.core.ports import ConfigSource

log = logging.getLogger(__name__)

PEN_COLOUR = "#1a1a1a"
PEN_WIDTH = 0.003
ERASER_WIDTH = 0.03
QUEUE_CONTACTS = 4096  # ~30 s of a pen at 133 Hz: the loop never falls that far behind unless it is stuck


class BoardInputComponent(Component):
    """Runs the configured pen or touch input and draws its strokes on the board."""

    name = "board-input"

    def __init__(self, config: ConfigSource, bus: EventBus, board: Board) -> None:
        super().__init__()
        self._config, self._bus, self._board = config, bus, board
        self.input: BoardInput | None = None
        self._queue: asyncio.Queue[Contact] = asyncio.Queue(QUEUE_CONTACTS)
        self._strokes: dict[str, tuple[str, float]] = {}  # contact -> (stroke id, its first sample's time)
        self._ids = itertools.count(1)
        self.dropped = 0

    async def start(self) -> None:
        cfg = self._config().board
        mapping = Mapping(cfg.rotation, (cfg.area_left, cfg.area_top, cfg.area_right, cfg.area_bottom))
        try:
            self.input = open_board_input(cfg.source, cfg.device, mapping)
        except DriverError as err:
            self.set_health("degraded", f"board input off: {err}")
            return
        if self.input is None:
            self.set_health("ok", "no pen or touch input configured (the board page still draws)")
            return
        loop = asyncio.get_running_loop()

        def hand_over(contact: Contact) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under a stopping driver
                loop.call_soon_threadsafe(self._offer, contact)

        self.input.start(hand_over)
        self.set_health("ok", f"board input: {self.input.source.label}")

    def _offer(self, contact: Contact) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(contact)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._draw_contacts(), name="board-input:contacts")
            group.create_task(self._announce_at_lesson_start(), name="board-input:lessons")

    async def _announce_at_lesson_start(self) -> None:
        """Each lesson's recording begins with the board as it is (its ink log is read back for the export)."""
        with self._bus.subscribe("lesson.started") as started:
            async for _ in started:
                self._board.announce()

    async def _draw_contacts(self) -> None:
        while True:
            contact = await self._queue.get()
            try:
                self.draw(contact)
            except InkError as err:  # e.g. the page is full: this stroke is dropped, the next may fit
                log.warning("board input: %s", err)
                self._strokes.pop(contact.contact, None)
            self._report()

    def draw(self, contact: Contact) -> None:
        """One contact onto the board: begin, add to or end its stroke."""
        board = self._board
        if contact.kind == "down":
            stroke_id = f"e{next(self._ids)}"
            tool = "eraser" if contact.tool == "eraser" else "pen"
            width = ERASER_WIDTH if tool == "eraser" else PEN_WIDTH
            board.begin(new_stroke(stroke_id, tool, PEN_COLOUR, width), [_point(contact, contact.t)])
            self._strokes[contact.contact] = (stroke_id, contact.t)
            return
        known = self._strokes.get(contact.contact)
        if known is None:
            return  # its stroke went (a page turn or clear ended it)
        stroke_id, began = known
        if not board.drawing(stroke_id):
            self._strokes.pop(contact.contact, None)
            return
        if contact.kind == "move":
            board.add(stroke_id, [_point(contact, began)], flush=False)
        else:
            del self._strokes[contact.contact]
            board.end(stroke_id)

    def _report(self) -> None:
        if self.input is None:
            return
        if self.input.error:
            self.set_health("degraded", self.input.error, contacts=self.input.contacts, dropped=self.dropped)
        else:
            self.set_health("ok", f"board input: {self.input.source.label}", contacts=self.input.contacts)

    async def stop(self) -> None:
        board_input, self.input = self.input, None
        if board_input is not None:
            await asyncio.to_thread(board_input.close)
        for stroke_id, _ in self._strokes.values():
            with contextlib.suppress(InkError):
                self._board.end(stroke_id)
        self._strokes.clear()


def _point(contact: Contact, began: float) -> Point:
    return Point(contact.x, contact.y, max(0.0, contact.t - began), contact.pressure)
