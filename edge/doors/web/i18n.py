"""The one translation mechanism of every door: gettext catalogs (Babel), Jinja2's i18n extension, JSON for scripts.

A page's language is `page_language(request, box)`: the switch's cookie (`templates/_language.html`),
then for student pages the browser's `Accept-Language`, then the box default. Templates format
numbers, percentages, durations and dates with Babel's filters (`{{ n|format_number }}`).

Catalogs live in `locales/<language>/LC_MESSAGES/classbox.mo` (compiled from the `.po` files beside
them); a language without one, or a string without a translation, reads in English. Templates mark
strings with `{{ _("Start lesson") }}` or `{% trans %}...{% endtrans %}` (new-style gettext:
`_("Hello %(name)s", name=...)`); scripts import `_` from `/static/i18n.js`, which reads the same
catalog as JSON (`/i18n/<language>.json`, `{msgid: msgstr}`) from the page's `<html lang>`.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

from babel import Locale
from babel.core import negotiate_locale
from babel.dates import format_datetime as babel_datetime
from babel.dates import format_timedelta
from babel.numbers import format_decimal
from babel.numbers import format_percent as babel_percent
from babel.support import NullTranslations, Translations
from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape

from edge.core.config import BoxConfig

WEB = Path(__file__).resolve().parent
LOCALES = WEB / "locales"
DOMAIN = "classbox"
RTL_LANGUAGES = {"ar", "fa", "he", "ur", "ps", "dv", "yi"}
# The languages the box offers (BCP 47), each named in its own language for the switch.
LANGUAGES = {
    "en": "English",
    "fr": "Français",
    "ar": "العربية",
    "ur": "اردو",
    "km": "ខ្មែរ",
    "uz-Latn": "Oʻzbekcha",
    "ru": "Русский",
}
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "classbox_lang"
_QUALITY_RE = re.compile(r"^q=([01](?:\.\d{0,3})?)$")


class HasConfig(Protocol):
    """What `page_language` needs of the service layer: its config (the box default language)."""

    @property
    def config(self) -> BoxConfig: ...


def base_language(language: str) -> str:
    """`ar` of `ar-EG`; the catalogs' directory name of a BCP 47 tag (`uz-Latn` -> `uz_Latn`)."""
    return language.replace("-", "_")


@cache
def translations(language: str) -> NullTranslations:
    """The gettext catalog of `language` (English, i.e. the msgids, when there is none)."""
    if language.split("-")[0] == "en":
        return NullTranslations()
    loaded = Translations.load(str(LOCALES), [base_language(language)], DOMAIN)
    return loaded


def offered(language: str | None) -> str | None:
    """`language` spelled as the box offers it (`uz-latn` -> `uz-Latn`), or None when it is not offered."""
    if not language:
        return None
    wanted = language.strip().lower()
    return next((code for code in LANGUAGES if code.lower() == wanted), None)


def accepted(header: str) -> list[str]:
    """The tags of an `Accept-Language` header, most wanted first (`q=0` and malformed parts dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:32]):
        tag, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            match = _QUALITY_RE.match(param)
            quality = float(match.group(1)) if match else 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(header: str) -> str | None:
    """The offered language a browser's `Accept-Language` prefers (Babel's negotiation), if any."""
    found = negotiate_locale(accepted(header), list(LANGUAGES), sep="-", aliases={"uz": "uz_Latn"})
    return offered(found)


def page_language(request: Request, box: HasConfig, *, student: bool = False) -> str:
    """The language of a page: the switch's cookie, then (student pages) the browser's, then the box default."""
    chosen = offered(request.cookies.get(LANGUAGE_COOKIE))
    if chosen is None and student:
        chosen = negotiate(request.headers.get("accept-language", ""))
    return chosen or offered(box.config.box.language) or DEFAULT_LANGUAGE


def translate(message: str, language: str) -> str:
    """A message marked with `N_()` (alarms, status) in `language`, for a door to show."""
    return translations(language).gettext(message)


def babel_locale(language: str) -> Locale:
    """Babel's locale for an offered tag (`uz-Latn` -> `uz_Latn`); English for anything Babel lacks."""
    try:
        return Locale.parse(base_language(language))
    except (ValueError, LookupError):
        return Locale.parse(DEFAULT_LANGUAGE)


def format_number(value: float, language: str) -> str:
    """`1234.5` as `language` writes it (`1 234,5` in French)."""
    return format_decimal(value, locale=babel_locale(language), numbering_system="default")


def format_percent(value: float, language: str) -> str:
    """A ratio (`0.4`) as a percentage in `language` (`40 %` in French)."""
    return babel_percent(value, locale=babel_locale(language), numbering_system="default")


def format_duration(
    seconds: float, language: str, *, width: Literal["narrow", "short", "medium", "long"] = "short"
) -> str:
    """A duration in seconds, rounded to its largest unit, in `language` (`2 min`)."""
    return format_timedelta(timedelta(seconds=seconds), locale=babel_locale(language), format=width)


def format_datetime(
    value: datetime | float, language: str, *, width: Literal["short", "medium", "long", "full"] = "short"
) -> str:
    """A moment (a datetime or a Unix time) in `language` and the box's time zone."""
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value).astimezone()
    return babel_datetime(moment, width, locale=babel_locale(language))


def direction(language: str) -> str:
    """`rtl` for right-to-left languages, else `ltr` (the pages' `dir` attribute)."""
    return "rtl" if language.split("-")[0] in RTL_LANGUAGES else "ltr"


@cache
def environment(language: str) -> Environment:
    """The Jinja2 environment whose `_`, `gettext`, `ngettext` and `{% trans %}` speak `language`."""
    env = Environment(
        loader=FileSystemLoader(WEB / "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True  # as babel.cfg extracts them: a multi-line {% trans %} is one line
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals["languages"] = LANGUAGES
    env.filters["format_number"] = lambda value: format_number(value, language)
    env.filters["format_percent"] = lambda value: format_percent(value, language)
    env.filters["format_duration"] = lambda value, width="short": format_duration(value, language, width=width)
    env.filters["format_datetime"] = lambda value, width="short": format_datetime(value, language, width=width)
    return env


def render(template: str, language: str, **values: Any) -> str:
    """A page from `templates/` in `language`, with its `lang` and `dir`."""
    return environment(language).get_template(template).render(lang=language, direction=direction(language), **values)


async def render_page(template: str, language: str, **values: Any) -> str:
    """`render` in a worker thread: a language's first page loads its catalog and compiles templates."""
    return await asyncio.to_thread(render, template, language, **values)


def messages(language: str) -> dict[str, Any]:
    """The catalog of `language` as scripts read it: each translated msgid and its translation.

    A plural message maps its singular msgid to its forms; then `""` (gettext's header msgid, never a
    message) holds `{"plural": {CLDR category: form index}}` for `Intl.PluralRules` to pick a form.
    """
    catalog = translations(language)
    found: dict[str, Any] = {}
    plurals: dict[str, dict[int, str]] = {}
    for key, value in getattr(catalog, "_catalog", {}).items():
        if isinstance(key, str) and key and isinstance(value, str) and value:
            found[key] = value
        elif isinstance(key, tuple) and key[0] and isinstance(value, str) and value:
            plurals.setdefault(key[0], {})[key[1]] = value
    for msgid, forms in plurals.items():
        found[msgid] = [forms[index] for index in sorted(forms)]
    if plurals:
        found[""] = {"plural": plural_indices(language)}
    return found


def plural_indices(language: str) -> dict[str, int]:
    """Which plural form of the catalog each CLDR category (`one`, `few`, ...) of `language` takes."""
    catalog = translations(language)
    choose = getattr(catalog, "plural", lambda n: int(n != 1))
    rule = babel_locale(language).plural_form
    indices: dict[str, int] = {}
    for count in range(1001):
        indices.setdefault(rule(count), int(choose(count)))
    return indices
