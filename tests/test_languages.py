"""Every door in the school's language: the choice of language, the switch, formatting, right-to-left, fonts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import anyio
import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from playwright.async_api import Browser, BrowserContext, Page, Route
from pydantic import ValidationError
from starlette.requests import Request

from edge.core.config import BoxConfig, Language
from edge.doors.web import i18n
from edge.recording.recorder import DISK_FULL_LIVE
from tests.stream_fixture import LiveBox, live_box, small_config

anyio.open_file  # noqa: B018 (its lazy first import would otherwise run on the test's loop, serving a file)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
NOT_STARTED = "This lesson has not started yet. This page will start playing as soon as it does."


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


def test_the_box_offers_exactly_the_languages_it_has_catalogs_for() -> None:
    assert tuple(i18n.LANGUAGES) == get_args(Language)
    with pytest.raises(ValidationError, match="Input should be 'en', 'fr', 'ar', 'ur', 'km', 'uz-Latn' or 'ru'"):
        box("de")
    assert box("uz-Latn").config.box.language == "uz-Latn"


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


@asynccontextmanager
async def student(browser: Browser, live: LiveBox, locale: str) -> AsyncIterator[tuple[BrowserContext, Page]]:
    """A student's browser set to `locale` (its Accept-Language), on a join page whose lesson is not live."""
    context = await browser.new_context(locale=locale, viewport={"width": 390, "height": 844})
    try:
        page = await context.new_page()
        await page.goto(f"{live.base}/watch/abcdef")
        yield context, page
    finally:
        await context.close()


async def shows_not_started(page: Page, language: str) -> None:
    """The page speaks `language`: its lang and dir, the state and the message, from the catalog."""
    said = i18n.translations(language).gettext
    await page.wait_for_selector("#state[data-key='disconnected']")
    assert await page.get_attribute("html", "lang") == language
    assert await page.get_attribute("html", "dir") == i18n.direction(language)
    assert await page.text_content("#state") == said("Disconnected")
    assert await page.text_content("#message") == said(NOT_STARTED)
    assert await page.text_content("#hand") == said("Raise hand")


@pytest.mark.browser
async def test_the_student_page_follows_the_browsers_language(tmp_path: Path, browser: Browser) -> None:
    async with live_box(small_config(tmp_path), with_devices=False) as live:
        for locale, language in (("fr-FR", "fr"), ("ur-PK", "ur"), ("km-KH", "km")):
            async with student(browser, live, locale) as (_, page):
                await shows_not_started(page, language)
                await page.evaluate("document.fonts.ready.then(() => true)")
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SCREENSHOTS / f"watch-{language}-390x844.png"))
            assert i18n.translations(language).gettext(NOT_STARTED) != NOT_STARTED


@pytest.mark.browser
async def test_the_language_switch_changes_the_page_and_is_remembered(tmp_path: Path, browser: Browser) -> None:
    async with (
        live_box(small_config(tmp_path), with_devices=False) as live,
        student(browser, live, "fr-FR") as (
            context,
            page,
        ),
    ):
        await shows_not_started(page, "fr")
        async with page.expect_navigation():
            await page.select_option("#language", "ar")
        await shows_not_started(page, "ar")
        later = await context.new_page()  # the same browser another day: the choice stays
        await later.goto(f"{live.base}/watch/abcdef")
        await shows_not_started(later, "ar")
        await later.goto(f"{live.base}/")
        assert await later.get_attribute("html", "dir") == "rtl"


@pytest.mark.browser
async def test_the_home_page_in_arabic_reads_right_to_left(tmp_path: Path, browser: Browser) -> None:
    config = small_config(tmp_path)
    config.box.language = "ar"
    async with live_box(config, with_devices=False) as live:
        page = await browser.new_page(locale="fr-FR", viewport={"width": 1280, "height": 800})
        await page.goto(f"{live.base}/")  # the home page follows the box, not the browser
        assert await page.get_attribute("html", "lang") == "ar"
        assert await page.get_attribute("html", "dir") == "rtl"
        assert await page.text_content("#doors") == i18n.translations("ar").gettext("On this box")
        name = await page.locator("#name").bounding_box()
        switch = await page.locator("#language").bounding_box()
        assert name is not None
        assert switch is not None
        assert switch["x"] + switch["width"] / 2 < name["x"] + name["width"] / 2  # mirrored: the switch sits left
        await page.evaluate("document.fonts.ready.then(() => true)")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "home-ar-1280x800.png"))
        await page.close()


FACES = {
    "en": set(),
    "fr": set(),
    "uz-Latn": set(),
    "ar": {"noto-naskh-arabic.woff2"},
    "ur": {"noto-nastaliq-urdu.woff2"},
    "km": {"noto-sans-khmer.woff2"},
    "ru": {"noto-sans-cyrillic.woff2"},
}


async def page_fonts(browser: Browser, live: LiveBox, language: str) -> tuple[set[str], list[str]]:
    """(the font files a student page in `language` downloads, the families `document.fonts` has loaded)."""
    context = await browser.new_context()
    try:
        await context.add_cookies([{"name": i18n.LANGUAGE_COOKIE, "value": language, "url": live.base}])
        page = await context.new_page()
        fetched: set[str] = set()
        page.on("response", lambda answer: fetched.add(answer.url.rsplit("/", 1)[-1]))
        await page.goto(f"{live.base}/watch/abcdef")
        await shows_not_started(page, language)
        loaded: list[str] = await page.evaluate(
            """async () => { await document.fonts.ready;
               return [...document.fonts].filter((f) => f.status === "loaded").map((f) => f.family); }"""
        )
        return {name for name in fetched if name.endswith(".woff2")}, loaded
    finally:
        await context.close()


@pytest.mark.browser
async def test_each_page_downloads_the_font_of_its_script_and_no_other(tmp_path: Path, browser: Browser) -> None:
    async with live_box(small_config(tmp_path), with_devices=False) as live:
        for language, faces in FACES.items():
            fetched, loaded = await page_fonts(browser, live, language)
            assert fetched == faces, language
            family = "Classbox Nastaliq" if language == "ur" else "Classbox Noto"
            assert (family in loaded) == bool(faces), (language, loaded)


@pytest.fixture
def plural_catalogs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Russian and Arabic catalogs with one plural message (the real catalogs have none yet)."""
    forms = {
        "ru": ("{count} ученик смотрит", "{count} ученика смотрят", "{count} учеников смотрят"),
        "ar": tuple(f"form{index} {{count}}" for index in range(6)),
    }
    for language, translated in forms.items():
        catalog = Catalog(locale=language, domain=i18n.DOMAIN)
        catalog.add(("{count} student watching", "{count} students watching"), translated)
        target = tmp_path / "locales" / language / "LC_MESSAGES"
        target.mkdir(parents=True)
        with (target / f"{i18n.DOMAIN}.mo").open("wb") as out:
            write_mo(out, catalog)
    monkeypatch.setattr(i18n, "LOCALES", tmp_path / "locales")
    i18n.translations.cache_clear()
    yield
    i18n.translations.cache_clear()


def test_a_plural_message_reaches_scripts_with_the_form_for_each_category(plural_catalogs: None) -> None:
    russian = i18n.messages("ru")
    assert russian["{count} student watching"] == [
        "{count} ученик смотрит",
        "{count} ученика смотрят",
        "{count} учеников смотрят",
    ]
    assert russian[""] == {"plural": {"one": 0, "few": 1, "many": 2}}
    assert i18n.plural_indices("ar") == {"zero": 0, "one": 1, "two": 2, "few": 3, "many": 4, "other": 5}


PLURALS = """async () => {
  const m = await import("/static/i18n.js");
  await m.loadMessages();
  const said = (n) => m.ngettext("{count} student watching", "{count} students watching", n);
  return [0, 1, 2, 3, 5, 11, 21, 101].map((n) => m.format(said(n), { count: n }));
}"""


def blank_page(language: str) -> Callable[[Route], Awaitable[None]]:
    """A route handler answering with an empty page in `language`."""

    async def answer(route: Route) -> None:
        page = f'<!doctype html><html lang="{language}"><body></body></html>'
        await route.fulfill(body=page, content_type="text/html")

    return answer


@pytest.mark.browser
async def test_scripts_pick_the_languages_plural_form(tmp_path: Path, browser: Browser, plural_catalogs: None) -> None:
    async with live_box(small_config(tmp_path), with_devices=False) as live:
        page = await browser.new_page()
        for language in ("ru", "ar", "en"):
            await page.route(f"{live.base}/plural", blank_page(language))  # a page of the box's origin
            await page.goto(f"{live.base}/plural")
            shown = await page.evaluate(PLURALS)
            await page.unroute(f"{live.base}/plural")
            expected = {
                "ru": [
                    "0 учеников смотрят",
                    "1 ученик смотрит",
                    "2 ученика смотрят",
                    "3 ученика смотрят",
                    "5 учеников смотрят",
                    "11 учеников смотрят",
                    "21 ученик смотрит",
                    "101 ученик смотрит",
                ],
                "ar": ["form0 0", "form1 1", "form2 2", "form3 3", "form3 5", "form4 11", "form4 21", "form5 101"],
                "en": [
                    "0 students watching",
                    "1 student watching",
                    "2 students watching",
                    "3 students watching",
                    "5 students watching",
                    "11 students watching",
                    "21 students watching",
                    "101 students watching",
                ],
            }[language]
            assert shown == expected, language
        await page.close()


def test_the_service_layers_messages_read_in_the_pages_language_and_stay_english_for_machines() -> None:
    for language in i18n.LANGUAGES:
        shown = i18n.translate(DISK_FULL_LIVE, language)
        assert (shown == DISK_FULL_LIVE) == (language == "en"), language
        assert i18n.messages(language).get(DISK_FULL_LIVE, DISK_FULL_LIVE) == shown
    assert i18n.translate("Disk full: the lesson is live but no longer recorded", "km").startswith("ថាសពេញ៖")


def test_a_trans_block_over_several_lines_reads_as_the_one_line_the_catalog_has() -> None:
    page = "{% trans %}\n  No lesson is live\n  right now.\n{% endtrans %}"
    assert i18n.environment("fr").from_string(page).render() == "Aucune leçon n’est en direct pour le moment."
