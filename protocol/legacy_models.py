"""The A2A 0.1/0.2 wire models (`tasks/send` with a client-chosen task id).

Gateways written against the first A2A drafts still send these shapes: the task
``id`` and ``sessionId`` chosen by the client at the top of the params, parts
tagged with ``type``, ``pushNotification`` as a bare ``{url, token}``. Two part
dialects are accepted, because both are on the wire:

* the 0.1 schema's: ``{"type": "file", "file": {"name", "mimeType", "bytes"|"uri"}}``
  and ``{"type": "data", "data": {...}}``;
* the flat one some gateways use (Abathur's, for one): ``{"type": "file",
  "mimeType", "fileName", "data": <base64>}`` and ``{"type": "data", "mimeType",
  "data": <string>}``.

`protocol.legacy` validates with these models, so a bad payload raises
``pydantic.ValidationError`` whose ``loc`` names the wire field, and each
model's ``to_v10()`` writes the 1.0 ProtoJSON form. Members a model does not
know are kept (``extra="allow"``) and travel in metadata under
`EXTENSION_FIELDS_KEY`, so an extension such as a worktree comes back where it
was (`protocol.legacy_render`).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "EXTENSION_FIELDS_KEY",
    "TASK_ID_PATTERN",
    "WIRE_KEY",
    "LegacyArtifact",
    "LegacyFile",
    "LegacyMessage",
    "LegacyPart",
    "LegacyPushNotification",
    "TaskPushNotificationParams",
    "TaskSendParams",
]

EXTENSION_FIELDS_KEY = "trio-a2a/extension-fields"
"""Metadata key holding the members of a 0.1/0.2 object that 1.0 has no field for."""
WIRE_KEY = "trio-a2a/wire"
"""Metadata key on a task's first message: the 0.1/0.2 part dialect it was sent in,
``"a2a-0.1"`` (the schema's) or ``"a2a-0.1-flat"``; tasks/get answers in it."""

TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$"
"""A client-chosen task id: 1-128 characters that need no escaping in a URL path
(a UUID fits), so the task is reachable at ``/tasks/{id}`` too."""
_TASK_ID = re.compile(TASK_ID_PATTERN)


def check_base64(value: str, error: str) -> str:
    """`value` padded if it is base64 text (standard or URL-safe alphabet, padding
    optional), else ``ValueError(error)``: stricter than a decoder that skips
    characters outside the alphabet, so a typo is reported, not stored."""
    text = value.strip()
    if "=" not in text:
        text += "=" * (-len(text) % 4)
    try:
        base64.b64decode(text.translate(_URLSAFE), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(error) from exc
    return text


_URLSAFE = str.maketrans("-_", "+/")


def put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def with_extensions(meta: dict[str, Any] | None, extra: dict[str, Any] | None
                    ) -> dict[str, Any] | None:
    """`meta` with the unknown members `extra` under `EXTENSION_FIELDS_KEY`."""
    if not extra:
        return meta
    return {**(meta or {}), EXTENSION_FIELDS_KEY: dict(extra)}


class _Legacy(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def extensions(self) -> dict[str, Any] | None:
        return dict(self.model_extra) if self.model_extra else None


class LegacyFile(_Legacy):
    """The 0.1 schema's FileContent: bytes or uri, with name and mimeType."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    bytes: str | None = None
    uri: str | None = None
    mime_type: str | None = None
    name: str | None = None

    @field_validator("bytes")
    @classmethod
    def _base64(cls, v: str | None) -> str | None:
        return None if v is None else check_base64(v, "bytes must be base64-encoded")

    @model_validator(mode="after")
    def _one_source(self) -> LegacyFile:
        if (self.bytes is None) == (self.uri is None):
            raise ValueError("a file needs exactly one of bytes or uri")
        return self


class LegacyPart(_Legacy):
    """One part, tagged with ``type`` (inferred from its members when left out)."""

    type: Literal["text", "file", "data"]
    text: str | None = None
    file: LegacyFile | None = None
    data: Any = None
    mime_type: str | None = None
    file_name: str | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _infer_type(cls, v: Any) -> Any:
        if isinstance(v, dict) and "type" not in v:
            if "text" in v:
                v = {**v, "type": "text"}
            elif "file" in v or "fileName" in v:
                v = {**v, "type": "file"}
            elif "data" in v:
                v = {**v, "type": "data"}
        return v

    @model_validator(mode="after")
    def _content_matches_type(self) -> LegacyPart:
        if self.type == "text":
            if not isinstance(self.text, str):
                raise ValueError("a text part needs its text (a string)")
        elif self.type == "data":
            if self.data is None:
                raise ValueError("a data part needs its data")
        elif self.file is not None:
            if self.data is not None:
                raise ValueError("a file part has either file or data (base64), not both")
        elif not isinstance(self.data, str):
            raise ValueError("a file part needs file {bytes|uri} or data (base64 text)")
        else:
            self.data = check_base64(self.data, "file data must be base64-encoded bytes")
        return self

    @property
    def flat(self) -> bool:
        """Whether this part uses the flat dialect (file data or string data at the top)."""
        return ((self.type == "file" and self.file is None)
                or (self.type == "data" and not isinstance(self.data, dict)))

    def to_v10(self) -> dict[str, Any]:
        meta = with_extensions(self.metadata, self.extensions())
        if self.type == "text":
            out: dict[str, Any] = {"text": self.text}
        elif self.type == "data":
            out = {"data": self.data}
            put(out, "mediaType", self.mime_type)
        elif self.file is not None:
            f = self.file
            out = {"raw": f.bytes} if f.bytes is not None else {"url": f.uri}
            put(out, "mediaType", f.mime_type)
            put(out, "filename", f.name)
        else:
            out = {"raw": self.data}
            put(out, "mediaType", self.mime_type)
            put(out, "filename", self.file_name)
        put(out, "metadata", meta)
        return out


class LegacyMessage(_Legacy):
    role: Literal["user", "agent"]
    parts: list[LegacyPart] = Field(min_length=1)
    metadata: dict[str, Any] | None = None
    message_id: str | None = Field(default=None, min_length=1)

    def to_v10(self, message_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "messageId": self.message_id or message_id,
            "role": "ROLE_USER" if self.role == "user" else "ROLE_AGENT",
            "parts": [p.to_v10() for p in self.parts],
        }
        put(out, "metadata", with_extensions(self.metadata, self.extensions()))
        return out


class LegacyAuthentication(_Legacy):
    schemes: list[str] = Field(default_factory=list)
    credentials: str | None = None


class LegacyPushNotification(_Legacy):
    url: str = Field(min_length=1)
    token: str | None = None
    authentication: LegacyAuthentication | None = None

    def to_v10(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url}
        put(out, "token", self.token)
        auth = self.authentication
        if auth is not None and auth.schemes:
            out["authentication"] = {"scheme": auth.schemes[0]}
            put(out["authentication"], "credentials", auth.credentials)
        return out


class TaskPushNotificationParams(_Legacy):
    """tasks/pushNotification/set params: ``{id, pushNotificationConfig}``."""

    id: str = Field(min_length=1)
    push_notification_config: LegacyPushNotification

    def to_v10(self) -> dict[str, Any]:
        return {"taskId": self.id, **self.push_notification_config.to_v10()}


class TaskSendParams(_Legacy):
    """tasks/send, tasks/sendSubscribe and tasks/sendStream params."""

    id: str
    session_id: str | None = Field(default=None, min_length=1)
    message: LegacyMessage
    push_notification: LegacyPushNotification | None = None
    accepted_output_modes: list[str] | None = None
    history_length: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None

    @field_validator("id")
    @classmethod
    def _task_id(cls, v: str) -> str:
        if not _TASK_ID.match(v):
            raise ValueError(
                f"task id {v[:140]!r} is not 1-128 characters of letters, digits, "
                "'.', '_', '~' or '-' starting with a letter or digit (a UUID fits)"
            )
        return v


class LegacyArtifact(_Legacy):
    """A 0.1/0.2 artifact as a legacy agent or gateway writes it."""

    name: str | None = None
    description: str | None = None
    parts: list[LegacyPart]
    metadata: dict[str, Any] | None = None
    index: int = 0
    append: bool | None = None
    last_chunk: bool | None = None

    def to_v10(self, artifact_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"artifactId": artifact_id,
                               "parts": [p.to_v10() for p in self.parts]}
        put(out, "name", self.name)
        put(out, "description", self.description)
        put(out, "metadata", with_extensions(self.metadata, self.extensions()))
        return out
