"""The JSON-RPC methods of both protocol generations, over one A2AService.

A method takes the request's params (a dict), validates them into the canonical
request model (bad params -> -32602 naming the field), calls the service, and
renders the result in its generation's shape. Unary results are returned as
pre-serialised JSON bytes (pydantic serialises in Rust; the envelope is spliced
around them). Streaming methods return an `RpcStream` for the HTTP layer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import attrs
import pydantic

from actors.a2a_service import A2AService
from actors.store_port import StoredEvent
from protocol import v03
from protocol.errors import ExtendedAgentCardNotConfiguredError, InvalidParamsError
from protocol.jsonrpc import invalid_params
from protocol.models import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    SendMessageRequest,
    SendMessageResponse,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    dump,
)

M = TypeVar("M", bound=pydantic.BaseModel)

__all__ = ["METHODS", "CallContext", "RpcStream", "STREAMING_METHODS", "method_table"]


@attrs.frozen
class CallContext:
    principal: str
    version: str
    """'1.0' or '0.3'."""
    last_event_id: int | None = None
    extended_card: dict[str, Any] | None = None
    gateway_path: str | None = None
    """The per-method path the call came by (``/tasks/send``...), None for ``POST /``."""


@attrs.frozen
class RpcStream:
    """A streaming result: an optional first event, then live events, each rendered."""

    first: StoredEvent | None
    events: AsyncIterator[StoredEvent | None]
    """None items are keep-alive ticks."""
    render: Callable[[StreamResponse], bytes]


Result = bytes | RpcStream
Method = Callable[[A2AService, dict[str, Any], CallContext], Awaitable[Result]]


def _validate(model: type[M], params: dict[str, Any]) -> M:
    try:
        return model.model_validate(params)
    except pydantic.ValidationError as exc:
        raise invalid_params(exc) from None


def _json(model: pydantic.BaseModel) -> bytes:
    return model.model_dump_json(by_alias=True, exclude_none=True).encode()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class _Rendered:
    """The bytes of recently rendered events, by identity.

    Every subscriber of a task is handed the same logged event objects (the store's
    tail), so with this the event is serialized once, not once per subscriber. An
    entry keeps its event alive, so the id it is found by is never reused meanwhile;
    logged events are never changed, so their bytes stay right.
    """

    def __init__(self, render: Callable[[StreamResponse], bytes], size: int = 4096) -> None:
        self._render = render
        self._size = size
        self._cache: dict[int, tuple[StreamResponse, bytes]] = {}

    def __call__(self, event: StreamResponse) -> bytes:
        if event.task is not None:  # a stream's snapshot: its own object, never shared
            return self._render(event)
        hit = self._cache.get(id(event))
        if hit is not None and hit[0] is event:
            return hit[1]
        data = self._render(event)
        if len(self._cache) >= self._size:
            del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[id(event)] = (event, data)
        return data


_render10 = _Rendered(_json)
_render03 = _Rendered(lambda event: _dumps(v03.stream_response_to_v03(event)))


# --- A2A 1.0 ---------------------------------------------------------------------


async def send_message(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _validate(SendMessageRequest, params)
    out = await svc.send_message(req, ctx.principal)
    if out.message is not None:
        return _json(SendMessageResponse(message=out.message))
    return _json(SendMessageResponse(task=out.record.task))


async def send_streaming(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _validate(SendMessageRequest, params)
    first, events = await svc.send_streaming(req, ctx.principal)
    return RpcStream(first=first, events=events, render=_render10)


async def get_task(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    return _json(await svc.get_task(_validate(GetTaskRequest, params), ctx.principal))


async def list_tasks(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    return _json(await svc.list_tasks(_validate(ListTasksRequest, params), ctx.principal))


async def cancel_task(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    return _json(await svc.cancel_task(_validate(CancelTaskRequest, params), ctx.principal))


async def subscribe(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _validate(SubscribeToTaskRequest, params)
    first, events = await svc.subscribe(req.id, ctx.principal, last_event_id=ctx.last_event_id)
    return RpcStream(first=first, events=events, render=_render10)


async def create_push(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    cfg = _validate(TaskPushNotificationConfig, params)
    return _json(await svc.create_push_config(cfg, ctx.principal))


async def get_push(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _validate(GetTaskPushNotificationConfigRequest, params)
    return _json(await svc.get_push_config(req, ctx.principal))


async def list_push(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _validate(ListTaskPushNotificationConfigsRequest, params)
    return _json(await svc.list_push_configs(req, ctx.principal))


async def delete_push(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _validate(DeleteTaskPushNotificationConfigRequest, params)
    await svc.delete_push_config(req, ctx.principal)
    return b"{}"


async def extended_card(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    if ctx.extended_card is None:
        raise ExtendedAgentCardNotConfiguredError(
            "this server publishes no extended agent card (it is served when auth is on)"
        )
    return _dumps(ctx.extended_card)


# --- A2A 0.3 ---------------------------------------------------------------------


def _v03_params(convert: Callable[[dict[str, Any]], M],
                                       params: dict[str, Any]) -> M:
    try:
        return convert(params)
    except pydantic.ValidationError as exc:
        raise invalid_params(exc) from None
    except (ValueError, TypeError) as exc:
        raise InvalidParamsError(f"params: {exc}") from None


async def v03_send(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _v03_params(v03.send_params_from_v03, params)
    out = await svc.send_message(req, ctx.principal)
    if out.message is not None:
        return _dumps(v03.message_to_v03(out.message))
    return _dumps(v03.task_to_v03(out.record.task))


async def v03_stream(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _v03_params(v03.send_params_from_v03, params)
    first, events = await svc.send_streaming(req, ctx.principal)
    return RpcStream(first=first, events=events, render=_render03)


async def v03_get(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _v03_params(v03.task_query_from_v03, params)
    return _dumps(v03.task_to_v03(await svc.get_task(req, ctx.principal)))


async def v03_cancel(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _v03_params(lambda p: v03.task_id_from_v03(p, CancelTaskRequest), params)
    return _dumps(v03.task_to_v03(await svc.cancel_task(req, ctx.principal)))


async def v03_resubscribe(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _v03_params(lambda p: v03.task_id_from_v03(p, SubscribeToTaskRequest), params)
    # 0.3 ends a stream at an event marked `final`, a pause included
    first, events = await svc.subscribe(req.id, ctx.principal, last_event_id=ctx.last_event_id,
                                        through_pauses=False)
    return RpcStream(first=first, events=events, render=_render03)


async def v03_list(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    """tasks/list: an extension of ours for 0.3 clients; params as in 1.0 ListTasks."""
    resp = await svc.list_tasks(_validate(ListTasksRequest, params), ctx.principal)
    body = dump(resp)
    body["tasks"] = [v03.task_to_v03(t) for t in resp.tasks]
    return _dumps(body)


async def v03_push_set(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    cfg = _v03_params(v03.push_config_from_v03, params)
    return _dumps(v03.push_config_to_v03(await svc.create_push_config(cfg, ctx.principal)))


async def v03_push_get(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _v03_params(v03.push_config_get_from_v03, params)
    return _dumps(v03.push_config_to_v03(await svc.get_push_config(req, ctx.principal)))


async def v03_push_list(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _v03_params(v03.push_config_list_from_v03, params)
    resp = await svc.list_push_configs(req, ctx.principal)
    return _dumps([v03.push_config_to_v03(c) for c in resp.configs])


async def v03_push_delete(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _v03_params(v03.push_config_delete_from_v03, params)
    await svc.delete_push_config(req, ctx.principal)
    return b"null"


async def v03_extended_card(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    return await extended_card(svc, params, ctx)


METHODS: dict[str, dict[str, Method]] = {
    "1.0": {
        "SendMessage": send_message,
        "SendStreamingMessage": send_streaming,
        "GetTask": get_task,
        "ListTasks": list_tasks,
        "CancelTask": cancel_task,
        "SubscribeToTask": subscribe,
        "CreateTaskPushNotificationConfig": create_push,
        "GetTaskPushNotificationConfig": get_push,
        "ListTaskPushNotificationConfigs": list_push,
        "DeleteTaskPushNotificationConfig": delete_push,
        "GetExtendedAgentCard": extended_card,
    },
    "0.3": {
        "message/send": v03_send,
        "message/stream": v03_stream,
        "tasks/get": v03_get,
        "tasks/list": v03_list,
        "tasks/cancel": v03_cancel,
        "tasks/resubscribe": v03_resubscribe,
        "tasks/pushNotificationConfig/set": v03_push_set,
        "tasks/pushNotificationConfig/get": v03_push_get,
        "tasks/pushNotificationConfig/list": v03_push_list,
        "tasks/pushNotificationConfig/delete": v03_push_delete,
        "agent/getAuthenticatedExtendedCard": v03_extended_card,
    },
}
"""The 1.0 and 0.3 methods; `runtime.http.rpc_legacy` adds the 0.1/0.2 names."""

STREAMING_METHODS = frozenset(
    {"SendStreamingMessage", "SubscribeToTask", "message/stream", "tasks/resubscribe"}
)


def method_table(version: str) -> dict[str, Method]:
    return METHODS[version]
