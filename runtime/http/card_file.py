"""The card file: what the agent card says about this server, kept with its deployment.

JSON or TOML (by the file's suffix), with the card's own field names (camelCase;
snake_case works too)::

    name = "Research desk"
    description = "Answers research questions with sources."
    version = "2.1.0"
    documentationUrl = "https://example.com/docs"
    provider = { organization = "Example Corp", url = "https://example.com" }

    [[skills]]
    id = "research"
    name = "Research"
    description = "Finds and summarises sources"
    tags = ["research", "web"]

    [[extensions]]
    uri = "https://example.com/ext/citations/v1"
    description = "Answers carry citations"

A mistake is a `CardFileError` naming the file and the field, before the server starts.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import pydantic

from protocol.jsonrpc import format_validation_error
from protocol.models import AgentExtension, AgentProvider, AgentSkill
from runtime.http.card import CardSettings

__all__ = ["CardFileError", "load_card_settings"]

_M = TypeVar("_M", bound=pydantic.BaseModel)

_TEXT = ("name", "description", "version", "documentationUrl", "iconUrl")
_KNOWN = {*_TEXT, "provider", "skills", "extensions"}
_SNAKE = {"documentation_url": "documentationUrl", "icon_url": "iconUrl"}


class CardFileError(ValueError):
    """The card file cannot be used; the message names the file and what to fix."""


def load_card_settings(path: str | Path) -> CardSettings:
    """The `CardSettings` in the file at `path`."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CardFileError(f"card file {where}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise CardFileError(f"card file {where}: not UTF-8 text") from None
    try:
        raw: Any = (json.loads(text) if Path(path).suffix.lower() == ".json"
                    else tomllib.loads(text))
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if Path(path).suffix.lower() == ".json" else "TOML"
        raise CardFileError(f"card file {where}: not valid {kind}: {exc}") from None
    if not isinstance(raw, dict):
        raise CardFileError(f"card file {where}: must hold an object of card fields")
    data = {_SNAKE.get(k, k): v for k, v in raw.items()}
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise CardFileError(f"card file {where}: unknown field(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(_KNOWN))}")
    for key in _TEXT:
        if key in data and not (isinstance(data[key], str) and data[key].strip()):
            raise CardFileError(f"card file {where}: {key} must be a non-empty string")
    for key in ("skills", "extensions"):
        if not isinstance(data.get(key, []), list):
            raise CardFileError(f"card file {where}: {key} must be a list")
    provider = _model(AgentProvider, data["provider"], "provider", where) \
        if "provider" in data else None
    skills = tuple(_model(AgentSkill, s, f"skills[{i}]", where)
                   for i, s in enumerate(data.get("skills", [])))
    extensions = tuple(_model(AgentExtension, e, f"extensions[{i}]", where)
                       for i, e in enumerate(data.get("extensions", [])))
    ids = [s.id for s in skills]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise CardFileError(f"card file {where}: skill id(s) {', '.join(twice)} given twice")
    return CardSettings(name=data.get("name"), description=data.get("description"),
                        version=data.get("version"), provider=provider,
                        documentation_url=data.get("documentationUrl"),
                        icon_url=data.get("iconUrl"), skills=skills, extensions=extensions)


def _model(model: type[_M], value: Any, field: str, where: str) -> _M:
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise CardFileError(f"card file {where}: {format_validation_error(exc, field)}") from None
