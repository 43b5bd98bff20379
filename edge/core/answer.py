"""`Answer`: the base of the typed answers the service layer gives its doors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Answer(BaseModel):
    """A door's answer: our code reads its attributes; `to_json()` is what the web door sends."""

    model_config = ConfigDict(frozen=True)

    def to_json(self) -> dict[str, Any]:
        """The JSON form the doors answer with."""
        return self.model_dump(mode="json")

    def __getitem__(self, key: str) -> object:
        """One field of the JSON form, for readers of the JSON (tests, scripts); our code reads attributes."""
        return self.to_json()[key]
