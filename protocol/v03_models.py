"""The A2A 0.3 JSON-RPC wire models: what a 0.3 payload must look like.

`protocol.v03` validates every incoming 0.3 payload with these models, so a bad
one raises ``pydantic.ValidationError`` whose ``loc`` names the 0.3 field, and
each model's ``to_v10()`` writes its 1.0 ProtoJSON form. They are kept apart from
the translation functions so that each module stays small; import them through
`protocol.v03`, which re-exports the public ones (the agent-card model lives in
`protocol.v03_card` with the rest of the card translation).

The reserved part-metadata keys that carry what 0.3 has no field for are defined
here because `Part.to_v10` reads them; `protocol.v03` explains them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from protocol.models import check_base64

__all__ = [
    "DATA_WRAPPED_KEY",
    "FILENAME_KEY",
    "MEDIA_TYPE_KEY",
    "Artifact",
    "DeleteTaskPushNotificationConfigParams",
    "FileContent",
    "GetTaskPushNotificationConfigParams",
    "ListTaskPushNotificationConfigParams",
    "Message",
    "MessageSendConfiguration",
    "MessageSendParams",
    "Part",
    "PushNotificationAuthenticationInfo",
    "PushNotificationConfig",
    "Task",
    "TaskArtifactUpdateEvent",
    "TaskIdParams",
    "TaskPushNotificationConfig",
    "TaskQueryParams",
    "TaskStatus",
    "TaskStatusUpdateEvent",
]

DATA_WRAPPED_KEY = "data_part_compat"
MEDIA_TYPE_KEY = "a2a.v1.mediaType"
FILENAME_KEY = "a2a.v1.filename"

_STATE_TO_V03: dict[str, str] = {
    "TASK_STATE_UNSPECIFIED": "unknown",
    "TASK_STATE_SUBMITTED": "submitted",
    "TASK_STATE_WORKING": "working",
    "TASK_STATE_COMPLETED": "completed",
    "TASK_STATE_FAILED": "failed",
    "TASK_STATE_CANCELED": "canceled",
    "TASK_STATE_INPUT_REQUIRED": "input-required",
    "TASK_STATE_REJECTED": "rejected",
    "TASK_STATE_AUTH_REQUIRED": "auth-required",
}
_STATE_FROM_V03 = {v: k for k, v in _STATE_TO_V03.items()}
_ROLE_TO_V03: dict[str, str] = {"ROLE_USER": "user", "ROLE_AGENT": "agent"}
_ROLE_FROM_V03 = {v: k for k, v in _ROLE_TO_V03.items()}

State03 = Literal[
    "submitted", "working", "input-required", "completed", "canceled", "failed",
    "rejected", "auth-required", "unknown",
]
_NonEmpty = Annotated[str, Field(min_length=1)]


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


class _V03(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class FileContent(_V03):
    """0.3 FileWithBytes / FileWithUri, told apart by which member is set."""

    bytes: str | None = None
    uri: str | None = None
    mime_type: str | None = None
    name: str | None = None

    @field_validator("bytes")
    @classmethod
    def _base64(cls, v: str | None) -> str | None:
        return None if v is None else check_base64(v, "bytes must be base64-encoded")

    @model_validator(mode="after")
    def _one_source(self) -> FileContent:
        if (self.bytes is None) == (self.uri is None):
            raise ValueError("a file needs exactly one of bytes or uri")
        return self


_PART_CONTENT = ("text", "file", "data")


class Part(_V03):
    """A 0.3 part; `kind` may be left out when exactly one content member is present.

    One flat model rather than a tagged union keeps error locations short
    (``parts.0.text``, not ``parts.0.text.text``).
    """

    kind: Literal["text", "file", "data"] | None = None
    text: str | None = None
    file: FileContent | None = None
    data: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _ignore_other_content(cls, v: Any) -> Any:
        # Members that do not belong to the declared kind are unknown fields.
        if isinstance(v, dict):
            kind = v.get("kind")
            if kind in _PART_CONTENT and any(k in v for k in _PART_CONTENT if k != kind):
                v = {k: x for k, x in v.items() if k == kind or k not in _PART_CONTENT}
        return v

    @model_validator(mode="after")
    def _content_matches_kind(self) -> Part:
        if self.kind is None:
            present = [n for n in _PART_CONTENT if getattr(self, n) is not None]
            if len(present) != 1:
                raise ValueError("a part needs a kind, or exactly one of text, file or data")
            self.kind = present[0]  # type: ignore[assignment]
        elif getattr(self, self.kind) is None:
            raise ValueError(f"a {self.kind} part needs its {self.kind} member")
        return self

    def to_v10(self) -> dict[str, Any]:
        """The 1.0 ProtoJSON form of this part."""
        meta = self.metadata
        if self.kind == "file":
            f = self.file
            assert f is not None
            out: dict[str, Any] = {"raw": f.bytes} if f.bytes is not None else {"url": f.uri}
            _put(out, "mediaType", f.mime_type)
            _put(out, "filename", f.name)
            _put(out, "metadata", meta)
            return out
        if self.kind == "text":
            out = {"text": self.text}
        else:
            data: Any = self.data
            if (
                meta is not None and meta.get(DATA_WRAPPED_KEY) is True
                and isinstance(data, dict) and len(data) == 1 and data.get("value") is not None
            ):
                data = data["value"]
                meta = {k: v for k, v in meta.items() if k != DATA_WRAPPED_KEY}
                if not meta:
                    meta = None
            out = {"data": data}
        if meta is not None and (MEDIA_TYPE_KEY in meta or FILENAME_KEY in meta):
            meta = dict(meta)
            for key, field in ((MEDIA_TYPE_KEY, "mediaType"), (FILENAME_KEY, "filename")):
                if isinstance(meta.get(key), str):
                    out[field] = meta.pop(key)
            if not meta:
                meta = None
        _put(out, "metadata", meta)
        return out


class Message(_V03):
    kind: Literal["message"] = "message"
    message_id: _NonEmpty
    role: Literal["user", "agent"]
    parts: list[Part]
    context_id: str | None = None
    task_id: str | None = None
    reference_task_ids: list[str] | None = None
    extensions: list[str] | None = None
    metadata: dict[str, Any] | None = None

    def to_v10(self) -> dict[str, Any]:
        """The 1.0 ProtoJSON form of this message."""
        out: dict[str, Any] = {
            "messageId": self.message_id,
            "role": _ROLE_FROM_V03[self.role],
            "parts": [p.to_v10() for p in self.parts],
        }
        _put(out, "contextId", self.context_id)
        _put(out, "taskId", self.task_id)
        _put(out, "referenceTaskIds", self.reference_task_ids)
        _put(out, "extensions", self.extensions)
        _put(out, "metadata", self.metadata)
        return out


class TaskStatus(_V03):
    state: State03
    message: Message | None = None
    timestamp: str | None = None

    def to_v10(self) -> dict[str, Any]:
        """The 1.0 ProtoJSON form of this status."""
        out: dict[str, Any] = {"state": _STATE_FROM_V03[self.state]}
        if self.message is not None:
            out["message"] = self.message.to_v10()
        _put(out, "timestamp", self.timestamp)
        return out


class Artifact(_V03):
    artifact_id: _NonEmpty
    parts: list[Part]
    name: str | None = None
    description: str | None = None
    extensions: list[str] | None = None
    metadata: dict[str, Any] | None = None

    def to_v10(self) -> dict[str, Any]:
        """The 1.0 ProtoJSON form of this artifact."""
        out: dict[str, Any] = {
            "artifactId": self.artifact_id, "parts": [p.to_v10() for p in self.parts]
        }
        _put(out, "name", self.name)
        _put(out, "description", self.description)
        _put(out, "extensions", self.extensions)
        _put(out, "metadata", self.metadata)
        return out


class Task(_V03):
    kind: Literal["task"] = "task"
    id: str
    context_id: str
    status: TaskStatus
    artifacts: list[Artifact] | None = None
    history: list[Message] | None = None
    metadata: dict[str, Any] | None = None

    def to_v10(self) -> dict[str, Any]:
        """The 1.0 ProtoJSON form of this task."""
        out: dict[str, Any] = {
            "id": self.id, "contextId": self.context_id, "status": self.status.to_v10()
        }
        if self.artifacts is not None:
            out["artifacts"] = [a.to_v10() for a in self.artifacts]
        if self.history is not None:
            out["history"] = [m.to_v10() for m in self.history]
        _put(out, "metadata", self.metadata)
        return out


class TaskStatusUpdateEvent(_V03):
    kind: Literal["status-update"] = "status-update"
    task_id: str
    context_id: str
    status: TaskStatus
    final: bool = False
    metadata: dict[str, Any] | None = None

    def to_v10(self) -> dict[str, Any]:
        """The 1.0 ProtoJSON form of this event (`final` has no 1.0 counterpart)."""
        out: dict[str, Any] = {
            "taskId": self.task_id, "contextId": self.context_id, "status": self.status.to_v10()
        }
        _put(out, "metadata", self.metadata)
        return out


class TaskArtifactUpdateEvent(_V03):
    kind: Literal["artifact-update"] = "artifact-update"
    task_id: str
    context_id: str
    artifact: Artifact
    append: bool | None = None
    last_chunk: bool | None = None
    metadata: dict[str, Any] | None = None

    def to_v10(self) -> dict[str, Any]:
        """The 1.0 ProtoJSON form of this event."""
        out: dict[str, Any] = {
            "taskId": self.task_id, "contextId": self.context_id,
            "artifact": self.artifact.to_v10(),
        }
        _put(out, "append", self.append)
        _put(out, "lastChunk", self.last_chunk)
        _put(out, "metadata", self.metadata)
        return out


class PushNotificationAuthenticationInfo(_V03):
    schemes: list[str]
    credentials: str | None = None


class PushNotificationConfig(_V03):
    url: _NonEmpty
    id: str | None = None
    token: str | None = None
    authentication: PushNotificationAuthenticationInfo | None = None

    def to_v10(self, task_id: str | None = None) -> dict[str, Any]:
        """The flat 1.0 TaskPushNotificationConfig."""
        out: dict[str, Any] = {"url": self.url}
        _put(out, "taskId", task_id)
        _put(out, "id", self.id)
        _put(out, "token", self.token)
        auth = self.authentication
        if auth is not None:
            a: dict[str, Any] = {"scheme": auth.schemes[0] if auth.schemes else ""}
            _put(a, "credentials", auth.credentials)
            out["authentication"] = a
        return out


class TaskPushNotificationConfig(_V03):
    task_id: _NonEmpty
    push_notification_config: PushNotificationConfig

    def to_v10(self) -> dict[str, Any]:
        """The flat 1.0 TaskPushNotificationConfig."""
        return self.push_notification_config.to_v10(self.task_id)


class MessageSendConfiguration(_V03):
    accepted_output_modes: list[str] | None = None
    history_length: int | None = Field(default=None, ge=0)
    push_notification_config: PushNotificationConfig | None = None
    blocking: bool | None = None

    def to_v10(self) -> dict[str, Any]:
        """The 1.0 SendMessageConfiguration (blocking becomes returnImmediately)."""
        out: dict[str, Any] = {}
        _put(out, "acceptedOutputModes", self.accepted_output_modes)
        if self.history_length:  # 0 meant "no limit" in 0.3
            out["historyLength"] = self.history_length
        if self.push_notification_config is not None:
            out["taskPushNotificationConfig"] = self.push_notification_config.to_v10()
        if self.blocking is not None:
            out["returnImmediately"] = not self.blocking
        return out


class MessageSendParams(_V03):
    message: Message
    configuration: MessageSendConfiguration | None = None
    metadata: dict[str, Any] | None = None


class TaskQueryParams(_V03):
    id: _NonEmpty
    history_length: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None


class TaskIdParams(_V03):
    id: _NonEmpty
    metadata: dict[str, Any] | None = None


class ListTaskPushNotificationConfigParams(TaskIdParams):
    """The same members as TaskIdParams: the task whose configs to list."""


class GetTaskPushNotificationConfigParams(_V03):
    id: _NonEmpty
    push_notification_config_id: str | None = Field(default=None, min_length=1)
    metadata: dict[str, Any] | None = None


class DeleteTaskPushNotificationConfigParams(GetTaskPushNotificationConfigParams):
    """The get params, with the config id required."""

    push_notification_config_id: _NonEmpty
