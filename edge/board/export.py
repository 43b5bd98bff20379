"""A lesson's board as PDF pages: each page shown during the lesson, its picture under its ink as vectors.

The board is read back from the recording's ink log (`board.*` lines, the same events students
got); the page pictures come from the courseware cache (PDF pages rendered on the box, images as
they are). The teacher downloads it (`/api/recordings/<id>/board.pdf`) and it is uploaded beside
the recording as `board.pdf`.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpdf import FPDF

from edge.board.ink import Page, Point, Stroke
from sync.atomic import write_atomic

log = logging.getLogger(__name__)

BOARD_PDF = "board.pdf"
PAGE_MM = (320.0, 180.0)  # 16:9, like the board
PICTURES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
HIGHLIGHTER_OPACITY = 0.35


@dataclass
class BoardPage:
    """One page of the lesson's board: what was shown, and the ink left on it at the end."""

    page: Page
    strokes: list[Stroke] = field(default_factory=list)


def replay(lines: Iterable[dict[str, Any]]) -> list[BoardPage]:
    """The pages shown, in order, from ink-log lines (each with its last ink); blank pages without ink left out."""
    pages: dict[tuple[str, int], BoardPage] = {}
    current = _page(pages, Page())
    for line in lines:
        topic, data = line.get("topic", ""), line.get("data") or {}
        if not isinstance(topic, str) or not topic.startswith("board.") or not isinstance(data, dict):
            continue
        try:
            current = _apply(pages, current, topic, data)
        except (KeyError, TypeError, ValueError, IndexError):
            log.warning("ink log: a %s line could not be read; skipped", topic)
    return [p for p in pages.values() if p.strokes or p.page.image]


def _page(pages: dict[tuple[str, int], BoardPage], page: Page) -> BoardPage:
    return pages.setdefault(page.key(), BoardPage(page))


def _apply(pages: dict[tuple[str, int], BoardPage], current: BoardPage, topic: str, data: dict[str, Any]) -> BoardPage:
    if topic == "board.page":
        shown = data["page"]
        fields = {k: shown[k] for k in ("url", "type", "course", "path", "index", "count", "image") if k in shown}
        current = _page(pages, Page(**fields))
        current.strokes = [_stroke(s) for s in data.get("strokes", [])]
    elif topic == "board.stroke.begin":
        current.strokes.append(_stroke(data))
    elif topic == "board.stroke.points":
        stroke = next((s for s in current.strokes if s.id == data["id"]), None)
        if stroke is not None:
            stroke.points.extend(_point(p) for p in data["points"])
    elif topic == "board.undo":
        current.strokes = [s for s in current.strokes if s.id != data["id"]]
    elif topic == "board.clear":
        current.strokes = []
    return current


def _stroke(data: dict[str, Any]) -> Stroke:
    points = [_point(p) for p in data.get("points", [])]
    return Stroke(str(data["id"]), str(data["tool"]), str(data["color"]), float(data["width"]), points, True)


def _point(raw: list[float]) -> Point:
    return Point(
        float(raw[0]), float(raw[1]), float(raw[2]) if len(raw) > 2 else 0.0, float(raw[3]) if len(raw) > 3 else 0.5
    )


def read_ink_log(path: Path) -> list[dict[str, Any]]:
    """The ink log's lines (a torn last line, from a power cut, is left out)."""
    lines = []
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue
    return lines


def render_pdf(pages: list[BoardPage], pictures: dict[tuple[str, int], bytes]) -> bytes:
    """The pages as a PDF: each page's picture (when there is one) fitted in, its strokes drawn over it as vectors."""
    pdf = FPDF(orientation="portrait", unit="mm", format=PAGE_MM)  # fpdf2 takes (width, height) as portrait
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    width, height = PAGE_MM
    for board_page in pages or [BoardPage(Page())]:
        pdf.add_page()
        picture = pictures.get(board_page.page.key())
        if picture is not None:
            try:
                pdf.image(io.BytesIO(picture), x=0, y=0, w=width, h=height, keep_aspect_ratio=True)
            except Exception as err:  # a picture fpdf2 cannot read: the ink is still worth having
                log.warning("board export: the picture of %s left out: %s", board_page.page.url, err)
        for stroke in board_page.strokes:
            _draw(pdf, stroke, width, height)
    return bytes(pdf.output())


def _draw(pdf: FPDF, stroke: Stroke, width: float, height: float) -> None:
    if not stroke.points:
        return
    red, green, blue = (int(stroke.color[i : i + 2], 16) for i in (1, 3, 5))
    if stroke.tool == "eraser":
        red = green = blue = 255  # a PDF has no "erase": white over the ink (and over the picture)
    opacity = HIGHLIGHTER_OPACITY if stroke.tool == "highlighter" else 1.0
    points = [(p.x * width, p.y * height) for p in stroke.points]
    if len(points) == 1:
        points.append(points[0])
    style = {"stroke_opacity": opacity, "stroke_cap_style": "ROUND", "stroke_join_style": "ROUND"}
    with pdf.local_context(line_width=max(0.2, stroke.width * width), **style):
        pdf.set_draw_color(red, green, blue)
        pdf.polyline(points)


Pictures = Callable[[Page], Awaitable[bytes | None]]


async def export(ink_log: Path, picture_of: Pictures) -> bytes:
    """The board of a recording's ink log as PDF bytes (pictures fetched by `picture_of`)."""
    pages = replay(await asyncio.to_thread(read_ink_log, ink_log))
    pictures: dict[tuple[str, int], bytes] = {}
    for board_page in pages:
        picture = await picture_of(board_page.page) if board_page.page.image else None
        if picture is not None:
            pictures[board_page.page.key()] = picture
    return await asyncio.to_thread(render_pdf, pages, pictures)


def save(directory: Path, data: bytes) -> Path:
    """Write `board.pdf` into a recording's folder atomically."""
    path = directory / BOARD_PDF
    write_atomic(path, data)
    return path
