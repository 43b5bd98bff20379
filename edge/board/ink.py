"""The board's ink: one stroke model for the pen, touch and the board page, in the spirit of W3C InkML.

A stroke has an id, a tool (pen, highlighter, eraser), a colour, a width (a fraction of the board's
width) and points `(x, y, t, p)`: x and y in 0..1 of the board, t seconds since the stroke began,
p the pressure in 0..1. Strokes are simplified (Ramer-Douglas-Peucker) before they leave the box
and sent while they are drawn, a piece at a time; `BoardState` is what a late joiner is given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Tool = Literal["pen", "highlighter", "eraser"]
TOOLS: tuple[str, ...] = ("pen", "highlighter", "eraser")
STROKE_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
MIN_WIDTH, MAX_WIDTH = 0.0005, 0.1
MAX_POINTS_PER_STROKE = 4_000  # simplified: a very long stroke; its JSON stays well under a browser's 256 KiB message
MAX_STROKES_PER_PAGE = 5_000
DECIMALS_XY = 4  # 1/10000 of the board: finer than any display's pixel
DECIMALS_T = 3
DECIMALS_P = 2


class InkError(ValueError):
    """Ink that does not fit the stroke model (the door answers 400 and nothing changes)."""


@dataclass(frozen=True)
class Point:
    """One sample of a stroke: position on the board (0..1), seconds since the stroke began, pressure (0..1)."""

    x: float
    y: float
    t: float = 0.0
    p: float = 0.5

    def wire(self) -> list[float]:
        """The point as the data channel and the ink log carry it (rounded: a few bytes each)."""
        return [
            round(self.x, DECIMALS_XY),
            round(self.y, DECIMALS_XY),
            round(self.t, DECIMALS_T),
            round(self.p, DECIMALS_P),
        ]


def point_from(raw: Any) -> Point:
    """A point from `[x, y, t, p]` (t and p optional); InkError when it is not one."""
    if not isinstance(raw, list | tuple) or not 2 <= len(raw) <= 4:
        raise InkError("a point is [x, y, t, p]")
    values = [_number(v) for v in raw]
    x, y = values[0], values[1]
    t = values[2] if len(values) > 2 else 0.0
    p = values[3] if len(values) > 3 else 0.5
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 and 0.0 <= p <= 1.0 and 0.0 <= t <= 24 * 3600):
        raise InkError("x, y and pressure must be within 0..1, t at least 0")
    return Point(x, y, t, p)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InkError("a point's values must be numbers")
    return float(value)


@dataclass
class Stroke:
    """One stroke on one page of the board."""

    id: str
    tool: str = "pen"
    color: str = "#000000"
    width: float = 0.004
    points: list[Point] = field(default_factory=list)
    done: bool = False

    def header(self) -> dict[str, Any]:
        """What `board.stroke.begin` carries."""
        return {"id": self.id, "tool": self.tool, "color": self.color, "width": round(self.width, 5)}

    def to_json(self) -> dict[str, Any]:
        """The whole stroke (for a late joiner and the export)."""
        return {**self.header(), "points": [p.wire() for p in self.points], "done": self.done}


def new_stroke(stroke_id: str, tool: str = "pen", color: str = "#000000", width: float = 0.004) -> Stroke:
    """A checked, empty stroke; InkError for a bad id, tool, colour or width."""
    if not isinstance(stroke_id, str) or not STROKE_ID.match(stroke_id):
        raise InkError("a stroke id is 1 to 40 letters, digits, - or _")
    if tool not in TOOLS:
        raise InkError(f"the tool must be one of {', '.join(TOOLS)}")
    if not isinstance(color, str) or not COLOUR.match(color):
        raise InkError("the colour must be #rrggbb")
    width = _number(width)
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise InkError(f"the width must be within {MIN_WIDTH}..{MAX_WIDTH} of the board's width")
    return Stroke(stroke_id, tool, color.lower(), width)


def simplify(points: Sequence[Point], epsilon: float) -> list[Point]:
    """Ramer-Douglas-Peucker: the fewest points within `epsilon` (board units) of the line; ends kept."""
    return [points[i] for i in kept_indices(points, epsilon)]


def kept_indices(points: Sequence[Point], epsilon: float) -> list[int]:
    """The indices `simplify` keeps, in order."""
    if len(points) < 3 or epsilon <= 0:
        return list(range(len(points)))
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    spans = [(0, len(points) - 1)]
    while spans:  # iterative: a long stroke never hits the recursion limit
        first, last = spans.pop()
        index, distance = _farthest(points, first, last)
        if distance > epsilon:
            keep[index] = True
            spans.extend(((first, index), (index, last)))
    return [i for i, kept in enumerate(keep) if kept]


def _farthest(points: Sequence[Point], first: int, last: int) -> tuple[int, float]:
    a, b = points[first], points[last]
    best, far = first, -1.0
    for i in range(first + 1, last):
        d = _segment_distance(points[i], a, b)
        if d > far:
            best, far = i, d
    return best, far


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    dx, dy = b.x - a.x, b.y - a.y
    length2 = dx * dx + dy * dy
    if length2 == 0:
        return math.hypot(p.x - a.x, p.y - a.y)
    s = max(0.0, min(1.0, ((p.x - a.x) * dx + (p.y - a.y) * dy) / length2))
    return math.hypot(p.x - a.x - s * dx, p.y - a.y - s * dy)


class StrokeBuilder:
    """Collects a stroke's raw points and hands out simplified pieces while it is drawn."""

    def __init__(self, stroke: Stroke, epsilon: float) -> None:
        self.stroke = stroke
        self.epsilon = epsilon
        self._pending: list[Point] = []
        self.raw_points = 0

    def add(self, points: Iterable[Point]) -> None:
        """Queue raw points (they leave on the next `flush`)."""
        for point in points:
            self._pending.append(point)
            self.raw_points += 1

    def pending_span_s(self) -> float:
        """Stroke time the queued points cover."""
        return self._pending[-1].t - self._pending[0].t if self._pending else 0.0

    def flush(self, final: bool = False) -> list[Point]:
        """Simplify what is queued against the last point sent; the points to send now (also kept in the stroke).

        The newest point waits for the next piece unless `final`: whether it is a corner depends on what follows.
        """
        sent = self.stroke.points
        anchor = sent[-1:] if sent else []
        run = anchor + self._pending
        if not run or (len(run) < 3 and not final and anchor):
            return []
        kept = [i - len(anchor) for i in kept_indices(run, self.epsilon) if i >= len(anchor)]
        if not final:
            kept = kept[:-1]
        out = [self._pending[i] for i in kept]
        self._pending = self._pending[kept[-1] + 1 :] if kept else self._pending
        if final:
            self._pending = []
        if len(sent) + len(out) > MAX_POINTS_PER_STROKE:
            raise InkError(f"a stroke has at most {MAX_POINTS_PER_STROKE} points")
        sent.extend(out)
        return out


@dataclass
class Page:
    """What the board shows under the ink: a courseware item (and which page of it), or a blank board."""

    url: str = ""
    type: str = ""
    course: str = ""
    path: str = ""
    index: int = 0
    count: int = 1
    image: str = ""  # the page as a picture (a PDF page the box rendered, or the image itself)

    def key(self) -> tuple[str, int]:
        """Which page of which item: strokes belong to it."""
        return (self.url, self.index)

    def to_json(self) -> dict[str, Any]:
        """The page as `board.page` and `board.state` carry it."""
        return {
            "url": self.url,
            "type": self.type,
            "course": self.course,
            "path": self.path,
            "index": self.index,
            "count": self.count,
            "image": self.image,
        }


@dataclass
class BoardState:
    """The board now: the page on show and every page's strokes (a late joiner gets the current one)."""

    page: Page = field(default_factory=Page)
    pages: dict[tuple[str, int], list[Stroke]] = field(default_factory=dict)

    def strokes(self) -> list[Stroke]:
        """The strokes of the page on show, oldest first."""
        return self.pages.setdefault(self.page.key(), [])

    def find(self, stroke_id: str) -> Stroke | None:
        """A stroke of the page on show by id."""
        return next((s for s in self.strokes() if s.id == stroke_id), None)

    def add(self, stroke: Stroke) -> None:
        """Put a new stroke on the page on show; InkError when its id is taken or the page is full."""
        strokes = self.strokes()
        if len(strokes) >= MAX_STROKES_PER_PAGE:
            raise InkError(f"a page holds at most {MAX_STROKES_PER_PAGE} strokes: clear it first")
        if self.find(stroke.id) is not None:
            raise InkError(f"stroke {stroke.id} already exists")
        strokes.append(stroke)

    def undo(self) -> Stroke | None:
        """Take back the newest finished stroke of the page on show (None when there is none)."""
        strokes = self.strokes()
        for i in range(len(strokes) - 1, -1, -1):
            if strokes[i].done:
                return strokes.pop(i)
        return None

    def clear(self) -> None:
        """Remove every stroke of the page on show."""
        self.pages[self.page.key()] = []

    def snapshot(self) -> dict[str, Any]:
        """The page on show and its strokes (what `board.state` carries)."""
        return {"page": self.page.to_json(), "strokes": [s.to_json() for s in self.strokes()]}
