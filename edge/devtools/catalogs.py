"""Keeping the catalogs in step with the sources: `python -m edge.devtools.catalogs update|check`.

`update` extracts every marked message (`babel.cfg`: python, templates, scripts) into
`locales/classbox.pot`, merges it into each language's `.po` and compiles the `.mo` the box reads.
`check` exits 1 with the list of what is out of date: a string people read that is not marked
(`edge.devtools.marks`), a `.pot` that the sources no longer match, a `.po` that lacks a message (or
keeps one that is gone), a `.mo` that is not its `.po` compiled.
Untranslated messages read in English; `check` lists them and fails on them only with `--strict`.
The `.mo` files are committed: a box image or a wheel has them without a build step.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

from edge.devtools import fonts
from edge.devtools.marks import unmarked
from edge.doors.web.i18n import DOMAIN, LANGUAGES, LOCALES, babel_locale, base_language

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "babel.cfg"
TEMPLATE = LOCALES / f"{DOMAIN}.pot"
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
SOURCE = "en"
HEADER = """\
# {name} messages of classbox, the classroom box.
# Drafted by the developers: native speakers should review every entry before a school relies on it.
# Untranslated entries read in English. Refresh with `python -m edge.devtools.catalogs update`.
#"""

TEMPLATE_HEADER = """\
# Every message people read on classbox's doors, extracted from the sources (babel.cfg).
# Generated: `python -m edge.devtools.catalogs update` rewrites it.
#"""

Key = tuple[str | tuple[str, ...], str | None]


def key(message: Message) -> Key:
    """What identifies a message across catalogs: its msgid (a tuple for plurals) and context."""
    ident = message.id if isinstance(message.id, str) else tuple(message.id)
    return ident, message.context


def keys(catalog: Catalog) -> set[Key]:
    """The messages of a catalog, less its header."""
    return {key(message) for message in catalog if message.id}


def extract(root: Path = ROOT) -> Catalog:
    """Every marked message in the sources, with the files it comes from."""
    with (root / MAPPING.name).open(encoding="utf-8") as mapping:
        method_map, options_map = parse_mapping_cfg(mapping, str(MAPPING))  # type: ignore[no-untyped-call]
    catalog = Catalog(project="classbox", domain=DOMAIN, fuzzy=False, header_comment=TEMPLATE_HEADER)
    found = extract_from_dir(
        root, method_map, options_map, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",), strip_comment_tags=True
    )
    for filename, lineno, message, comments, context in found:
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def po_path(language: str, locales: Path = LOCALES) -> Path:
    """The `.po` of an offered language (`uz-Latn` -> `locales/uz_Latn/LC_MESSAGES/classbox.po`)."""
    return locales / base_language(language) / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(path: Path, language: str | None = None) -> Catalog:
    """A `.po` or `.pot` from disk."""
    with path.open("rb") as source:
        return read_po(source, locale=language and base_language(language), domain=DOMAIN)


def rendered(catalog: Catalog) -> bytes:
    """A catalog as its `.po` text: sorted, with files but not line numbers (line moves are no change)."""
    out = io.BytesIO()
    write_po(out, catalog, width=100, sort_output=True, include_lineno=False, ignore_obsolete=True)
    return out.getvalue()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` unless the file holds it already, creation dates aside; True when it was written."""
    if path.exists() and undated(path.read_bytes()) == undated(data):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def undated(data: bytes) -> bytes:
    """A `.po` text without its creation and revision dates."""
    lines = data.splitlines(keepends=True)
    return b"".join(line for line in lines if not line.startswith((b'"POT-Creation-Date:', b'"PO-Revision-Date:')))


def merged(template: Catalog, language: str, path: Path) -> Catalog:
    """The language's catalog (at `path`) updated to `template` (new messages untranslated, gone ones dropped)."""
    if path.exists():
        catalog = read_catalog(path, language)
    else:
        catalog = Catalog(locale=base_language(language), domain=DOMAIN, project="classbox", fuzzy=False)
    catalog.header_comment = HEADER.format(name=f"{babel_locale(language).get_display_name('en')} ({language})")
    catalog.last_translator = "classbox developers (a draft for native speakers to review)"
    catalog.language_team = f"{LANGUAGES[language]}: none yet"
    catalog.update(template, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    return catalog


def compiled(catalog: Catalog) -> bytes:
    """The `.mo` the box reads (fuzzy entries left out: they read in English)."""
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def update(root: Path = ROOT) -> list[str]:
    """Extract, merge and compile every catalog of the tree at `root`; the files written."""
    template = extract(root)
    locales = root / LOCALES.relative_to(ROOT)
    written = [locales / TEMPLATE.name] if write_if_changed(locales / TEMPLATE.name, rendered(template)) else []
    for language in LANGUAGES:
        path = po_path(language, locales)
        catalog = merged(template, language, path)
        if write_if_changed(path, rendered(catalog)):
            written.append(path)
        mo, binary = path.with_suffix(".mo"), compiled(read_catalog(path, language))  # the .po as kept
        if not mo.exists() or mo.read_bytes() != binary:
            mo.write_bytes(binary)
            written.append(mo)
    return [str(path.relative_to(root)) for path in written]


def translated(catalog: Catalog) -> dict[Key, str | tuple[str, ...]]:
    """The messages a catalog translates, with their translations (fuzzy ones are not)."""
    found: dict[Key, str | tuple[str, ...]] = {}
    for message in catalog:
        text = message.string if isinstance(message.string, str) else tuple(message.string or ())
        if message.id and not message.fuzzy and (text if isinstance(text, str) else all(text)):
            found[key(message)] = text
    return found


def shown(found: Iterable[Key], limit: int = 8) -> str:
    """A few message ids for a report line."""
    names = sorted(repr(ident if isinstance(ident, str) else ident[0]) for ident, _ in found)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def problems(root: Path = ROOT) -> tuple[list[str], list[str]]:
    """(what is unmarked or out of date, which messages are untranslated) of the tree at `root`."""
    stale = [str(found) for found in unmarked(root)]
    untranslated: list[str] = []
    sources = keys(extract(root))
    locales = root / LOCALES.relative_to(ROOT)
    template_path = locales / TEMPLATE.name
    if not template_path.exists():
        return [*stale, f"{template_path.relative_to(root)} is missing"], []
    template = keys(read_catalog(template_path))
    if sources - template:
        stale.append(f"classbox.pot lacks messages the sources mark: {shown(sources - template)}")
    if template - sources:
        stale.append(f"classbox.pot keeps messages no source marks: {shown(template - sources)}")
    for language in LANGUAGES:
        path = po_path(language, locales)
        stale += language_problems(language, sources, path)
        if language != SOURCE and path.exists():
            missing = sources - set(translated(read_catalog(path, language)))
            if missing:
                untranslated.append(f"{language}: {len(missing)} untranslated: {shown(missing, 4)}")
    return stale, untranslated


def language_problems(language: str, sources: set[Key], path: Path) -> list[str]:
    """What is out of date in one language's `.po` (at `path`) and its `.mo`."""
    if not path.exists():
        return [f"{language}: {path.name} is missing"]
    catalog = read_catalog(path, language)
    found: list[str] = []
    if sources - keys(catalog):
        found.append(f"{language}: the .po lacks {shown(sources - keys(catalog))}")
    if keys(catalog) - sources:
        found.append(f"{language}: the .po keeps messages no source marks: {shown(keys(catalog) - sources)}")
    mo = path.with_suffix(".mo")
    if not mo.exists():
        found.append(f"{language}: {mo.name} is missing")
    else:
        with mo.open("rb") as source:
            if translated(read_mo(source)) != translated(catalog):
                found.append(f"{language}: the .mo is not its .po compiled")
    return found


def fonts_lacking() -> bool:
    """Whether a served font cannot draw a character the catalogs now use."""
    text = fonts.catalog_text()
    return any(fonts.missing(face, text) for face in fonts.FACES)


def main(argv: list[str] | None = None) -> int:
    """The command line: `update` or `check [--strict]`."""
    parser = argparse.ArgumentParser(prog="python -m edge.devtools.catalogs", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["update", "check"])
    parser.add_argument("--strict", action="store_true", help="check: untranslated messages fail too")
    args = parser.parse_args(argv)
    if args.command == "update":
        for path in update():
            print(f"wrote {path}")
        if fonts_lacking():
            print("the catalogs use characters the fonts lack: python -m edge.devtools.fonts build", file=sys.stderr)
        return 0
    stale, untranslated = problems()
    for line in stale + untranslated:
        print(line, file=sys.stderr)
    if stale:
        print("mark those strings, then run python -m edge.devtools.catalogs update", file=sys.stderr)
    return 1 if stale or (args.strict and untranslated) else 0


if __name__ == "__main__":
    sys.exit(main())
