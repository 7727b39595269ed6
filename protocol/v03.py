"""A2A 0.3 wire shapes and their translation to and from the 1.0 models.

A client that sends no ``A2A-Version`` header speaks 0.3, but the runtime only
knows 1.0, so the edge translates each 0.3 request in and each result out. This
covers the 0.3 JSON-RPC shapes (kind-tagged objects); the 0.3 HTTP+JSON binding
used the proto JSON of the 0.3 proto and is handled in `protocol.v03_rest`.

This module holds the parsing half (``*_from_v03``) and is the one to import: it
re-exports the 0.3 wire models (defined in `protocol.v03_models`), the renderers
(``*_to_v03``, in `protocol.v03_render`) and the agent card translation
(`protocol.v03_card`), so ``v03.Task``, ``v03.task_to_v03``, ``v03.card_from_v03``
etc. all live in one namespace.

* ``*_from_v03(payload)`` validates a 0.3 payload with the 0.3 models, so bad
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

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar, overload

from pydantic import Field, TypeAdapter

from protocol import models
from protocol.errors import MethodNotFoundError
from protocol.v03_card import (
    PROTOCOL_VERSION,
    AgentCard,
    card_from_v03,
    card_to_v03_fields,
    dual_version_card,
)
from protocol.v03_models import (
    DATA_WRAPPED_KEY,
    FILENAME_KEY,
    MEDIA_TYPE_KEY,
    Artifact,
    DeleteTaskPushNotificationConfigParams,
    FileContent,
    GetTaskPushNotificationConfigParams,
    ListTaskPushNotificationConfigParams,
    Message,
    MessageSendConfiguration,
    MessageSendParams,
    Part,
    PushNotificationAuthenticationInfo,
    PushNotificationConfig,
    Task,
    TaskArtifactUpdateEvent,
    TaskIdParams,
    TaskPushNotificationConfig,
    TaskQueryParams,
    TaskStatus,
    TaskStatusUpdateEvent,
    _put,
)
from protocol.v03_render import (
    artifact_to_v03,
    artifact_update_to_v03,
    message_to_v03,
    part_to_v03,
    push_config_delete_to_v03,
    push_config_get_to_v03,
    push_config_list_to_v03,
    push_config_to_v03,
    push_configs_to_v03,
    result_to_v03,
    send_params_to_v03,
    send_response_to_v03,
    status_update_to_v03,
    stream_response_to_v03,
    task_id_to_v03,
    task_query_to_v03,
    task_to_v03,
)

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
