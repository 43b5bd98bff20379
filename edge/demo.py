"""Demo mode: the built-in defaults, a board that writes by itself, and a sample course in a local signed repository.

The demo box pulls that course through the same path a school's box uses (TUF metadata, chunk
indexes, hash-verified chunks into the SQLite store), so every door has courseware to show and
nothing needs the network.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from edge.core.config import BoxConfig
from sync.publish import publish

log = logging.getLogger(__name__)

SAMPLE_TITLE = "Welcome to classbox"
SAMPLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Welcome to classbox</title>
<style>body{font-family:sans-serif;margin:2rem;max-inline-size:40rem}</style></head>
<body><h1>Welcome to classbox</h1>
<p>This sample course came from a signed courseware repository on this box, was checked chunk by
chunk and is now served from the local cache: lessons never wait for the network.</p>
<ol><li>Start a lesson on the panel.</li><li>Students join with the link or QR code.</li>
<li>The lesson is recorded and uploaded when the link has room.</li></ol>
<img src="shapes.svg" alt="Shapes for the first lesson" width="320"></body></html>
"""
SAMPLE_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 320 120">
<rect x="10" y="10" width="100" height="100" fill="#2a7"/>
<circle cx="170" cy="60" r="50" fill="#27a"/>
<polygon points="230,110 280,10 310,110" fill="#a72"/></svg>
"""


def write_sample_courses(src: Path) -> None:
    """The sample course folder (an HTML page, a picture and a PDF worksheet)."""
    course = src / "welcome"
    course.mkdir(parents=True, exist_ok=True)
    (course / "course.json").write_text(json.dumps({"title": SAMPLE_TITLE}))
    (course / "index.html").write_text(SAMPLE_PAGE)
    (course / "shapes.svg").write_text(SAMPLE_SVG)
    (course / "worksheet.pdf").write_bytes(sample_worksheet())


def sample_worksheet() -> bytes:
    """A two-page PDF worksheet to open on the board (its pages are rendered on the box)."""
    from fpdf import FPDF

    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_font("helvetica", size=28)
    for number, task in ((1, "Draw a triangle and a circle."), (2, "Write the numbers 1 to 10.")):
        pdf.add_page()
        pdf.cell(0, 20, f"Worksheet, page {number}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font_size(20)
        pdf.cell(0, 14, task, new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(180, 180, 180)
        for line in range(6):
            pdf.line(20, 70 + line * 20, 277, 70 + line * 20)
        pdf.set_font_size(28)
    return bytes(pdf.output())


def prepare_demo_courseware(config: BoxConfig) -> None:
    """Publish the sample course under the state dir and point the courseware settings at it.

    Leaves settings alone when the demo's config already names a repository.
    """
    if config.courseware.repo_url:
        return
    base = config.box.state_dir / "demo-courseware"
    write_sample_courses(base / "src")
    report = publish(base / "src", base / "repo", base / "keys")
    config.courseware.repo_url = str(base / "repo")
    config.courseware.trusted_root = str(base / "repo" / "metadata" / "1.root.json")
    log.info("demo courseware: published %d course(s), version %d, at %s", report.courses, report.version, base)


def prepare_demo_board(config: BoxConfig, source: str = "synthetic") -> None:
    """The demo's board writes by itself (a replay of synthetic pen writing), unless its config names an input."""
    if "source" not in config.board.model_fields_set:
        config.board.source = "synthetic" if source == "synthetic" else "none"
