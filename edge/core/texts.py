"""Marking the messages people read that the service layer and components produce (alarms, status, console).

`N_("Camera disconnected: check the USB cable")` returns the English text unchanged and marks it for
the catalogs; the door that shows it translates it into the reader's language
(`edge.doors.web.i18n.translations(language).gettext(message)`).
"""

from __future__ import annotations


def N_(message: str) -> str:  # noqa: N802 - gettext's name for a deferred translation mark
    """Mark `message` for translation; it stays English until a door shows it."""
    return message
