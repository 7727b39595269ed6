"""The HTTP+JSON binding's two generations: where their wire shapes differ.

A codec turns already-read request parts (a JSON body, query parameters, path
parameters) into the 1.0 request models and renders results as response bytes.
The semantics are the same in both generations; only the shapes differ:

* 1.0: the ProtoJSON of the 1.0 models, ``application/a2a+json``.
* 0.3: the JSON of ``a2a_v0_3.proto`` (`protocol.v03_rest`), ``application/json``.

Codecs do no I/O; `runtime.http.rest` reads the request and routes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import pydantic

from actors.a2a_service import SendOutcome
from protocol.errors import A2AError, InvalidParamsError
from protocol.jsonrpc import invalid_params
from protocol.models import (
    GetTaskRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksResponse,
    SendMessageRequest,
    SendMessageResponse,
    StreamResponse,
    Task,
    TaskPushNotificationConfig,
)
from protocol.v03_rest import (
    check_task_id,
    list_tasks_to_proto03,
    model_from_query,
    push_config_from_proto03,
    push_config_to_proto03,
    push_configs_to_proto03,
    send_params_from_proto03,
    send_response_to_proto03,
    stream_response_to_proto03,
    task_query_from_proto03,
    task_to_proto03,
)

__all__ = ["A2A_JSON", "CODECS", "RestCodec", "dumps", "render_error"]

A2A_JSON = "application/a2a+json"
M = TypeVar("M", bound=pydantic.BaseModel)


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def render_error(err: A2AError) -> bytes:
    """An error inside an SSE stream: its google.rpc.Status body (`event: error`)."""
    return dumps(err.to_http()[1])


def _json(model: pydantic.BaseModel) -> bytes:
    return model.model_dump_json(by_alias=True, exclude_none=True).encode()


def _from_body(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        raise invalid_params(exc, prefix="") from None


def _from_v03(convert: Callable[[dict[str, Any]], M], payload: dict[str, Any]) -> M:
    try:
        return convert(payload)
    except pydantic.ValidationError as exc:
        raise invalid_params(exc, prefix="") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidParamsError(f"body: {exc}") from None


class RestCodec(Protocol):
    """Parsing and rendering where the generations differ; semantics do not."""

    content_type: str

    def send_request(self, body: dict[str, Any], tenant: str | None) -> SendMessageRequest: ...
    def get_request(self, task_id: str, query: Mapping[str, str]) -> GetTaskRequest: ...
    def push_request(self, body: dict[str, Any], task_id: str) -> TaskPushNotificationConfig: ...
    def send_result(self, out: SendOutcome) -> bytes: ...
    def task(self, task: Task) -> bytes: ...
    def event(self, event: StreamResponse) -> bytes: ...
    def tasks(self, resp: ListTasksResponse) -> bytes: ...
    def push(self, config: TaskPushNotificationConfig) -> bytes: ...
    def pushes(self, resp: ListTaskPushNotificationConfigsResponse) -> bytes: ...


class _V10:
    content_type = A2A_JSON

    def send_request(self, body: dict[str, Any], tenant: str | None) -> SendMessageRequest:
        req = _from_body(SendMessageRequest, body)
        return req.model_copy(update={"tenant": tenant}) if tenant else req

    def get_request(self, task_id: str, query: Mapping[str, str]) -> GetTaskRequest:
        return model_from_query(GetTaskRequest, query, {"id": task_id})

    def push_request(self, body: dict[str, Any], task_id: str) -> TaskPushNotificationConfig:
        check_task_id(body, task_id)
        return _from_body(TaskPushNotificationConfig, {**body, "taskId": task_id})

    def send_result(self, out: SendOutcome) -> bytes:
        if out.message is not None:
            return _json(SendMessageResponse(message=out.message))
        return _json(SendMessageResponse(task=out.record.task))

    def task(self, task: Task) -> bytes:
        return _json(task)

    def event(self, event: StreamResponse) -> bytes:
        return _json(event)

    def tasks(self, resp: ListTasksResponse) -> bytes:
        return _json(resp)

    def push(self, config: TaskPushNotificationConfig) -> bytes:
        return _json(config)

    def pushes(self, resp: ListTaskPushNotificationConfigsResponse) -> bytes:
        return _json(resp)


class _V03:
    content_type = "application/json"

    def send_request(self, body: dict[str, Any], tenant: str | None) -> SendMessageRequest:
        return _from_v03(send_params_from_proto03, body)

    def get_request(self, task_id: str, query: Mapping[str, str]) -> GetTaskRequest:
        return task_query_from_proto03(query, task_id)

    def push_request(self, body: dict[str, Any], task_id: str) -> TaskPushNotificationConfig:
        return _from_v03(lambda b: push_config_from_proto03(b, task_id), body)

    def send_result(self, out: SendOutcome) -> bytes:
        result = out.message if out.message is not None else out.record.task
        return dumps(send_response_to_proto03(result))

    def task(self, task: Task) -> bytes:
        return dumps(task_to_proto03(task))

    def event(self, event: StreamResponse) -> bytes:
        return dumps(stream_response_to_proto03(event))

    def tasks(self, resp: ListTasksResponse) -> bytes:
        return dumps(list_tasks_to_proto03(resp))

    def push(self, config: TaskPushNotificationConfig) -> bytes:
        return dumps(push_config_to_proto03(config))

    def pushes(self, resp: ListTaskPushNotificationConfigsResponse) -> bytes:
        return dumps(push_configs_to_proto03(resp))


CODECS: dict[str, RestCodec] = {"1.0": _V10(), "0.3": _V03()}
