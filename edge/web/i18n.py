"""The one translation mechanism of every door: gettext catalogs (Babel), Jinja2's i18n extension, JSON for scripts.

Catalogs live in `locales/<language>/LC_MESSAGES/classbox.mo` (compiled from the `.po` files beside
them); a language without one, or a string without a translation, reads in English. Templates mark
strings with `{{ _("Start lesson") }}` or `{% trans %}...{% endtrans %}` (new-style gettext:
`_("Hello %(name)s", name=...)`); scripts import `_` from `/static/i18n.js`, which reads the same
catalog as JSON (`/i18n/<language>.json`, `{msgid: msgstr}`) from the page's `<html lang>`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

WEB = Path(__file__).resolve().parent
LOCALES = WEB / "locales"
DOMAIN = "classbox"
RTL_LANGUAGES = {"ar", "fa", "he", "ur", "ps", "dv", "yi"}


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
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def render(template: str, language: str, **values: Any) -> str:
    """A page from `templates/` in `language`, with its `lang` and `dir`."""
    return environment(language).get_template(template).render(lang=language, direction=direction(language), **values)


def messages(language: str) -> dict[str, str]:
    """The catalog of `language` as scripts read it: every translated msgid and its translation."""
    catalog = translations(language)
    found: dict[str, str] = {}
    for key, value in getattr(catalog, "_catalog", {}).items():
        if isinstance(key, str) and key and isinstance(value, str) and value:
            found[key] = value
    return found
