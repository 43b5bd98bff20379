"""What every section shares: unknown keys are errors, assignments are checked; names, ports, languages."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
# The languages the pages are translated into (BCP 47; edge/doors/web/locales/ holds their catalogs).
Language = Literal["en", "fr", "ar", "ur", "km", "uz-Latn", "ru"]
Port = Annotated[int, Field(ge=1, le=65535)]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
