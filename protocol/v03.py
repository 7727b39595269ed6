"""A2A 0.3 wire shapes and their translation to and from the 1.0 models.

A client that sends no ``A2A-Version`` header speaks 0.3, but the runtime only
knows 1.0, so the edge translates each 0.3 request in and each result out. This
covers the 0.3 JSON-RPC shapes (kind-tagged objects); the 0.3 HTTP+JSON binding
used the proto JSON of the 0.3 proto and is not handled here.

* ``*_from_v03(payload)`` validates a 0.3 payload with the 0.3 models below, so bad
  input raises ``pydantic.ValidationError`` whose ``loc`` names the 0.3 field, then
  returns the 1.0 model.
* ``*_to_v03(obj)`` takes a 1.0 model or its ProtoJSON dict (as ``models.dump``
  writes it and the store keeps it) and returns 0.3 JSON. The output shares
  metadata and data values with the input: treat both as read-only.

Where 1.0 says more than 0.3 can, part metadata carries the rest under reserved
keys, which the reverse translation removes again:

* ``"data_part_compat": true`` -- the 1.0 ``data`` value was not an object and is
  wrapped as ``{"value": v}``. It is the key the official a2a-sdk compat layer
  uses, so its clients unwrap the value too.
* ``"a2a.v1.mediaType"`` and ``"a2a.v1.filename"`` -- ``mediaType``/``filename`` of a
  text or data part (file parts carry them as ``file.mimeType``/``file.name``).

A 1.0 part whose own metadata uses these keys does not survive the round trip,
and empty metadata (``{}``) next to them comes back unset.
Where the two versions mean different things, the 0.3 meaning wins:

* ``historyLength: 0`` meant "no limit" to 0.3 servers, so it becomes unset (the
  server's default) in 1.0.
* 0.3 push authentication lists schemes, 1.0 holds one: the first is kept
  (``[]`` <-> ``""``).
* A push-config get without ``pushNotificationConfigId`` asks for the config whose
  id is the task id (0.3 SDKs stored id-less configs under the task id).
* The status-update ``final`` flag is dropped going to 1.0; going to 0.3 it
  defaults to "this state ends the stream" (terminal or interrupted).
* Push-config list results lose pagination (0.3 returns a bare list).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from protocol import models
from protocol.errors import MethodNotFoundError
from protocol.states import INTERRUPTED_STATES, TERMINAL_STATES

__all__ = [
    "DATA_WRAPPED_KEY",
    "FILENAME_KEY",
    "MEDIA_TYPE_KEY",
    "PROTOCOL_VERSION",
    "V03_METHODS",
    "AgentCard",
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
    "artifact_to_v03",
    "artifact_update_to_v03",
    "card_from_v03",
    "card_to_v03_fields",
    "dual_version_card",
    "message_from_v03",
    "message_to_v03",
    "part_from_v03",
    "part_to_v03",
    "push_config_delete_from_v03",
    "push_config_delete_to_v03",
    "push_config_from_v03",
    "push_config_get_from_v03",
    "push_config_get_to_v03",
    "push_config_list_from_v03",
    "push_config_list_to_v03",
    "push_config_to_v03",
    "push_configs_from_v03",
    "push_configs_to_v03",
    "request_from_v03",
    "result_to_v03",
    "send_params_from_v03",
    "send_params_to_v03",
    "send_response_from_v03",
    "send_response_to_v03",
    "status_update_to_v03",
    "stream_response_from_v03",
    "stream_response_to_v03",
    "task_from_v03",
    "task_id_from_v03",
    "task_id_to_v03",
    "task_query_from_v03",
    "task_query_to_v03",
    "task_to_v03",
]

PROTOCOL_VERSION = "0.3.0"
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
_ENDS_STREAM = frozenset(s.value for s in TERMINAL_STATES | INTERRUPTED_STATES)

# 0.3 security scheme `type` <-> 1.0 SecurityScheme oneof member.
_SCHEME_FROM_V03 = {
    "apiKey": "apiKeySecurityScheme",
    "http": "httpAuthSecurityScheme",
    "oauth2": "oauth2SecurityScheme",
    "openIdConnect": "openIdConnectSecurityScheme",
    "mutualTLS": "mtlsSecurityScheme",
}
_SCHEME_TO_V03 = {v: k for k, v in _SCHEME_FROM_V03.items()}

State03 = Literal[
    "submitted", "working", "input-required", "completed", "canceled", "failed",
    "rejected", "auth-required", "unknown",
]
_NonEmpty = Annotated[str, Field(min_length=1)]


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


# --- 0.3 models: validation of incoming payloads ------------------------------------


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
        if v is not None:
            try:
                base64.b64decode(v.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError, ValueError):
                try:  # 1.0 (ProtoJSON) also takes the URL-safe alphabet
                    base64.urlsafe_b64decode(v.encode("ascii"))
                except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
                    raise ValueError("bytes must be base64-encoded") from exc
        return v

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


class GetTaskPushNotificationConfigParams(_V03):
    id: _NonEmpty
    push_notification_config_id: str | None = Field(default=None, min_length=1)
    metadata: dict[str, Any] | None = None


class ListTaskPushNotificationConfigParams(_V03):
    id: _NonEmpty
    metadata: dict[str, Any] | None = None


class DeleteTaskPushNotificationConfigParams(_V03):
    id: _NonEmpty
    push_notification_config_id: _NonEmpty
    metadata: dict[str, Any] | None = None


_Event = Annotated[
    Task | Message | TaskStatusUpdateEvent | TaskArtifactUpdateEvent, Field(discriminator="kind")
]
_EVENT = TypeAdapter(_Event)


def _event_from_v03(v: Any) -> Task | Message | TaskStatusUpdateEvent | TaskArtifactUpdateEvent:
    """Validate any 0.3 result object, inferring a missing `kind` from its members."""
    if isinstance(v, Mapping) and "kind" not in v:
        if "messageId" in v:
            kind = "message"
        elif "artifact" in v:
            kind = "artifact-update"
        elif "taskId" in v:
            kind = "status-update"
        else:
            kind = "task"
        v = {**v, "kind": kind}
    return _EVENT.validate_python(v)


_V10_EVENT_KEY = {
    "task": "task", "message": "message",
    "status-update": "statusUpdate", "artifact-update": "artifactUpdate",
}


# --- 0.3 -> 1.0 ---------------------------------------------------------------------


def part_from_v03(part: Mapping[str, Any]) -> models.Part:
    """Parse a 0.3 part into the 1.0 model."""
    return models.Part.model_validate(Part.model_validate(part).to_v10())


def message_from_v03(message: Mapping[str, Any]) -> models.Message:
    """Parse a 0.3 message (``kind`` optional) into the 1.0 model."""
    return models.Message.model_validate(Message.model_validate(message).to_v10())


def task_from_v03(task: Mapping[str, Any]) -> models.Task:
    """Parse a 0.3 task into the 1.0 model."""
    return models.Task.model_validate(Task.model_validate(task).to_v10())


def stream_response_from_v03(event: Mapping[str, Any]) -> models.StreamResponse:
    """Parse one 0.3 stream result (task, message, status- or artifact-update)."""
    ev = _event_from_v03(event)
    return models.StreamResponse.model_validate({_V10_EVENT_KEY[ev.kind]: ev.to_v10()})


def send_response_from_v03(result: Mapping[str, Any]) -> models.SendMessageResponse:
    """Parse a 0.3 message/send result (a bare Task or Message)."""
    ev = _event_from_v03(result)
    if not isinstance(ev, Task | Message):
        raise ValueError(f"message/send result must be a task or a message, not {ev.kind!r}")
    return models.SendMessageResponse.model_validate({ev.kind: ev.to_v10()})


def send_params_from_v03(params: Mapping[str, Any]) -> models.SendMessageRequest:
    """message/send and message/stream params; ``blocking`` becomes ``returnImmediately``."""
    p = MessageSendParams.model_validate(params)
    out: dict[str, Any] = {"message": p.message.to_v10()}
    if p.configuration is not None:
        out["configuration"] = p.configuration.to_v10()
    _put(out, "metadata", p.metadata)
    return models.SendMessageRequest.model_validate(out)


def task_query_from_v03(params: Mapping[str, Any]) -> models.GetTaskRequest:
    """tasks/get params (``historyLength: 0`` meant no limit and becomes unset)."""
    p = TaskQueryParams.model_validate(params)
    return models.GetTaskRequest(id=p.id, history_length=p.history_length or None)


_TaskIdRequest = TypeVar(
    "_TaskIdRequest", models.CancelTaskRequest, models.SubscribeToTaskRequest
)


@overload
def task_id_from_v03(params: Mapping[str, Any]) -> models.CancelTaskRequest: ...
@overload
def task_id_from_v03(
    params: Mapping[str, Any], into: type[_TaskIdRequest]
) -> _TaskIdRequest: ...
def task_id_from_v03(
    params: Mapping[str, Any], into: type[Any] = models.CancelTaskRequest
) -> Any:
    """tasks/cancel (default) or tasks/resubscribe params (TaskIdParams)."""
    p = TaskIdParams.model_validate(params)
    if into is models.SubscribeToTaskRequest:
        return models.SubscribeToTaskRequest(id=p.id)
    return models.CancelTaskRequest(id=p.id, metadata=p.metadata)


def push_config_from_v03(config: Mapping[str, Any]) -> models.TaskPushNotificationConfig:
    """A 0.3 TaskPushNotificationConfig (pushNotificationConfig/set params or result)."""
    p = TaskPushNotificationConfig.model_validate(config)
    return models.TaskPushNotificationConfig.model_validate(p.to_v10())


def push_config_get_from_v03(
    params: Mapping[str, Any],
) -> models.GetTaskPushNotificationConfigRequest:
    """pushNotificationConfig/get params; a bare TaskIdParams asks for config id = task id."""
    p = GetTaskPushNotificationConfigParams.model_validate(params)
    return models.GetTaskPushNotificationConfigRequest(
        task_id=p.id, id=p.push_notification_config_id or p.id
    )


def push_config_list_from_v03(
    params: Mapping[str, Any],
) -> models.ListTaskPushNotificationConfigsRequest:
    """pushNotificationConfig/list params."""
    p = ListTaskPushNotificationConfigParams.model_validate(params)
    return models.ListTaskPushNotificationConfigsRequest(task_id=p.id)


def push_config_delete_from_v03(
    params: Mapping[str, Any],
) -> models.DeleteTaskPushNotificationConfigRequest:
    """pushNotificationConfig/delete params."""
    p = DeleteTaskPushNotificationConfigParams.model_validate(params)
    return models.DeleteTaskPushNotificationConfigRequest(
        task_id=p.id, id=p.push_notification_config_id
    )


def push_configs_from_v03(
    configs: list[Mapping[str, Any]],
) -> models.ListTaskPushNotificationConfigsResponse:
    """A 0.3 pushNotificationConfig/list result (a bare list)."""
    return models.ListTaskPushNotificationConfigsResponse(
        configs=[push_config_from_v03(c) for c in configs]
    )


V03_METHODS: dict[str, str] = {
    "message/send": "SendMessage",
    "message/stream": "SendStreamingMessage",
    "tasks/get": "GetTask",
    "tasks/cancel": "CancelTask",
    "tasks/resubscribe": "SubscribeToTask",
    "tasks/pushNotificationConfig/set": "CreateTaskPushNotificationConfig",
    "tasks/pushNotificationConfig/get": "GetTaskPushNotificationConfig",
    "tasks/pushNotificationConfig/list": "ListTaskPushNotificationConfigs",
    "tasks/pushNotificationConfig/delete": "DeleteTaskPushNotificationConfig",
    "agent/getAuthenticatedExtendedCard": "GetExtendedAgentCard",
}
"""0.3 JSON-RPC method -> the 1.0 method it becomes."""

_REQUEST_PARSERS: dict[str, Any] = {
    "message/send": send_params_from_v03,
    "message/stream": send_params_from_v03,
    "tasks/get": task_query_from_v03,
    "tasks/cancel": task_id_from_v03,
    "tasks/resubscribe": lambda p: task_id_from_v03(p, models.SubscribeToTaskRequest),
    "tasks/pushNotificationConfig/set": push_config_from_v03,
    "tasks/pushNotificationConfig/get": push_config_get_from_v03,
    "tasks/pushNotificationConfig/list": push_config_list_from_v03,
    "tasks/pushNotificationConfig/delete": push_config_delete_from_v03,
    "agent/getAuthenticatedExtendedCard": lambda p: models.GetExtendedAgentCardRequest(),
}


def request_from_v03(method: str, params: Mapping[str, Any] | None) -> models.A2AModel:
    """The 1.0 request model for a 0.3 call; MethodNotFoundError for unknown methods.

    The 1.0 method name is ``V03_METHODS[method]``.
    """
    parse = _REQUEST_PARSERS.get(method)
    if parse is None:
        raise MethodNotFoundError(f"Method not found: {method}")
    return parse({} if params is None else params)


# --- 1.0 -> 0.3 ---------------------------------------------------------------------


def _as_dict(obj: BaseModel | Mapping[str, Any]) -> Mapping[str, Any]:
    return models.dump(obj) if isinstance(obj, BaseModel) else obj


def _state_to_v03(state: Any) -> str:
    try:
        return _STATE_TO_V03[state]
    except (KeyError, TypeError):
        return _STATE_TO_V03[models.TaskState(state)]


def _part(p: Mapping[str, Any]) -> dict[str, Any]:
    meta = p.get("metadata")
    if p.get("text") is not None:
        out: dict[str, Any] = {"kind": "text", "text": p["text"]}
        extra: dict[str, Any] = {}
    elif p.get("raw") is not None or p.get("url") is not None:
        raw = p.get("raw")
        file: dict[str, Any] = {"bytes": raw} if raw is not None else {"uri": p["url"]}
        _put(file, "mimeType", p.get("mediaType"))
        _put(file, "name", p.get("filename"))
        out = {"kind": "file", "file": file}
        _put(out, "metadata", meta)
        return out
    elif (data := p.get("data")) is not None:
        if isinstance(data, dict):
            out, extra = {"kind": "data", "data": data}, {}
        else:
            out, extra = {"kind": "data", "data": {"value": data}}, {DATA_WRAPPED_KEY: True}
    else:
        raise ValueError("a part needs exactly one of text, raw, url or data")
    _put(extra, MEDIA_TYPE_KEY, p.get("mediaType"))
    _put(extra, FILENAME_KEY, p.get("filename"))
    if extra:
        meta = {**meta, **extra} if meta else extra
    _put(out, "metadata", meta)
    return out


def _message(m: Mapping[str, Any]) -> dict[str, Any]:
    role = m["role"]
    return {
        "kind": "message", **m,
        "role": _ROLE_TO_V03.get(role) or _ROLE_TO_V03[models.Role(role)],
        "parts": [_part(p) for p in m["parts"]],
    }


def _status(s: Mapping[str, Any]) -> dict[str, Any]:
    out = {**s, "state": _state_to_v03(s["state"])}
    if s.get("message") is not None:
        out["message"] = _message(s["message"])
    return out


def _artifact(a: Mapping[str, Any]) -> dict[str, Any]:
    return {**a, "parts": [_part(p) for p in a["parts"]]}


def _task(t: Mapping[str, Any]) -> dict[str, Any]:
    out = {"kind": "task", **t, "status": _status(t["status"])}
    if t.get("artifacts") is not None:
        out["artifacts"] = [_artifact(a) for a in t["artifacts"]]
    if t.get("history") is not None:
        out["history"] = [_message(m) for m in t["history"]]
    return out


def _status_update(ev: Mapping[str, Any], final: bool | None) -> dict[str, Any]:
    status = _status(ev["status"])
    if final is None:
        final = _STATE_FROM_V03[status["state"]] in _ENDS_STREAM
    return {"kind": "status-update", **ev, "status": status, "final": final}


def _artifact_update(ev: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": "artifact-update", **ev, "artifact": _artifact(ev["artifact"])}


def part_to_v03(part: models.Part | Mapping[str, Any]) -> dict[str, Any]:
    """The 0.3 part (reserved metadata keys keep what 0.3 has no field for)."""
    return _part(_as_dict(part))


def message_to_v03(message: models.Message | Mapping[str, Any]) -> dict[str, Any]:
    """The 0.3 message, ``kind: "message"``."""
    return _message(_as_dict(message))


def artifact_to_v03(artifact: models.Artifact | Mapping[str, Any]) -> dict[str, Any]:
    """The 0.3 artifact."""
    return _artifact(_as_dict(artifact))


def task_to_v03(task: models.Task | Mapping[str, Any]) -> dict[str, Any]:
    """The 0.3 task (tasks/get and tasks/cancel result), ``kind: "task"``."""
    return _task(_as_dict(task))


def status_update_to_v03(
    event: models.TaskStatusUpdateEvent | Mapping[str, Any], final: bool | None = None
) -> dict[str, Any]:
    """The 0.3 status-update; ``final`` defaults to "the state ends the stream"."""
    return _status_update(_as_dict(event), final)


def artifact_update_to_v03(
    event: models.TaskArtifactUpdateEvent | Mapping[str, Any],
) -> dict[str, Any]:
    """The 0.3 artifact-update."""
    return _artifact_update(_as_dict(event))


def stream_response_to_v03(
    response: models.StreamResponse | Mapping[str, Any], final: bool | None = None
) -> dict[str, Any]:
    """The 0.3 stream result: the kind-tagged object itself, not a wrapper.

    ``final`` applies to status updates only (see `status_update_to_v03`).
    """
    r = _as_dict(response)
    if (ev := r.get("statusUpdate")) is not None:
        return _status_update(ev, final)
    if (ev := r.get("artifactUpdate")) is not None:
        return _artifact_update(ev)
    if (t := r.get("task")) is not None:
        return _task(t)
    if (m := r.get("message")) is not None:
        return _message(m)
    raise ValueError("a StreamResponse holds one of task, message, statusUpdate, artifactUpdate")


def send_response_to_v03(
    response: models.SendMessageResponse | Mapping[str, Any],
) -> dict[str, Any]:
    """The 0.3 message/send result: the bare Task or Message."""
    r = _as_dict(response)
    if (t := r.get("task")) is not None:
        return _task(t)
    if (m := r.get("message")) is not None:
        return _message(m)
    raise ValueError("a SendMessageResponse holds a task or a message")


def _push_inner(c: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"url": c["url"]}
    _put(out, "id", c.get("id"))
    _put(out, "token", c.get("token"))
    auth = c.get("authentication")
    if auth is not None:
        scheme = auth.get("scheme")
        a: dict[str, Any] = {"schemes": [scheme] if scheme else []}
        _put(a, "credentials", auth.get("credentials"))
        out["authentication"] = a
    return out


def push_config_to_v03(
    config: models.TaskPushNotificationConfig | Mapping[str, Any],
) -> dict[str, Any]:
    """The 0.3 TaskPushNotificationConfig (set/get result and set params)."""
    c = _as_dict(config)
    return {"taskId": c.get("taskId") or "", "pushNotificationConfig": _push_inner(c)}


def push_configs_to_v03(
    response: models.ListTaskPushNotificationConfigsResponse | Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The 0.3 pushNotificationConfig/list result: a bare list (no pagination)."""
    return [push_config_to_v03(c) for c in _as_dict(response)["configs"]]


def send_params_to_v03(request: models.SendMessageRequest | Mapping[str, Any]) -> dict[str, Any]:
    """0.3 MessageSendParams for a 1.0 send request (client side)."""
    r = _as_dict(request)
    out: dict[str, Any] = {"message": _message(r["message"])}
    cfg = r.get("configuration")
    if cfg is not None:
        c: dict[str, Any] = {}
        _put(c, "acceptedOutputModes", cfg.get("acceptedOutputModes"))
        _put(c, "historyLength", cfg.get("historyLength"))
        if cfg.get("taskPushNotificationConfig") is not None:
            c["pushNotificationConfig"] = _push_inner(cfg["taskPushNotificationConfig"])
        if cfg.get("returnImmediately") is not None:
            c["blocking"] = not cfg["returnImmediately"]
        out["configuration"] = c
    _put(out, "metadata", r.get("metadata"))
    return out


def task_query_to_v03(request: models.GetTaskRequest | Mapping[str, Any]) -> dict[str, Any]:
    """0.3 TaskQueryParams (client side)."""
    r = _as_dict(request)
    out: dict[str, Any] = {"id": r["id"]}
    _put(out, "historyLength", r.get("historyLength"))
    return out


def task_id_to_v03(
    request: models.CancelTaskRequest | models.SubscribeToTaskRequest | Mapping[str, Any],
) -> dict[str, Any]:
    """0.3 TaskIdParams for tasks/cancel or tasks/resubscribe (client side)."""
    r = _as_dict(request)
    out: dict[str, Any] = {"id": r["id"]}
    _put(out, "metadata", r.get("metadata"))
    return out


def push_config_get_to_v03(
    request: models.GetTaskPushNotificationConfigRequest | Mapping[str, Any],
) -> dict[str, Any]:
    """0.3 GetTaskPushNotificationConfigParams (client side)."""
    r = _as_dict(request)
    return {"id": r["taskId"], "pushNotificationConfigId": r["id"]}


def push_config_list_to_v03(
    request: models.ListTaskPushNotificationConfigsRequest | Mapping[str, Any],
) -> dict[str, Any]:
    """0.3 ListTaskPushNotificationConfigParams (client side; no pagination in 0.3)."""
    return {"id": _as_dict(request)["taskId"]}


def push_config_delete_to_v03(
    request: models.DeleteTaskPushNotificationConfigRequest | Mapping[str, Any],
) -> dict[str, Any]:
    """0.3 DeleteTaskPushNotificationConfigParams (client side)."""
    r = _as_dict(request)
    return {"id": r["taskId"], "pushNotificationConfigId": r["id"]}


def result_to_v03(result: Any, final: bool | None = None) -> Any:
    """The 0.3 JSON-RPC result for any 1.0 result model (None stays None)."""
    if result is None:
        return None
    if isinstance(result, models.StreamResponse):
        return stream_response_to_v03(result, final)
    if isinstance(result, models.AgentCard):
        return dual_version_card(result)
    convert = _RESULT_CONVERTERS.get(type(result))
    if convert is None:
        raise TypeError(f"no 0.3 form for {type(result).__name__}")
    return convert(result)


_RESULT_CONVERTERS: dict[type, Any] = {
    models.Task: task_to_v03,
    models.Message: message_to_v03,
    models.SendMessageResponse: send_response_to_v03,
    models.TaskStatusUpdateEvent: status_update_to_v03,
    models.TaskArtifactUpdateEvent: artifact_update_to_v03,
    models.TaskPushNotificationConfig: push_config_to_v03,
    models.ListTaskPushNotificationConfigsResponse: push_configs_to_v03,
}


# --- agent card ---------------------------------------------------------------------


def _is_v03(version: str) -> bool:
    return version == "0.3" or version.startswith("0.3.")


def _requirements_to_v03(reqs: list[dict[str, Any]]) -> list[dict[str, list[str]]]:
    return [
        {name: list((sl or {}).get("list") or []) for name, sl in r.get("schemes", {}).items()}
        for r in reqs
    ]


def _requirements_from_v03(reqs: list[dict[str, list[str]]]) -> list[dict[str, Any]]:
    return [{"schemes": {name: {"list": scopes} for name, scopes in r.items()}} for r in reqs]


def _scheme_to_v03(scheme: Mapping[str, Any]) -> dict[str, Any]:
    for member, body in scheme.items():
        kind = _SCHEME_TO_V03.get(member)
        if kind is not None and isinstance(body, dict):
            out = {"type": kind, **body}
            if kind == "apiKey" and "location" in out:
                out["in"] = out.pop("location")
            return out
    return {}


def _scheme_from_v03(scheme: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in scheme.items() if k != "type"}
    if scheme["type"] == "apiKey" and "in" in body:
        body["location"] = body.pop("in")
    return {_SCHEME_FROM_V03[scheme["type"]]: body}


def card_to_v03_fields(card: models.AgentCard) -> dict[str, Any]:
    """The 0.3-only top-level card fields, built from the card's 0.3 interfaces.

    They share no name with a 1.0 field, so the server can merge them into the 1.0
    card JSON and serve one card to both generations. Empty when the card declares
    no 0.3 interface. The first 0.3 interface is the preferred one; all of them are
    listed in ``additionalInterfaces`` as the 0.3 spec recommends.
    """
    ifaces = [i for i in card.supported_interfaces if _is_v03(i.protocol_version)]
    if not ifaces:
        return {}
    out: dict[str, Any] = {
        "url": ifaces[0].url,
        "preferredTransport": ifaces[0].protocol_binding,
        "protocolVersion": PROTOCOL_VERSION,
        "additionalInterfaces": [{"url": i.url, "transport": i.protocol_binding} for i in ifaces],
    }
    if card.capabilities.extended_agent_card is not None:
        out["supportsAuthenticatedExtendedCard"] = card.capabilities.extended_agent_card
    if card.security_requirements is not None:
        out["security"] = _requirements_to_v03(card.security_requirements)
    return out


def dual_version_card(card: models.AgentCard) -> dict[str, Any]:
    """The card JSON that 0.3 and 1.0 clients can both read.

    1.0 ProtoJSON plus `card_to_v03_fields`, each security scheme carrying both
    its 1.0 form and its 0.3 form (``type`` etc.), and skills their 0.3 ``security``.
    Without a 0.3 interface this is just the 1.0 JSON.
    """
    out = models.dump(card)
    fields = card_to_v03_fields(card)
    if not fields:
        return out
    out.update(fields)
    schemes = out.get("securitySchemes")
    if schemes:
        out["securitySchemes"] = {n: {**s, **_scheme_to_v03(s)} for n, s in schemes.items()}
    for skill in out["skills"]:
        if skill.get("securityRequirements") is not None:
            skill["security"] = _requirements_to_v03(skill["securityRequirements"])
    return out


class AgentInterface(_V03):
    url: str
    transport: str


class _AgentCapabilities(_V03):
    streaming: bool | None = None
    push_notifications: bool | None = None
    state_transition_history: bool | None = None
    extensions: list[dict[str, Any]] | None = None


class _AgentSkill(_V03):
    id: str
    name: str
    description: str
    tags: list[str]
    examples: list[str] | None = None
    input_modes: list[str] | None = None
    output_modes: list[str] | None = None
    security: list[dict[str, list[str]]] | None = None


class AgentCard(_V03):
    """A 0.3 agent card (the parts a client needs; unknown fields ignored)."""

    name: str
    description: str
    url: str
    version: str
    capabilities: _AgentCapabilities
    default_input_modes: list[str]
    default_output_modes: list[str]
    skills: list[_AgentSkill]
    preferred_transport: str | None = None
    additional_interfaces: list[AgentInterface] | None = None
    protocol_version: str | None = None
    provider: dict[str, Any] | None = None
    documentation_url: str | None = None
    icon_url: str | None = None
    security_schemes: dict[str, dict[str, Any]] | None = None
    security: list[dict[str, list[str]]] | None = None
    supports_authenticated_extended_card: bool | None = None
    signatures: list[dict[str, Any]] | None = None

    @field_validator("security_schemes")
    @classmethod
    def _known_schemes(cls, v: dict[str, dict[str, Any]] | None) -> Any:
        for name, scheme in (v or {}).items():
            if scheme.get("type") not in _SCHEME_FROM_V03:
                raise ValueError(
                    f"{name}: type must be one of {', '.join(map(repr, _SCHEME_FROM_V03))}"
                )
        return v

    def to_v10(self) -> dict[str, Any]:
        """The 1.0 ProtoJSON card; every interface gets protocolVersion "0.3"."""
        version = ".".join((self.protocol_version or "0.3").split(".")[:2])
        ifaces = [(self.url, self.preferred_transport or "JSONRPC")]
        ifaces += [(i.url, i.transport) for i in self.additional_interfaces or ()]
        unique = list(dict.fromkeys(ifaces))
        caps: dict[str, Any] = {}
        _put(caps, "streaming", self.capabilities.streaming)
        _put(caps, "pushNotifications", self.capabilities.push_notifications)
        _put(caps, "extensions", self.capabilities.extensions)
        _put(caps, "extendedAgentCard", self.supports_authenticated_extended_card)
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "supportedInterfaces": [
                {"url": u, "protocolBinding": b, "protocolVersion": version} for u, b in unique
            ],
            "capabilities": caps,
            "defaultInputModes": self.default_input_modes,
            "defaultOutputModes": self.default_output_modes,
            "skills": [_skill_from_v03(s) for s in self.skills],
        }
        _put(out, "provider", self.provider)
        _put(out, "documentationUrl", self.documentation_url)
        _put(out, "iconUrl", self.icon_url)
        if self.security_schemes is not None:
            out["securitySchemes"] = {
                n: _scheme_from_v03(s) for n, s in self.security_schemes.items()
            }
        if self.security is not None:
            out["securityRequirements"] = _requirements_from_v03(self.security)
        _put(out, "signatures", self.signatures)
        return out


def _skill_from_v03(s: _AgentSkill) -> dict[str, Any]:
    out: dict[str, Any] = {"id": s.id, "name": s.name, "description": s.description, "tags": s.tags}
    _put(out, "examples", s.examples)
    _put(out, "inputModes", s.input_modes)
    _put(out, "outputModes", s.output_modes)
    if s.security is not None:
        out["securityRequirements"] = _requirements_from_v03(s.security)
    return out


def card_from_v03(card: Mapping[str, Any]) -> models.AgentCard:
    """Read an agent card published by a 0.3 agent (client side).

    A dual card (one that also has ``supportedInterfaces``) is read as 1.0, with
    the 0.3 halves of its security schemes dropped.
    """
    if "supportedInterfaces" in card:
        parsed = models.AgentCard.model_validate(card)
        if parsed.security_schemes:
            parsed.security_schemes = {
                n: {k: v for k, v in s.items() if k in _SCHEME_TO_V03}
                for n, s in parsed.security_schemes.items()
            }
        return parsed
    return models.AgentCard.model_validate(AgentCard.model_validate(card).to_v10())
