"""The board's stroke model, its simplification, incremental sending and the state a late joiner gets."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from edge.board.ink import InkError, Page, Point, StrokeBuilder, new_stroke, simplify
from edge.board.state import Board
from edge.core.events import EventBus


def line(n: int, t_step: float = 0.01) -> list[Point]:
    return [Point(0.1 + 0.8 * i / (n - 1), 0.5, i * t_step, 0.5) for i in range(n)]


def drain(sub: Any) -> list[tuple[str, dict[str, Any]]]:
    out = []
    while not sub._queue.empty():
        event = sub._queue.get_nowait()
        out.append((event.topic, event.data))
    return out


def test_a_straight_line_simplifies_to_its_ends_and_a_corner_is_kept() -> None:
    assert simplify(line(100), 0.001) == [line(100)[0], line(100)[-1]]
    corner = [Point(i / 50, 0.0) for i in range(51)] + [Point(1.0, i / 50) for i in range(1, 51)]
    kept = simplify(corner, 0.001)
    assert [(p.x, p.y) for p in kept] == [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]


def test_simplified_points_stay_within_epsilon_of_the_drawn_curve() -> None:
    circle = [Point(0.5 + 0.3 * math.cos(a / 100), 0.5 + 0.3 * math.sin(a / 100), a / 100) for a in range(629)]
    kept = simplify(circle, 0.002)
    assert 10 < len(kept) < 100
    for p in circle:  # every drawn point is near the simplified polyline
        near = min(_distance(p, a, b) for a, b in zip(kept, kept[1:], strict=False))
        assert near <= 0.002 + 1e-9


def _distance(p: Point, a: Point, b: Point) -> float:
    dx, dy = b.x - a.x, b.y - a.y
    s = max(0.0, min(1.0, ((p.x - a.x) * dx + (p.y - a.y) * dy) / (dx * dx + dy * dy or 1)))
    return math.hypot(p.x - a.x - s * dx, p.y - a.y - s * dy)


def test_a_stroke_leaves_in_pieces_while_drawn_and_ends_on_its_last_point() -> None:
    builder = StrokeBuilder(new_stroke("s1"), 0.001)
    circle = [Point(0.5 + 0.3 * math.cos(a / 20), 0.5 + 0.3 * math.sin(a / 20), a / 100) for a in range(126)]
    pieces = []
    for i in range(0, 126, 10):
        builder.add(circle[i : i + 10])
        pieces.append(builder.flush(final=i + 10 >= 126))
    assert sum(1 for piece in pieces if piece) >= 10  # the line grows piece by piece
    assert builder.stroke.points[0] == circle[0]
    assert builder.stroke.points[-1] == circle[-1]
    assert len(builder.stroke.points) < len(circle)
    assert [p for piece in pieces for p in piece] == builder.stroke.points


def test_bad_strokes_and_points_are_refused() -> None:
    with pytest.raises(InkError, match="tool"):
        new_stroke("a", tool="spray")
    with pytest.raises(InkError, match="colour"):
        new_stroke("a", color="red")
    with pytest.raises(InkError, match="width"):
        new_stroke("a", width=0.5)
    with pytest.raises(InkError, match="id"):
        new_stroke("a b")


def page_batch() -> list[dict[str, Any]]:
    points = [[0.1 + i / 100, 0.2, i * 0.01, 0.5] for i in range(20)]
    return [
        {"op": "begin", "id": "p1", "tool": "pen", "color": "#FF0000", "width": 0.004, "points": points[:1]},
        {"op": "points", "id": "p1", "points": points[1:10]},
        {"op": "end", "id": "p1", "points": points[10:]},
    ]


def test_the_board_publishes_a_stroke_as_begin_points_end_with_rising_seq() -> None:
    bus = EventBus()
    board = Board(bus, lambda: 0.001)
    with bus.subscribe("board.") as sub:
        assert board.apply(page_batch()) == 3
        events = drain(sub)
    topics = [topic for topic, _ in events]
    assert topics[0] == "board.stroke.begin"
    assert topics[-1] == "board.stroke.end"
    assert events[0][1]["color"] == "#ff0000"
    sent = [p for topic, data in events if topic != "board.stroke.end" for p in data["points"]]
    assert sent == [[0.1, 0.2, 0.0, 0.5], [0.29, 0.2, 0.19, 0.5]]  # a straight line: its two ends
    seqs = [data["seq"] for _, data in events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert board.snapshot()["strokes"][0]["done"] is True


def test_a_bad_batch_changes_nothing() -> None:
    bus = EventBus()
    board = Board(bus, lambda: 0.001)
    batch = page_batch()
    batch[2]["points"] = [[1.5, 0.2, 0.3, 0.5]]  # off the board
    with bus.subscribe("board.") as sub:
        with pytest.raises(InkError, match="operation 3"):
            board.apply(batch)
        with pytest.raises(InkError, match="no stroke nope"):
            board.apply([{"op": "points", "id": "nope", "points": []}])
        with pytest.raises(InkError, match="op must be"):
            board.apply([{"op": "draw"}])
        assert drain(sub) == []
    assert board.snapshot() == {**board.snapshot(), "strokes": [], "seq": 0}


def test_undo_clear_and_page_turns_keep_each_pages_strokes() -> None:
    bus = EventBus()
    board = Board(bus, lambda: 0.001)
    board.show(Page("/courseware/c/a.pdf", "application/pdf", "c", "a.pdf", 0, 3))
    board.apply(page_batch())
    board.turn(1)
    assert board.snapshot()["strokes"] == []
    assert board.snapshot()["page"]["image"] == "/board/render/c/a.pdf?page=1"
    board.apply([{**page_batch()[0], "id": "p2"}, {"op": "end", "id": "p2"}])
    board.turn(0)
    assert [s["id"] for s in board.snapshot()["strokes"]] == ["p1"]
    with bus.subscribe("board.") as sub:
        assert board.undo() == "p1"
        assert board.undo() is None
        board.turn(1)
        board.clear()
        assert [topic for topic, _ in drain(sub)] == ["board.undo", "board.page", "board.clear"]
    assert board.snapshot()["strokes"] == []
    with pytest.raises(InkError, match="pages 1 to 3"):
        board.turn(3)


def test_a_late_joiner_gets_the_page_and_strokes_in_messages_of_bounded_size() -> None:
    board = Board(EventBus(), lambda: 0.0)  # nothing simplified: big strokes
    board.show(Page("/courseware/c/p.png", "image/png", "c", "p.png", 0, 1, "/courseware/c/p.png"))
    for n in range(30):
        points = [[(i % 100) / 100, n / 30, i * 0.01, 0.5] for i in range(200)]
        board.apply(
            [
                {"op": "begin", "id": f"s{n}", "points": points[:100]},
                {"op": "end", "id": f"s{n}", "points": points[100:]},
            ]
        )
    board.apply(
        [{"op": "begin", "id": "open", "points": [[0.5, 0.5, 0, 0.5], [0.6, 0.6, 0.1, 0.5], [0.7, 0.5, 0.2, 0.5]]}]
    )
    messages = [json.loads(m) for m in board.state_messages(limit=8000)]
    assert len(messages) > 3
    assert all(len(m) < 16000 for m in board.state_messages(limit=8000))
    assert messages[0]["reset"] is True
    assert messages[0]["page"]["image"] == "/courseware/c/p.png"
    assert not any(m["reset"] for m in messages[1:])
    strokes = [s for m in messages for s in m["strokes"]]
    assert [s["id"] for s in strokes] == [f"s{n}" for n in range(30)] + ["open"]
    assert strokes[-1]["done"] is False
    assert len(strokes[-1]["points"]) >= 1
    assert {m["seq"] for m in messages} == {board.seq}


def test_the_export_replays_the_ink_log_into_pdf_pages_with_vector_ink() -> None:
    import pypdfium2

    from edge.board.export import render_pdf, replay

    bus = EventBus()
    board = Board(bus, lambda: 0.001)
    lines = []
    with bus.subscribe("board.") as sub:
        board.apply(page_batch())  # before any page: on the blank board
        board.show(Page("/courseware/c/a.pdf", "application/pdf", "c", "a.pdf", 0, 2, "/board/render/c/a.pdf?page=0"))
        board.apply([{**page_batch()[0], "id": "k1", "tool": "highlighter", "width": 0.02}, {"op": "end", "id": "k1"}])
        board.apply([{**page_batch()[0], "id": "k2"}, {"op": "end", "id": "k2"}, {"op": "undo"}])
        board.turn(1)
        board.apply([{"op": "begin", "id": "torn", "points": [[0.2, 0.2, 0, 0.5]]}])
        lines = [{"t": 0.0, "topic": topic, "data": data} for topic, data in drain(sub)]
    lines.insert(2, {"t": 0.1, "topic": "board.stroke.points", "data": {"id": "p1", "points": "garbage"}})
    pages = replay(lines)
    assert [(p.page.url, p.page.index, [s.id for s in p.strokes]) for p in pages] == [
        ("", 0, ["p1"]),
        ("/courseware/c/a.pdf", 0, ["k1"]),
        ("/courseware/c/a.pdf", 1, ["torn"]),
    ]
    pdf = pypdfium2.PdfDocument(render_pdf(pages, {}))
    try:
        assert len(pdf) == 3
        assert pdf[0].get_width() / pdf[0].get_height() == pytest.approx(16 / 9, rel=1e-3)
        paths = [obj for obj in pdf[1].get_objects() if obj.type == pypdfium2.raw.FPDF_PAGEOBJ_PATH]
        assert len(paths) == 1  # the highlighter stroke, as a vector path (the undone one is gone)
    finally:
        pdf.close()
