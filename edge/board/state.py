"""The board: what it shows (a courseware item, which page of it) and the ink drawn on it.

Ink from the pen or touch (evdev) and from the board page's pointer events comes through `Board`:
each stroke is simplified here, before it leaves the box, and published while it is drawn
(`board.stroke.begin`, `board.stroke.points`, `board.stroke.end`), with `board.page`, `board.undo`
and `board.clear`. Every event carries `seq`; `Board.snapshot()` (a late joiner's `board.state`)
carries the `seq` it is current to, so a viewer drops events it already has.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pypdfium2  # type: ignore[import-untyped]

from edge.board.ink import BoardState, InkError, Page, Point, Stroke, StrokeBuilder, new_stroke, point_from
from edge.core.events import EventBus
from edge.courseware import service as courseware
from edge.courseware.service import CoursewarePort
from sync.chunks import COURSE_RE, valid_item_path
from sync.errors import NotInStore, StoreClosed

PDF = "application/pdf"
MAX_PDF_BYTES = 64 * 1024 * 1024
MAX_OPS = 256
MAX_POINTS_PER_OP = 1024
FLUSH_SPAN_S = 0.2  # a stroke leaves in pieces this long: it grows 5 times a second, at 1/20 of the low layer
RENDER_WIDTH = 1600
RENDERED_KEPT = 16
STATE_MESSAGE_BYTES = 16 * 1024  # well under any browser's SCTP message limit


@dataclass(frozen=True)
class InkOp:
    """One checked operation of a batch from the board page."""

    op: str
    id: str = ""
    stroke: Stroke | None = None
    points: tuple[Point, ...] = ()


class Board:
    """The board's page and ink: one owner, every door and the pen go through it."""

    def __init__(self, bus: EventBus, epsilon: Callable[[], float]) -> None:
        self._bus = bus
        self._epsilon = epsilon
        self.state = BoardState()
        self._drawing: dict[str, StrokeBuilder] = {}
        self.seq = 0
        self.raw_points = 0
        self.sent_points = 0

    def _publish(self, topic: str, **data: Any) -> None:
        self.seq += 1
        self._bus.publish(topic, seq=self.seq, **data)

    def snapshot(self) -> dict[str, Any]:
        """The page on show and its strokes (those being drawn too), current to `seq`."""
        return {**self.state.snapshot(), "seq": self.seq}

    def state_messages(self, limit: int = STATE_MESSAGE_BYTES) -> list[str]:
        """The snapshot as `board.state` messages of about `limit` bytes at most (the first one resets)."""
        snap = self.snapshot()
        messages: list[str] = []
        batch: list[dict[str, Any]] = []
        size = 0
        for stroke in snap["strokes"]:
            encoded = len(json.dumps(stroke, separators=(",", ":")))
            if batch and size + encoded > limit:
                messages.append(_state_message(snap, batch, not messages))
                batch, size = [], 0
            batch.append(stroke)
            size += encoded
        messages.append(_state_message(snap, batch, not messages))
        return messages

    # -- strokes -----------------------------------------------------------------------------------

    def begin(self, stroke: Stroke, points: Iterable[Point] = ()) -> None:
        """Start a stroke on the page on show; InkError when its id is taken or the page is full."""
        self.state.add(stroke)
        builder = self._drawing[stroke.id] = StrokeBuilder(stroke, self._epsilon())
        builder.add(points)
        first = builder.flush(final=False) if builder.raw_points > 1 else []
        self._publish("board.stroke.begin", **stroke.header(), points=[p.wire() for p in first])
        self.sent_points += len(first)

    def add(self, stroke_id: str, points: Iterable[Point], flush: bool = True) -> None:
        """More points of a stroke being drawn; they leave now (`flush`) or once they span FLUSH_SPAN_S of it."""
        builder = self._builder(stroke_id)
        builder.add(points)
        if flush or builder.pending_span_s() >= FLUSH_SPAN_S:
            self._send(builder, final=False)

    def end(self, stroke_id: str, points: Iterable[Point] = ()) -> Stroke:
        """The pen lifted: the stroke's last points leave and it is done."""
        builder = self._builder(stroke_id)
        builder.add(points)
        self._send(builder, final=True)
        del self._drawing[stroke_id]
        builder.stroke.done = True
        self.raw_points += builder.raw_points
        self._publish("board.stroke.end", id=stroke_id)
        return builder.stroke

    def drawing(self, stroke_id: str) -> bool:
        """True while stroke `stroke_id` is being drawn."""
        return stroke_id in self._drawing

    def _builder(self, stroke_id: str) -> StrokeBuilder:
        builder = self._drawing.get(stroke_id)
        if builder is None:
            raise InkError(f"no stroke {stroke_id} is being drawn")
        return builder

    def _send(self, builder: StrokeBuilder, final: bool) -> None:
        points = builder.flush(final)
        if points:
            self.sent_points += len(points)
            self._publish("board.stroke.points", id=builder.stroke.id, points=[p.wire() for p in points])

    def undo(self) -> str | None:
        """Take back the newest finished stroke of the page on show; its id, or None when there is none."""
        stroke = self.state.undo()
        if stroke is None:
            return None
        self._publish("board.undo", id=stroke.id)
        return stroke.id

    def clear(self) -> None:
        """Wipe the page on show."""
        self._finish_drawing()
        self.state.clear()
        self._publish("board.clear")

    def _finish_drawing(self) -> None:
        for stroke_id in list(self._drawing):
            self.end(stroke_id)

    # -- pages --------------------------------------------------------------------------------------

    def announce(self) -> None:
        """Publish the page on show and its strokes again (a lesson's ink log then begins with them)."""
        self._publish("board.page", page=self.state.page.to_json(), strokes=[s.to_json() for s in self.state.strokes()])

    def show(self, page: Page) -> None:
        """Show another page (its own strokes come back with it)."""
        self._finish_drawing()
        self.state.page = page
        self._publish("board.page", page=page.to_json(), strokes=[s.to_json() for s in self.state.strokes()])

    def turn(self, index: int) -> Page:
        """Go to page `index` of the item on show; InkError when it has no such page."""
        page = self.state.page
        if not 0 <= index < page.count:
            raise InkError(f"the item on the board has pages 1 to {page.count}")
        shown = Page(page.url, page.type, page.course, page.path, index, page.count, _image(page, index))
        self.show(shown)
        return shown

    # -- a batch from the board page ---------------------------------------------------------------

    def apply(self, ops: Any) -> int:
        """Apply a batch of the board page's operations, all or none (InkError says why); how many were applied."""
        checked = self.check(ops)
        for op in checked:
            if op.op == "begin" and op.stroke is not None:
                self.begin(op.stroke, op.points)
            elif op.op == "points":
                self.add(op.id, op.points, flush=False)
            elif op.op == "end":
                self.end(op.id, op.points)
            elif op.op == "undo":
                self.undo()
            elif op.op == "clear":
                self.clear()
        return len(checked)

    def check(self, ops: Any) -> list[InkOp]:
        """The batch as checked operations; InkError (and nothing changed) when any is wrong."""
        if not isinstance(ops, list) or not 1 <= len(ops) <= MAX_OPS:
            raise InkError(f"ops must be a list of 1 to {MAX_OPS} operations")
        drawing = set(self._drawing)
        taken = {s.id for s in self.state.strokes()}
        checked = []
        for i, raw in enumerate(ops):
            try:
                op = _parse_op(raw)
                _fits(op, drawing, taken)
            except InkError as err:
                raise InkError(f"operation {i + 1}: {err}") from None
            checked.append(op)
        return checked


def _state_message(snap: dict[str, Any], strokes: list[dict[str, Any]], first: bool) -> str:
    message = {"type": "board.state", "seq": snap["seq"], "reset": first, "strokes": strokes}
    if first:
        message["page"] = snap["page"]
    return json.dumps(message, separators=(",", ":"))


def _parse_op(raw: Any) -> InkOp:
    if not isinstance(raw, dict):
        raise InkError("an operation is an object")
    kind = raw.get("op")
    points = raw.get("points", [])
    if not isinstance(points, list) or len(points) > MAX_POINTS_PER_OP:
        raise InkError(f"points is a list of at most {MAX_POINTS_PER_OP}")
    parsed = tuple(point_from(p) for p in points)
    if kind == "begin":
        stroke = new_stroke(
            raw.get("id", ""), raw.get("tool", "pen"), raw.get("color", "#000000"), raw.get("width", 0.004)
        )
        return InkOp("begin", stroke.id, stroke, parsed)
    if kind in ("points", "end"):
        return InkOp(kind, str(raw.get("id", "")), None, parsed)
    if kind in ("undo", "clear"):
        return InkOp(kind)
    raise InkError("op must be begin, points, end, undo or clear")


def _fits(op: InkOp, drawing: set[str], taken: set[str]) -> None:
    """Check `op` against the strokes before it (those of the batch too); InkError when it does not fit."""
    if op.op == "begin":
        if op.id in taken:
            raise InkError(f"stroke {op.id} already exists")
        drawing.add(op.id)
        taken.add(op.id)
    elif op.op in ("points", "end") and op.id not in drawing:
        raise InkError(f"no stroke {op.id} is being drawn")
    elif op.op == "end":
        drawing.discard(op.id)
    elif op.op == "clear":
        drawing.clear()
        taken.clear()


def _image(page: Page, index: int) -> str:
    """The picture students and the board show under the ink for page `index` of the item."""
    if page.type == PDF:
        return f"/board/render/{page.course}/{page.path}?page={index}"
    if page.type.startswith("image/"):
        return page.url
    return ""


# -- opening an item ---------------------------------------------------------------------------------


async def open_item(
    cw: CoursewarePort | None, bus: EventBus, course: str, path: str, board: Board | None = None
) -> dict[str, Any]:
    """Show a cached courseware item on the board (`board.open`, `board.page`); NotInStore, StoreClosed."""
    if not COURSE_RE.match(course) or not valid_item_path(path):
        raise NotInStore("not a courseware item")
    running = courseware.running(cw)
    hold = await running.open(course, path)  # the item is there (and now counts as used)
    try:
        content_type = hold.item.content_type
        count = await asyncio.to_thread(_pdf_page_count, hold) if content_type == PDF else 1
    finally:
        await running.release(hold)
    shown = {"course": course, "path": path, "url": f"/courseware/{course}/{path}", "type": content_type}
    bus.publish("board.open", **shown)
    if board is not None:
        page = Page(str(shown["url"]), content_type, course, path, 0, count)
        board.show(Page(page.url, page.type, course, path, 0, count, _image(page, 0)))
    return {**shown, "pages": count}


def _read_all(hold: Any) -> bytes:
    if hold.item.size > MAX_PDF_BYTES:
        raise NotInStore(f"the PDF is larger than {MAX_PDF_BYTES // (1024 * 1024)} MB")
    return b"".join(hold.read())


def _pdf_page_count(hold: Any) -> int:
    try:
        pdf = pypdfium2.PdfDocument(_read_all(hold))
    except pypdfium2.PdfiumError as err:
        raise NotInStore(f"the PDF cannot be read: {err}") from err
    try:
        return max(1, len(pdf))
    finally:
        pdf.close()


async def render_pdf_page(cw: CoursewarePort | None, course: str, path: str, index: int) -> bytes:
    """Page `index` of a cached PDF as a PNG (rendered on the box, the last few kept); NotInStore without it."""
    if not COURSE_RE.match(course) or not valid_item_path(path):
        raise NotInStore("not a courseware item")
    running = courseware.running(cw)
    hold = await running.open(course, path)
    try:
        if hold.item.content_type != PDF:
            raise NotInStore("the item is not a PDF")
        key = (hold.item.sha256, index)
        if key not in _RENDERED:
            data = await asyncio.to_thread(_read_all, hold)
            _RENDERED[key] = await asyncio.to_thread(_render, data, index)
            while len(_RENDERED) > RENDERED_KEPT:
                _RENDERED.popitem(last=False)
        _RENDERED.move_to_end(key)
        return _RENDERED[key]
    finally:
        await running.release(hold)


async def page_picture(cw: CoursewarePort | None, page: Page) -> bytes | None:
    """The picture under a page's ink (a rendered PDF page, or the image), for the export; None without one."""
    try:
        if page.type == PDF:
            return await render_pdf_page(cw, page.course, page.path, page.index)
        if not page.type.startswith("image/"):
            return None
        running = courseware.running(cw)
        hold = await running.open(page.course, page.path)
        try:
            return await asyncio.to_thread(_read_all, hold)
        finally:
            await running.release(hold)
    except (NotInStore, StoreClosed):
        return None  # gone from the cache since the lesson: the ink alone


_RENDERED: OrderedDict[tuple[str, int], bytes] = OrderedDict()


def _render(data: bytes, index: int) -> bytes:
    try:
        pdf = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as err:
        raise NotInStore(f"the PDF cannot be read: {err}") from err
    try:
        if not 0 <= index < len(pdf):
            raise NotInStore(f"the PDF has pages 0 to {len(pdf) - 1}")
        page = pdf[index]
        scale = RENDER_WIDTH / max(1.0, page.get_width())
        image = page.render(scale=scale).to_pil()
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()
    finally:
        pdf.close()
