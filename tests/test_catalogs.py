"""Every string people read is marked, the catalogs are in step with the sources, the pages mirror, the fonts draw."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from edge.devtools import catalogs, fonts, marks
from edge.doors.web.i18n import LANGUAGES, WEB

ROOT = catalogs.ROOT

PAGE = """<!doctype html>
<html lang="{{ lang }}"><head><title>{{ _("Live lesson") }}</title>
<style>.x::after { content: "Not text people read here"; }</style></head>
<body>
  <h1>Start lesson</h1>
  <p>{{ _("Marked") }} {{ name }} {% trans n=3 %}{{ n }} watching{% endtrans %}</p>
  <button title="Stop the lesson" aria-label="{{ _('Stop') }}">&#9632;</button>
  <input placeholder="Your name">
  <img alt="{{ _('QR code of the join link') }}" src="/qr.svg">
  <span>{{ count }} / {{ total }} &middot; 42</span>
  <script>const notShown = "inside a script: the script check reads these";</script>
</body></html>
"""

SCRIPT = """import { _, format } from "/static/i18n.js";
state.textContent = _("Live");
badge.textContent = "ON AIR";
count.textContent = format(_("{count} watching"), { count: n });
hand.textContent = raised ? _("Lower hand") : "Raise hand";
clock.textContent = `${minutes}:${seconds}`;
level.title = `${level} dB`;
button.setAttribute("aria-label", "Mute the microphone");
button.setAttribute("aria-label", _("Unmute"));
document.title = "Panel — " + lesson.title;
el.dataset.state = "live";
"""

MODULE = """from edge.core.texts import N_
CAMERA = N_("Camera disconnected: check the USB cable")
SILENT = "Microphone is silent: is it muted?"


def check(box, name, fps):
    box.raise_alarm("camera", CAMERA)
    box.raise_alarm("mic", SILENT)
    box.raise_alarm("fps", f"The camera delivers {fps} frames a second")
    box.raise_alarm("disk", "Disk full")
    box.raise_alarm(name, message=N_("Picture is black: is the lens covered?"))
    box.raise_alarm(name, fps_message(fps))
    box.clear_alarm("Not a message")
"""


def tree(root: Path) -> Path:
    """A copy of the sources a check reads (babel.cfg, edge/) under `root`."""
    shutil.copy(ROOT / "babel.cfg", root / "babel.cfg")
    shutil.copytree(ROOT / "edge", root / "edge", ignore=shutil.ignore_patterns("__pycache__", "fonts"))
    return root


def test_every_string_people_read_is_marked_and_the_catalogs_are_in_step() -> None:
    stale, _ = catalogs.problems()
    assert stale == []


def test_the_check_finds_strings_people_read_that_are_not_marked(tmp_path: Path) -> None:
    found = {(u.path.rsplit("/", 1)[-1], u.text) for u in marks.template_unmarked(PAGE, "page.html")}
    assert found == {("page.html", "Start lesson"), ("page.html", "Stop the lesson"), ("page.html", "Your name")}
    found = {u.text for u in marks.script_unmarked(SCRIPT, "panel.js")}
    assert found == {'"ON AIR"', '"Raise hand"', "`${level} dB`", '"Mute the microphone"', '"Panel — "'}
    found = {u.text for u in marks.python_unmarked(MODULE, "signals.py")}
    assert found == {"SILENT", 'f"The camera delivers {fps} frames a second"', '"Disk full"'}
    root = tree(tmp_path)
    (root / "edge" / "doors" / "web" / "templates" / "panel.html").write_text(PAGE)
    assert [str(u) for u in marks.unmarked(root)][0] == (
        "edge/doors/web/templates/panel.html:5: 'Start lesson' is not marked for translation"
    )


def test_a_newly_marked_string_or_an_edited_translation_makes_the_catalogs_stale(tmp_path: Path) -> None:
    root = tree(tmp_path)
    page = root / "edge" / "doors" / "web" / "templates" / "home.html"
    page.write_text(page.read_text().replace("</main>", '<p>{{ _("Start the lesson now") }}</p></main>'))
    french = catalogs.po_path("fr", root / "edge" / "doors" / "web" / "locales")
    french.write_text(french.read_text().replace('msgstr "Lever la main"', 'msgstr "Levez la main"'))
    stale, _ = catalogs.problems(root)
    assert "classbox.pot lacks messages the sources mark: 'Start the lesson now'" in stale
    for language in LANGUAGES:
        assert f"{language}: the .po lacks 'Start the lesson now'" in stale
    assert "fr: the .mo is not its .po compiled" in stale
    assert catalogs.main(["check"]) == 0  # the tree itself is in step


def test_update_takes_a_new_message_into_every_catalog_and_a_second_update_writes_nothing(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert catalogs.update(root) == []
    page = root / "edge" / "doors" / "web" / "templates" / "watch.html"
    page.write_text(page.read_text().replace("</main>", '<p>{{ _("Ask the teacher") }}</p></main>'))
    written = catalogs.update(root)
    assert "edge/doors/web/locales/classbox.pot" in written
    assert "edge/doors/web/locales/uz_Latn/LC_MESSAGES/classbox.mo" in written
    assert len(written) == 1 + 2 * len(LANGUAGES)
    assert catalogs.update(root) == []
    stale, untranslated = catalogs.problems(root)
    assert stale == []
    assert "ar: 1 untranslated: 'Ask the teacher'" in untranslated
    french = catalogs.po_path("fr", root / "edge" / "doors" / "web" / "locales")
    assert catalogs.translated(catalogs.read_catalog(french, "fr"))


def test_every_language_translates_every_message_and_keeps_its_placeholders() -> None:
    placeholder = re.compile(r"%\(\w+\)s|\{\w+\}|</?\w+[^>]*>")
    template = catalogs.read_catalog(catalogs.TEMPLATE)
    for language in LANGUAGES:
        if language == catalogs.SOURCE:
            continue
        translated = catalogs.translated(catalogs.read_catalog(catalogs.po_path(language), language))
        for message in template:
            if not message.id:
                continue
            text = translated.get(catalogs.key(message))
            assert text, (language, message.id)
            assert sorted(placeholder.findall(str(text))) == sorted(placeholder.findall(str(message.id))), language


def test_the_fonts_draw_every_character_the_catalogs_use_within_a_2g_budget() -> None:
    text = fonts.catalog_text()
    for face in fonts.FACES:
        assert fonts.missing(face, text) == set(), face.output
    khmer = next(face for face in fonts.FACES if face.output == "noto-sans-khmer.woff2")
    assert fonts.missing(khmer, text + "\u19e0") == {"\u19e0"}  # a Khmer symbol no catalog uses yet
    assert sum(fonts.sizes().values()) < 200_000
    assert max(fonts.sizes().values()) < 100_000


PHYSICAL = re.compile(
    r"(?<![\w-])(?:(?:margin|padding|border|inset|scroll-margin|scroll-padding)-(?:left|right)(?:-[a-z]+)?"
    r"|border-(?:top|bottom)-(?:left|right)-radius|left|right)\s*:"
    r"|(?:text-align|float|clear)\s*:\s*(?:left|right)\b"
    r"|\.style\.(?:left|right|(?:margin|padding|border)(?:Left|Right)\w*)\b"
)


def styles() -> dict[str, str]:
    """Every stylesheet, template (inline styles) and script of the web doors, by name."""
    found = {}
    for folder, pattern in ((WEB / "static", "*.css"), (WEB / "templates", "*.html"), (WEB / "static", "*.js")):
        for path in sorted(folder.rglob(pattern)):
            found[str(path.relative_to(WEB))] = path.read_text(encoding="utf-8")
    return found


@pytest.mark.parametrize(
    "rule",
    [
        "margin-left: 1rem",
        "padding-right:0",
        "left: 0",
        "text-align: left",
        "float: right",
        "border-right-color: red",
        "border-top-left-radius: 2px",
        "inset-left: 0",
        "el.style.marginLeft = '3px'",
        "clear: left",
    ],
)
def test_the_mirroring_check_finds_physical_properties(rule: str) -> None:
    assert PHYSICAL.search(f".x {{ {rule}; }}")


def test_the_pages_use_logical_properties_only_so_right_to_left_mirrors() -> None:
    assert not PHYSICAL.search(".x { margin-inline-start: 1rem; inset-inline-end: 0; text-align: start; }")
    found = {name: PHYSICAL.findall(text) for name, text in styles().items()}
    assert {name: hits for name, hits in found.items() if hits} == {}
