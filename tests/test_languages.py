"""Every door in the school's language: the choice of language, the switch, formatting, right-to-left, fonts."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from edge.config import BoxConfig
from edge.web import i18n


def request(**headers: str) -> Request:
    """A request as the web door receives it, with these headers."""
    raw = [(name.replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


def box(language: str = "en") -> SimpleNamespace:
    config = BoxConfig()
    config.box.language = language
    return SimpleNamespace(config=config)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("fr-FR,fr;q=0.9,en;q=0.8", "fr"),
        ("de-DE, uz;q=0.5, ru;q=0.4", "uz-Latn"),
        ("km-KH", "km"),
        ("ar;q=0, ru", "ru"),
        ("de, *;q=0.1", "ur"),
        ("", "ur"),
        ("ur-PK;q=bad, fr;q=0.2", "fr"),
    ],
)
def test_a_student_page_speaks_the_browsers_language_else_the_boxs(accept: str, expected: str) -> None:
    assert i18n.page_language(request(accept_language=accept), box("ur"), student=True) == expected


def test_the_switchs_cookie_wins_when_it_names_an_offered_language() -> None:
    chosen = request(accept_language="fr", cookie="classbox_lang=uz-latn")
    assert i18n.page_language(chosen, box(), student=True) == "uz-Latn"
    forged = request(accept_language="fr", cookie='classbox_lang="../../etc"')
    assert i18n.page_language(forged, box(), student=True) == "fr"


def test_pages_other_than_the_students_ignore_the_browser_and_read_the_box_default() -> None:
    assert i18n.page_language(request(accept_language="km"), box("ar")) == "ar"
    assert i18n.page_language(request(accept_language="km"), box("de")) == "en"  # not offered: English


def test_numbers_durations_and_dates_are_written_as_the_language_writes_them() -> None:
    page = "{{ 1234.5|format_number }}|{{ 0.4|format_percent }}|{{ 125|format_duration }}|{{ at|format_datetime }}"
    at = datetime(2026, 12, 1, 9, 5, tzinfo=UTC)

    def shown(language: str) -> list[str]:
        return i18n.environment(language).from_string(page).render(at=at).split("|")

    assert shown("en") == ["1,234.5", "40%", "2 min", "12/1/26, 9:05\u202fAM"]
    assert shown("fr") == ["1\u202f234,5", "40\u00a0%", "2\u00a0min", "01/12/2026 09:05"]
    assert shown("ru") == ["1\u00a0234,5", "40\u00a0%", "2 мин", "01.12.2026, 09:05"]


def test_the_language_switch_names_every_language_in_its_own_and_marks_the_pages() -> None:
    switch = i18n.environment("km").from_string('{% include "_language.html" %}').render(lang="km")
    for code, name in i18n.LANGUAGES.items():
        assert f'value="{code}" lang="{code}"' in switch
        assert name in switch
    assert 'value="km" lang="km" selected' in switch
    assert switch.count("selected") == 1
