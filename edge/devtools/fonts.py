"""The pages' web fonts: Noto subsets per script, built by `python -m edge.devtools.fonts build`.

A student's phone may have no font for Arabic, Urdu, Khmer or Cyrillic, so the box serves them:
each face keeps its script's basic block plus every character the catalogs use in that script,
as woff2 (hinting dropped, every shaping feature kept). `static/fonts.css` declares them with the
`unicode-range` of what each face holds and `font-display: swap`, so a page downloads a face only
when it shows that script, and shows text at once in a local font meanwhile. Urdu reads in
Nastaliq; Arabic in Naskh. The sources are Debian's `fonts-noto-core`; the built files are
committed (see `sizes()`), so a box needs neither the sources nor a build step.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po
from fontTools import subset
from fontTools.ttLib import TTFont

from edge.doors.web.i18n import LANGUAGES, LOCALES, WEB

SOURCES = Path("/usr/share/fonts/truetype/noto")  # Debian fonts-noto-core
FONTS = WEB / "static" / "fonts"
STYLESHEET = WEB / "static" / "fonts.css"
FAMILY = "Classbox Noto"
URDU_FAMILY = "Classbox Nastaliq"

Ranges = tuple[tuple[int, int], ...]
ARABIC: Ranges = ((0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF))
KHMER: Ranges = ((0x1780, 0x17FF), (0x19E0, 0x19FF))
CYRILLIC: Ranges = ((0x0400, 0x052F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F))


# Nastaliq's contextual forms are heavy: it keeps the Urdu alphabet (Naskh draws any other Arabic letter).
URDU = "ءآأؤئابپتٹثجچحخدڈذرڑزژسشصضطظعغفقکگلمنںوہھۂیےۓ،؛؟۔٪" + "".join(map(chr, range(0x06F0, 0x06FA)))
URDU_MARKS = "".join(map(chr, (0x064B, 0x064C, 0x064D, 0x064E, 0x064F, 0x0650, 0x0651, 0x0652, 0x0654, 0x0670)))


def block(low: int, high: int) -> str:
    """Every character from `low` to `high`."""
    return "".join(map(chr, range(low, high + 1)))


@dataclass(frozen=True)
class Face:
    """One subset: the family it serves, its Noto source, its script and the characters it always keeps."""

    family: str
    source: str
    output: str
    script: Ranges
    basic: str


FACES = (
    Face(FAMILY, "NotoNaskhArabic-Regular.ttf", "noto-naskh-arabic.woff2", ARABIC, block(0x0600, 0x06FF)),
    Face(URDU_FAMILY, "NotoNastaliqUrdu-Regular.ttf", "noto-nastaliq-urdu.woff2", ARABIC, URDU + URDU_MARKS),
    Face(FAMILY, "NotoSansKhmer-Regular.ttf", "noto-sans-khmer.woff2", KHMER, block(0x1780, 0x17FF)),
    Face(FAMILY, "NotoSans-Regular.ttf", "noto-sans-cyrillic.woff2", CYRILLIC, block(0x0400, 0x045F)),
)

STYLE_TAIL = f"""
html {{ font-family: "{FAMILY}", system-ui, sans-serif; }}
html:lang(ur) {{ font-family: "{URDU_FAMILY}", "{FAMILY}", system-ui, sans-serif; line-height: 1.9; }}
"""


def in_ranges(code: int, ranges: Ranges) -> bool:
    """Whether a code point lies in one of `ranges`."""
    return any(low <= code <= high for low, high in ranges)


def catalog_text(locales: Path = LOCALES) -> str:
    """Everything the pages may show that the fonts must draw: every translation, every language's name."""
    parts = list(LANGUAGES.values())
    for path in sorted(locales.glob("*/LC_MESSAGES/*.po")):
        with path.open("rb") as source:
            for message in read_po(source):
                strings = message.string if isinstance(message.string, (list, tuple)) else [message.string]
                parts += [text for text in strings if text]
    return "".join(parts)


def wanted(face: Face, text: str) -> set[int]:
    """The code points a face keeps: its basic characters and the catalogs' characters of its script."""
    return {ord(char) for char in face.basic + text if in_ranges(ord(char), face.script)}


def build_face(face: Face, text: str, sources: Path = SOURCES) -> set[int]:
    """Subset one face into `static/fonts/`; the code points it holds."""
    font = TTFont(sources / face.source, recalcTimestamp=False)  # the same sources build the same bytes
    options = subset.Options()
    options.flavor = "woff2"
    options.layout_features = ["*"]  # Arabic joining, Nastaliq's contextual forms, Khmer's stacking
    options.hinting = False
    options.desubroutinize = True
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6]  # keep the copyright and licence-bearing names
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=wanted(face, text))
    subsetter.subset(font)
    FONTS.mkdir(parents=True, exist_ok=True)
    font.flavor = "woff2"
    font.save(FONTS / face.output)
    return set(font.getBestCmap())


def unicode_range(codes: Iterable[int]) -> str:
    """CSS `unicode-range` of a set of code points, as runs (`U+600-6FF, U+FB50`)."""
    runs: list[list[int]] = []
    for code in sorted(codes):
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return ", ".join(f"U+{low:X}" if low == high else f"U+{low:X}-{high:X}" for low, high in runs)


def font_face(face: Face, codes: set[int]) -> str:
    """The `@font-face` rule of a built face (only its script's code points: Latin stays local)."""
    return (
        f'@font-face {{ font-family: "{face.family}"; src: url("/static/fonts/{face.output}") format("woff2");'
        f" font-display: swap; unicode-range: {unicode_range(c for c in codes if in_ranges(c, face.script))}; }}"
    )


def build(sources: Path = SOURCES) -> list[Path]:
    """Build every face and `fonts.css`; the files written."""
    text = catalog_text()
    rules = [font_face(face, build_face(face, text, sources)) for face in FACES]
    header = "/* Generated by `python -m edge.devtools.fonts build` (Noto, SIL Open Font License): do not edit. */"
    STYLESHEET.write_text("\n".join([header, *rules]) + "\n" + STYLE_TAIL, encoding="utf-8")
    return [FONTS / face.output for face in FACES] + [STYLESHEET]


def missing(face: Face, text: str) -> set[str]:
    """The characters of the catalogs in a face's script that its built file cannot draw."""
    held = set(TTFont(FONTS / face.output).getBestCmap())
    return {char for char in text if in_ranges(ord(char), face.script) and ord(char) not in held}


def sizes() -> dict[str, int]:
    """The bytes of each built face."""
    return {face.output: (FONTS / face.output).stat().st_size for face in FACES}


def main(argv: list[str] | None = None) -> int:
    """The command line: `build` (needs fonts-noto-core) or `check` (the built faces cover the catalogs)."""
    parser = argparse.ArgumentParser(prog="python -m edge.devtools.fonts", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "check"])
    args = parser.parse_args(argv)
    if args.command == "build":
        for path in build():
            print(f"wrote {path.relative_to(WEB)} ({path.stat().st_size} bytes)")
        return 0
    text = catalog_text()
    gaps = {face.output: "".join(sorted(missing(face, text))) for face in FACES}
    for output, chars in gaps.items():
        if chars:
            print(f"{output} cannot draw {chars!r}: run python -m edge.devtools.fonts build", file=sys.stderr)
    return 1 if any(gaps.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
