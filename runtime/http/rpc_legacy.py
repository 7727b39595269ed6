"""The A2A 0.1/0.2 JSON-RPC methods, and the full method table with them.

``tasks/send``, ``tasks/sendSubscribe`` and ``tasks/sendStream`` take either shape
that is sent under those names (`protocol.legacy.send_shape` decides per request):
the 0.1/0.2 one, with the client's task id and sessionId, answered in the same
shape; or a 0.3 ``MessageSendParams``, handled as ``message/send`` and
``message/stream`` are. ``tasks/get``, ``tasks/cancel`` and ``tasks/resubscribe``
answer a task created in the old shape in that shape, any other in 0.3's; 0.1's
``tasks/pushNotification/set`` and ``/get`` are served too.

The gateways' per-method paths (`GATEWAY_PATHS`: ``POST /tasks/send`` ...) take a
JSON-RPC body whose method must be the path's; they always answer in the old
shape, in the flat part dialect for a task that was not created in one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import pydantic

from actors.a2a_service import A2AService, shape_task
from actors.client_ids import send_to_client_task, stream_to_client_task
from protocol import legacy, v03
from protocol.errors import InvalidParamsError, InvalidRequestError
from protocol.jsonrpc import invalid_params
from protocol.legacy import FLAT, LegacySend, LegacyStreamRenderer
from protocol.models import CancelTaskRequest, GetTaskRequest, StreamResponse, Task
from runtime.http.rpc_methods import (
    METHODS as _METHODS,
)
from runtime.http.rpc_methods import (
    STREAMING_METHODS as _STREAMING,
)
from runtime.http.rpc_methods import (
    CallContext,
    Method,
    Result,
    RpcStream,
    v03_resubscribe,
    v03_send,
    v03_stream,
)

__all__ = ["GATEWAY_PATHS", "METHODS", "STREAMING_METHODS", "check_gateway_method"]

GATEWAY_PATHS: dict[str, tuple[str, ...]] = {
    "/tasks/send": ("tasks/send",),
    "/tasks/sendStream": ("tasks/sendStream", "tasks/sendSubscribe"),
    "/tasks/sendSubscribe": ("tasks/sendSubscribe", "tasks/sendStream"),
    "/tasks/get": ("tasks/get",),
    "/tasks/cancel": ("tasks/cancel",),
}
"""The per-method paths of 0.1/0.2 gateways, and the methods each one takes."""


def check_gateway_method(path: str, method: str) -> None:
    """InvalidRequestError unless `method` is one that `path` takes."""
    allowed = GATEWAY_PATHS[path]
    if method not in allowed:
        raise InvalidRequestError(
            f"POST {path} takes method {' or '.join(map(repr, allowed))}, not {method!r}; "
            "send other methods to POST /"
        )


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _parse(params: dict[str, Any], ctx: CallContext) -> LegacySend:
    return legacy.send_params_from_legacy(params, message_id=str(uuid.uuid4()),
                                          flat=ctx.gateway_path is not None)


def _old_shape(params: dict[str, Any], ctx: CallContext) -> bool:
    return ctx.gateway_path is not None or legacy.send_shape(params) == "a2a-0.1"


async def tasks_send(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    if not _old_shape(params, ctx):
        return await v03_send(svc, params, ctx)
    send = _parse(params, ctx)
    out = await send_to_client_task(svc, send, ctx.principal)
    cfg = send.request.configuration
    task = shape_task(out.record.task, cfg.history_length if cfg else None)
    return _dumps(legacy.task_to_legacy(task, send.dialect, reply=out.message))


async def tasks_stream(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    if not _old_shape(params, ctx):
        return await v03_stream(svc, params, ctx)
    send = _parse(params, ctx)
    first, events = await stream_to_client_task(svc, send, ctx.principal)
    renderer = LegacyStreamRenderer(send.dialect)

    def render(event: StreamResponse) -> bytes:
        return _dumps(renderer(event))

    return RpcStream(first=first, events=events, render=render)


def _params(convert: Callable[[dict[str, Any]], Any], params: dict[str, Any]) -> Any:
    try:
        return convert(params)
    except pydantic.ValidationError as exc:
        raise invalid_params(exc) from None
    except (ValueError, TypeError) as exc:
        raise InvalidParamsError(f"params: {exc}") from None


def _render(task: Task, ctx: CallContext, history_length: int | None = None) -> bytes:
    """A task in the shape it was created in (the old one on a gateway path)."""
    dialect = legacy.dialect_of(task)
    shaped = shape_task(task, history_length)
    if dialect is None and ctx.gateway_path is None:
        return _dumps(v03.task_to_v03(shaped))
    return _dumps(legacy.task_to_legacy(shaped, dialect or FLAT))


async def tasks_get(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _params(v03.task_query_from_v03, params)
    task = await svc.get_task(GetTaskRequest(id=req.id), ctx.principal)
    return _render(task, ctx, req.history_length)


async def tasks_cancel(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    req = _params(lambda p: v03.task_id_from_v03(p, CancelTaskRequest), params)
    return _render(await svc.cancel_task(req, ctx.principal), ctx)


async def tasks_resubscribe(svc: A2AService, params: dict[str, Any], ctx: CallContext
                            ) -> Result:
    """tasks/resubscribe: a task created in the old shape streams in it (0.1 had the method)."""
    stream = await v03_resubscribe(svc, params, ctx)
    assert isinstance(stream, RpcStream)
    task_id = _params(lambda p: v03.task_id_from_v03(p, CancelTaskRequest), params).id
    dialect = legacy.dialect_of(await svc.get_task(GetTaskRequest(id=task_id), ctx.principal))
    if dialect is None:
        return stream
    renderer = LegacyStreamRenderer(dialect)

    def render(event: StreamResponse) -> bytes:
        return _dumps(renderer(event))

    return attrs.evolve(stream, render=render)


async def push_set(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    """tasks/pushNotification/set (0.1): ``{id, pushNotificationConfig}``."""
    cfg = legacy.push_config_from_legacy(params)
    return _dumps(legacy.push_config_to_legacy(await svc.create_push_config(cfg, ctx.principal)))


async def push_get(svc: A2AService, params: dict[str, Any], ctx: CallContext) -> Result:
    """tasks/pushNotification/get (0.1): ``{id}``, the config set for that task."""
    req = _params(v03.push_config_get_from_v03, params)
    return _dumps(legacy.push_config_to_legacy(await svc.get_push_config(req, ctx.principal)))


METHODS: dict[str, dict[str, Method]] = {
    "1.0": _METHODS["1.0"],
    "0.3": {
        **_METHODS["0.3"],
        "tasks/get": tasks_get,
        "tasks/cancel": tasks_cancel,
        "tasks/resubscribe": tasks_resubscribe,
        "tasks/pushNotification/set": push_set,
        "tasks/pushNotification/get": push_get,
        "tasks/send": tasks_send,
        "tasks/sendSubscribe": tasks_stream,
        "tasks/sendStream": tasks_stream,
    },
}
"""Every JSON-RPC method, by generation: `runtime.http.rpc_methods` plus the old names."""

STREAMING_METHODS = _STREAMING | {"tasks/sendSubscribe", "tasks/sendStream"}
