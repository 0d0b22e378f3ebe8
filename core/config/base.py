"""What every model of the site file shares: frozen, no unknown keys, ids that fit URLs."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

EntityId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", strict=True)
]
"""Ids are ASCII, start alnum, at most 64 chars: they appear in URLs, topics and tags."""


class FieldError(ValueError):
    """A model-level check that knows which key is wrong: the `ConfigError` names `key`
    instead of the whole entry (a plain `ValueError` from a model validator can only point
    at the entry)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, use_attribute_docstrings=True
    )
