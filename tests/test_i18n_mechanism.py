"""The translation mechanism: a compiled catalog translates templates and the scripts' JSON; English falls back."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo

from edge.doors.web import i18n


@pytest.fixture
def french(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    catalog = Catalog(locale="fr", domain=i18n.DOMAIN)
    catalog.add("Start lesson", "Commencer la leçon")
    catalog.add("Hello %(name)s", "Bonjour %(name)s")
    target = tmp_path / "fr" / "LC_MESSAGES"
    target.mkdir(parents=True)
    with (target / f"{i18n.DOMAIN}.mo").open("wb") as out:
        write_mo(out, catalog)
    (tmp_path / "page.html").write_text('{{ _("Start lesson") }}|{{ _("Hello %(name)s", name=who) }}|{{ _("Stop") }}')
    monkeypatch.setattr(i18n, "LOCALES", tmp_path)
    i18n.translations.cache_clear()
    i18n.environment.cache_clear()
    yield tmp_path
    i18n.translations.cache_clear()
    i18n.environment.cache_clear()


def test_a_template_reads_in_the_catalogs_language_and_falls_back_to_english(french: Path) -> None:
    env = i18n.environment("fr")
    assert env.from_string((french / "page.html").read_text()).render(who="Amina") == (
        "Commencer la leçon|Bonjour Amina|Stop"
    )
    english = i18n.environment("en").from_string((french / "page.html").read_text()).render(who="Amina")
    assert english == "Start lesson|Hello Amina|Stop"


def test_the_scripts_catalog_is_the_same_catalog_as_json(french: Path) -> None:
    assert i18n.messages("fr") == {"Start lesson": "Commencer la leçon", "Hello %(name)s": "Bonjour %(name)s"}
    assert i18n.messages("km") == {}
    assert i18n.direction("ur") == "rtl"
    assert i18n.direction("uz-Latn") == "ltr"
