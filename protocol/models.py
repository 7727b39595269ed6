"""A2A 1.0 wire models (the canonical model of trio-a2a).

These mirror `specification/a2a.proto` (package `lf.a2a.v1`) in its ProtoJSON
form: camelCase names, enums by their proto names. Everything inside the runtime
speaks these models; 0.3 shapes are translated at the edge (see `protocol.v03`).

Parsing is lenient the way ProtoJSON parsers are (unknown fields ignored, enum
numbers accepted, int32 as strings accepted); serialising omits unset fields.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "A2AModel",
    "AgentCapabilities",
    "AgentCard",
    "AgentCardSignature",
    "AgentExtension",
    "AgentInterface",
    "AgentProvider",
    "AgentSkill",
    "Artifact",
    "AuthenticationInfo",
    "CancelTaskRequest",
    "DeleteTaskPushNotificationConfigRequest",
    "GetExtendedAgentCardRequest",
    "GetTaskPushNotificationConfigRequest",
    "GetTaskRequest",
    "ListTaskPushNotificationConfigsRequest",
    "ListTaskPushNotificationConfigsResponse",
    "ListTasksRequest",
    "ListTasksResponse",
    "Message",
    "Part",
    "Role",
    "SendMessageConfiguration",
    "SendMessageRequest",
    "SendMessageResponse",
    "StreamResponse",
    "SubscribeToTaskRequest",
    "Task",
    "TaskArtifactUpdateEvent",
    "TaskPushNotificationConfig",
    "TaskState",
    "TaskStatus",
    "TaskStatusUpdateEvent",
    "check_base64",
    "dump",
    "format_timestamp",
    "parse_timestamp",
]


class A2AModel(BaseModel):
    """Base for every wire model: camelCase aliases, lenient input."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=False,
    )


def check_base64(value: str, error: str) -> str:
    """`value` if it is base64 text, else ``ValueError(error)``.

    Both alphabets are accepted, standard and URL-safe, as ProtoJSON parsers do.
    """
    try:
        base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        try:
            base64.urlsafe_b64decode(value.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            raise ValueError(error) from exc
    return value


def dump(model: BaseModel) -> dict[str, Any]:
    """ProtoJSON-style dict of a model: camelCase, unset (None) fields omitted."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


_ts_cache: list[object] = [None, ""]  # [whole second, its "YYYY-MM-DDTHH:MM:SS." prefix]


def format_timestamp(epoch: float) -> str:
    """RFC 3339 UTC timestamp with millisecond precision, as ProtoJSON writes it."""
    ms = round(epoch * 1000)
    second, frac = divmod(ms, 1000)
    if _ts_cache[0] != second:  # every status event needs one: format each second once
        t = _dt.datetime.fromtimestamp(second, tz=_dt.UTC)
        _ts_cache[:] = [second, t.strftime("%Y-%m-%dT%H:%M:%S.")]
    return f"{_ts_cache[1]}{frac:03d}Z"


def parse_timestamp(value: str) -> float:
    """Parse an RFC 3339 timestamp into epoch seconds; ValueError if malformed."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    t = _dt.datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return t.timestamp()


class _ProtoEnum(enum.StrEnum):
    """A proto enum: serialised by name, parsed from its name or number."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        members = list(cls)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(members):
            return members[value]
        if isinstance(value, str) and value.isdigit() and int(value) < len(members):
            return members[int(value)]
        return None


class TaskState(_ProtoEnum):
    UNSPECIFIED = "TASK_STATE_UNSPECIFIED"
    SUBMITTED = "TASK_STATE_SUBMITTED"
    WORKING = "TASK_STATE_WORKING"
    COMPLETED = "TASK_STATE_COMPLETED"
    FAILED = "TASK_STATE_FAILED"
    CANCELED = "TASK_STATE_CANCELED"
    INPUT_REQUIRED = "TASK_STATE_INPUT_REQUIRED"
    REJECTED = "TASK_STATE_REJECTED"
    AUTH_REQUIRED = "TASK_STATE_AUTH_REQUIRED"


class Role(_ProtoEnum):
    UNSPECIFIED = "ROLE_UNSPECIFIED"
    USER = "ROLE_USER"
    AGENT = "ROLE_AGENT"


_PART_CONTENT = ("text", "raw", "url", "data")


class Part(A2AModel):
    """One piece of content: exactly one of text, raw (base64), url or data."""

    text: str | None = None
    raw: str | None = None
    url: str | None = None
    data: Any = None
    metadata: dict[str, Any] | None = None
    filename: str | None = None
    media_type: str | None = None

    @field_validator("raw")
    @classmethod
    def _check_base64(cls, v: str | None) -> str | None:
        return None if v is None else check_base64(v, "raw must be base64-encoded bytes")

    @model_validator(mode="after")
    def _exactly_one_content(self) -> Part:
        # Runs again whenever a model holding parts is built: keep the common case cheap.
        if ((self.text is not None) + (self.raw is not None) + (self.url is not None)
                + (self.data is not None)) == 1:
            return self
        present = [name for name in _PART_CONTENT if getattr(self, name) is not None]
        if not present:
            raise ValueError("a part needs exactly one of text, raw, url or data")
        raise ValueError(f"a part needs exactly one of text, raw, url or data, got {present}")

    @property
    def kind(self) -> str:
        """Which content member is set: 'text', 'raw', 'url' or 'data'."""
        for name in _PART_CONTENT:
            if getattr(self, name) is not None:
                return name
        raise AssertionError("validated part without content")


class Message(A2AModel):
    message_id: str = Field(min_length=1)
    context_id: str | None = None
    task_id: str | None = None
    role: Role
    parts: list[Part]
    metadata: dict[str, Any] | None = None
    extensions: list[str] | None = None
    reference_task_ids: list[str] | None = None

    @field_validator("role")
    @classmethod
    def _role_known(cls, v: Role) -> Role:
        if v is Role.UNSPECIFIED:
            raise ValueError("role must be ROLE_USER or ROLE_AGENT")
        return v


class TaskStatus(A2AModel):
    state: TaskState
    message: Message | None = None
    timestamp: str | None = None


class Artifact(A2AModel):
    artifact_id: str = Field(min_length=1)
    name: str | None = None
    description: str | None = None
    parts: list[Part]
    metadata: dict[str, Any] | None = None
    extensions: list[str] | None = None


class Task(A2AModel):
    id: str
    context_id: str
    status: TaskStatus
    artifacts: list[Artifact] | None = None
    history: list[Message] | None = None
    metadata: dict[str, Any] | None = None


class TaskStatusUpdateEvent(A2AModel):
    task_id: str
    context_id: str
    status: TaskStatus
    metadata: dict[str, Any] | None = None


class TaskArtifactUpdateEvent(A2AModel):
    task_id: str
    context_id: str
    artifact: Artifact
    append: bool | None = None
    last_chunk: bool | None = None
    metadata: dict[str, Any] | None = None


class StreamResponse(A2AModel):
    """One stream event: exactly one of task, message, statusUpdate, artifactUpdate."""

    task: Task | None = None
    message: Message | None = None
    status_update: TaskStatusUpdateEvent | None = None
    artifact_update: TaskArtifactUpdateEvent | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StreamResponse:
        # Runs again whenever a model holding events is built: keep it cheap.
        if ((self.task is not None) + (self.message is not None)
                + (self.status_update is not None) + (self.artifact_update is not None)) != 1:
            raise ValueError(
                "a StreamResponse holds exactly one of task, message, statusUpdate, artifactUpdate"
            )
        return self


class SendMessageResponse(A2AModel):
    task: Task | None = None
    message: Message | None = None


class AuthenticationInfo(A2AModel):
    scheme: str
    credentials: str | None = None


class TaskPushNotificationConfig(A2AModel):
    tenant: str | None = None
    id: str | None = None
    task_id: str | None = None
    url: str = Field(min_length=1)
    token: str | None = None
    authentication: AuthenticationInfo | None = None


class SendMessageConfiguration(A2AModel):
    accepted_output_modes: list[str] | None = None
    task_push_notification_config: TaskPushNotificationConfig | None = None
    history_length: int | None = Field(default=None, ge=0)
    return_immediately: bool | None = None


class SendMessageRequest(A2AModel):
    tenant: str | None = None
    message: Message
    configuration: SendMessageConfiguration | None = None
    metadata: dict[str, Any] | None = None


class GetTaskRequest(A2AModel):
    tenant: str | None = None
    id: str = Field(min_length=1)
    history_length: int | None = Field(default=None, ge=0)


class ListTasksRequest(A2AModel):
    tenant: str | None = None
    context_id: str | None = None
    status: TaskState | None = None
    page_size: int | None = Field(default=None, ge=1, le=100)
    page_token: str | None = None
    history_length: int | None = Field(default=None, ge=0)
    status_timestamp_after: str | None = None
    include_artifacts: bool | None = None

    @field_validator("status_timestamp_after")
    @classmethod
    def _ts(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_timestamp(v)
            except ValueError as exc:
                raise ValueError("must be an RFC 3339 timestamp") from exc
        return v


class ListTasksResponse(A2AModel):
    tasks: list[Task]
    next_page_token: str
    page_size: int
    total_size: int


class CancelTaskRequest(A2AModel):
    tenant: str | None = None
    id: str = Field(min_length=1)
    metadata: dict[str, Any] | None = None


class SubscribeToTaskRequest(A2AModel):
    tenant: str | None = None
    id: str = Field(min_length=1)


class GetTaskPushNotificationConfigRequest(A2AModel):
    tenant: str | None = None
    task_id: str = Field(min_length=1)
    id: str = Field(min_length=1)


class DeleteTaskPushNotificationConfigRequest(A2AModel):
    tenant: str | None = None
    task_id: str = Field(min_length=1)
    id: str = Field(min_length=1)


class ListTaskPushNotificationConfigsRequest(A2AModel):
    tenant: str | None = None
    task_id: str = Field(min_length=1)
    page_size: int | None = Field(default=None, ge=1, le=100)
    page_token: str | None = None


class ListTaskPushNotificationConfigsResponse(A2AModel):
    configs: list[TaskPushNotificationConfig]
    next_page_token: str = ""


class GetExtendedAgentCardRequest(A2AModel):
    tenant: str | None = None


# --- agent card -------------------------------------------------------------------


class AgentInterface(A2AModel):
    url: str
    protocol_binding: str
    tenant: str | None = None
    protocol_version: str


class AgentProvider(A2AModel):
    url: str
    organization: str


class AgentExtension(A2AModel):
    uri: str
    description: str | None = None
    required: bool | None = None
    params: dict[str, Any] | None = None


class AgentCapabilities(A2AModel):
    streaming: bool | None = None
    push_notifications: bool | None = None
    extensions: list[AgentExtension] | None = None
    extended_agent_card: bool | None = None


class AgentSkill(A2AModel):
    id: str
    name: str
    description: str
    tags: list[str]
    examples: list[str] | None = None
    input_modes: list[str] | None = None
    output_modes: list[str] | None = None
    security_requirements: list[dict[str, Any]] | None = None


class AgentCardSignature(A2AModel):
    protected: str
    signature: str
    header: dict[str, Any] | None = None


class AgentCard(A2AModel):
    """The 1.0 agent card. Security schemes stay plain JSON: the server only emits them."""

    name: str
    description: str
    supported_interfaces: list[AgentInterface]
    provider: AgentProvider | None = None
    version: str
    documentation_url: str | None = None
    capabilities: AgentCapabilities
    security_schemes: dict[str, dict[str, Any]] | None = None
    security_requirements: list[dict[str, Any]] | None = None
    default_input_modes: list[str]
    default_output_modes: list[str]
    skills: list[AgentSkill]
    signatures: list[AgentCardSignature] | None = None
    icon_url: str | None = None
