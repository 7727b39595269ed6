"""The HTTP+JSON (REST) binding, both protocol generations, over one A2AService.

Which generation a request speaks (the version rule):

* The 1.0 paths (``/message:send``, ``/tasks/{id}:cancel``, ... and the same under
  ``/{tenant}/``) exist only in A2A 1.0, so they always speak 1.0. A missing or
  empty ``A2A-Version`` (header, or ``?A2A-Version=``) is read as 1.0 there, not as
  0.3 as on JSON-RPC: there is no 0.3 request a 1.0 path could mean. An explicit
  ``0.3`` or unsupported value gets VersionNotSupported (400). The tenant is
  accepted and ignored (one tenant per server).
* The ``/v1/...`` paths are the 0.3 binding: missing, empty or ``0.3`` speaks 0.3.
  With ``A2A-Version: 1.0`` a ``/v1/...`` path is the 1.0 binding under tenant
  ``v1`` and is served as 1.0; ``/v1/card`` has no 1.0 form and refuses 1.0.

Wire shapes: 1.0 bodies are the ProtoJSON of the 1.0 models and successful
responses are ``application/a2a+json`` (v1.0.1). The 0.3 REST binding is the HTTP
transcoding of ``a2a_v0_3.proto``, so 0.3 results are that proto's JSON, as the
official SDKs (a2a-sdk 0.3.x, and 1.x's compat layer) send and parse it: results
wrapped (``{"task": ...}``), ``TASK_STATE_*`` and ``ROLE_*`` enums, message parts
under ``content``, ``application/json``. 0.3 requests may be that proto JSON (camel
or snake case) or the 0.3 JSON-RPC shapes (``kind``-tagged ``parts``), which some
0.3 clients send instead. Errors are google.rpc.Status JSON (`A2AError.to_http`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import attrs
import pydantic
from pydantic.alias_generators import to_camel
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from actors.a2a_service import A2AService, SendOutcome
from actors.store_port import StoredEvent
from protocol import v03
from protocol.errors import (
    A2AError,
    ContentTypeNotSupportedError,
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    ParseError,
    VersionNotSupportedError,
)
from protocol.jsonrpc import format_validation_error, invalid_params
from protocol.models import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    SendMessageRequest,
    SendMessageResponse,
    StreamResponse,
    Task,
    TaskPushNotificationConfig,
    dump,
)
from runtime.http_app import AppState, _json_response, is_json_content_type, unauthorized
from runtime.sse_stream import event_frames, sse_response

__all__ = ["A2A_JSON", "register_rest_routes"]

log = logging.getLogger(__name__)

A2A_JSON = "application/a2a+json"
M = TypeVar("M", bound=pydantic.BaseModel)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _render_error(err: A2AError) -> bytes:
    """An error inside an SSE stream: its google.rpc.Status body (`event: error`)."""
    return _dumps(err.to_http()[1])


def _json(model: pydantic.BaseModel) -> bytes:
    return model.model_dump_json(by_alias=True, exclude_none=True).encode()


# --- request parts ------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


async def _body(*, required: bool) -> dict[str, Any] | None:
    """The JSON object body; None when it is empty and optional."""
    data = await request.get_data(cache=False)
    if not data.strip():
        if required:
            raise InvalidRequestError("the request body is empty; send a JSON object")
        return None
    ctype = request.headers.get("Content-Type")
    if not is_json_content_type(ctype):
        raise ContentTypeNotSupportedError(
            f"content type {ctype!r} is not supported; send application/a2a+json or "
            "application/json"
        )
    try:
        text = data.decode("utf-8")
        obj = _DECODER.decode(text[1:] if text[:1] == "\ufeff" else text)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"Invalid JSON payload: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return obj


def _query(*names: str) -> dict[str, str]:
    """The named query parameters that are present (a repeated one: the last wins)."""
    return {n: request.args.getlist(n)[-1] for n in names if n in request.args}


def _bad_query(exc: pydantic.ValidationError) -> InvalidParamsError:
    first = next((e["loc"][0] for e in exc.errors() if e["loc"]), None)
    return InvalidParamsError(
        "query parameter " + format_validation_error(exc, prefix=""),
        metadata={"parameter": str(first)} if first is not None else None,
    )


def _from_query(model: type[M], fixed: dict[str, Any], *names: str) -> M:
    try:
        return model.model_validate({**_query(*names), **fixed})
    except pydantic.ValidationError as exc:
        raise _bad_query(exc) from None


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


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID")
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise InvalidParamsError(
            f"Last-Event-ID {raw!r} is not an event id of this server (an integer)",
            metadata={"header": "Last-Event-ID"},
        ) from None


def _status_param(value: str) -> str:
    """ListTasks `status`: the enum name, its number, or a short form ('working')."""
    s = value.strip().upper().replace("-", "_")
    s = s if s.isdigit() or s.startswith("TASK_STATE_") else "TASK_STATE_" + s
    return "TASK_STATE_CANCELED" if s == "TASK_STATE_CANCELLED" else s  # the 0.3 proto's spelling


def _check_task_id(body: dict[str, Any], task_id: str) -> None:
    given = body.get("taskId", body.get("task_id"))
    if given not in (None, "", task_id):
        raise InvalidParamsError(
            f"taskId {given!r} in the body does not match task {task_id!r} of the path",
            metadata={"taskId": task_id},
        )


# --- 0.3: the a2a_v0_3.proto JSON dialect ----------------------------------------------

_ROLE_IN = {"ROLE_USER": "user", "ROLE_AGENT": "agent", 1: "user", 2: "agent"}
_ROLE_OUT = {"user": "ROLE_USER", "agent": "ROLE_AGENT"}
_STATE_OUT = {
    "submitted": "TASK_STATE_SUBMITTED", "working": "TASK_STATE_WORKING",
    "completed": "TASK_STATE_COMPLETED", "failed": "TASK_STATE_FAILED",
    "canceled": "TASK_STATE_CANCELLED", "input-required": "TASK_STATE_INPUT_REQUIRED",
    "rejected": "TASK_STATE_REJECTED", "auth-required": "TASK_STATE_AUTH_REQUIRED",
    "unknown": "TASK_STATE_UNSPECIFIED",
}


def _camel(obj: Any) -> Any:
    """One level of snake_case keys to camelCase (values such as metadata untouched)."""
    if not isinstance(obj, dict):
        return obj
    return {to_camel(k) if "_" in k else k: v for k, v in obj.items()}


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _part_in(p: Any) -> Any:
    p = _camel(p)
    if not isinstance(p, dict):
        return p
    if isinstance(p.get("file"), dict):
        f = _camel(p["file"])
        if "fileWithUri" in f:
            f["uri"] = f.pop("fileWithUri")
        if "fileWithBytes" in f:
            f["bytes"] = f.pop("fileWithBytes")
        p["file"] = f
    elif "kind" not in p and "data" in p and "text" not in p:
        inner = p["data"]  # proto DataPart wraps its Struct: {"data": {"data": {...}}}
        if isinstance(inner, dict) and set(inner) <= {"data"}:
            p["data"] = inner.get("data", {})
    return p


def _message_in(m: Any) -> Any:
    m = _camel(m)
    if not isinstance(m, dict):
        return m
    if "parts" not in m and "content" in m:
        m["parts"] = m.pop("content")
    role = m.get("role")
    if isinstance(role, str | int) and role in _ROLE_IN:
        m["role"] = _ROLE_IN[role]
    if isinstance(m.get("parts"), list):
        m["parts"] = [_part_in(p) for p in m["parts"]]
    return m


def _push_in(c: Any) -> Any:
    c = _camel(c)
    if isinstance(c, dict) and isinstance(c.get("authentication"), dict):
        c["authentication"] = _camel(c["authentication"])
    return c


def send_params_from_proto03(body: dict[str, Any]) -> SendMessageRequest:
    """A 0.3 REST send body (proto JSON or JSON-RPC shape) as the 1.0 request.

    In proto JSON a `configuration` without `blocking` is non-blocking (proto3
    default); without any `configuration`, and in the JSON-RPC shape, the send blocks.
    """
    b = _camel(body)
    if "message" not in b and "request" in b:
        b["message"] = b.pop("request")
    msg = _camel(b.get("message"))
    proto = isinstance(msg, dict) and ("content" in msg and "parts" not in msg
                                       or str(msg.get("role", "")).startswith("ROLE_"))
    if "message" in b:
        b["message"] = _message_in(msg)
    cfg = _camel(b.get("configuration"))
    if isinstance(cfg, dict):
        if proto and "blocking" not in cfg:
            cfg["blocking"] = False  # a proto3 bool: absent is false (a2a-sdk reads it so)
        if "pushNotificationConfig" not in cfg and "pushNotification" in cfg:
            cfg["pushNotificationConfig"] = cfg.pop("pushNotification")
        if "pushNotificationConfig" in cfg:
            cfg["pushNotificationConfig"] = _push_in(cfg["pushNotificationConfig"])
        b["configuration"] = cfg
    return v03.send_params_from_v03(b)


def push_config_from_proto03(body: dict[str, Any], task_id: str) -> TaskPushNotificationConfig:
    """A 0.3 REST push-config body: the proto's `config`, a full create request
    (`{parent, configId, config}`, as the SDK sends it), a JSON-RPC
    TaskPushNotificationConfig, or a bare PushNotificationConfig."""
    b = _camel(body)
    config_id = b.get("configId")
    if isinstance(b.get("config"), dict):
        b = _camel(b["config"])
    _check_task_id(b, task_id)
    inner = _push_in(b["pushNotificationConfig"] if "pushNotificationConfig" in b else b)
    if isinstance(inner, dict) and not inner.get("id") and config_id:
        inner["id"] = config_id
    return v03.push_config_from_v03({"taskId": task_id, "pushNotificationConfig": inner})


def _part_out(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kind = p.get("kind")
    if kind == "text":
        out["text"] = p["text"]
    elif kind == "file":
        f = p["file"]
        pf: dict[str, Any] = (
            {"fileWithUri": f["uri"]} if f.get("uri") is not None
            else {"fileWithBytes": f.get("bytes")}
        )
        _put(pf, "mimeType", f.get("mimeType"))
        _put(pf, "name", f.get("name"))
        out["file"] = pf
    else:
        out["data"] = {"data": p.get("data")}
    _put(out, "metadata", p.get("metadata"))
    return out


def _message_out(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"messageId": m["messageId"]}
    _put(out, "contextId", m.get("contextId"))
    _put(out, "taskId", m.get("taskId"))
    out["role"] = _ROLE_OUT.get(m.get("role", ""), "ROLE_UNSPECIFIED")
    out["content"] = [_part_out(p) for p in m.get("parts", ())]
    _put(out, "metadata", m.get("metadata"))
    _put(out, "extensions", m.get("extensions"))
    return out


def _status_out(s: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"state": _STATE_OUT.get(s["state"], "TASK_STATE_UNSPECIFIED")}
    if s.get("message") is not None:
        out["message"] = _message_out(s["message"])
    _put(out, "timestamp", s.get("timestamp"))
    return out


def _artifact_out(a: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"artifactId": a["artifactId"]}
    _put(out, "name", a.get("name"))
    _put(out, "description", a.get("description"))
    out["parts"] = [_part_out(p) for p in a.get("parts", ())]
    _put(out, "metadata", a.get("metadata"))
    _put(out, "extensions", a.get("extensions"))
    return out


def _task_out(t: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": t["id"], "contextId": t["contextId"],
                           "status": _status_out(t["status"])}
    if t.get("artifacts") is not None:
        out["artifacts"] = [_artifact_out(a) for a in t["artifacts"]]
    if t.get("history") is not None:
        out["history"] = [_message_out(m) for m in t["history"]]
    _put(out, "metadata", t.get("metadata"))
    return out


def task_to_proto03(task: Task) -> dict[str, Any]:
    """A task as 0.3 proto JSON."""
    return _task_out(v03.task_to_v03(task))


def stream_response_to_proto03(event: StreamResponse) -> dict[str, Any]:
    """A stream event as the 0.3 proto's StreamResponse JSON (with `final`)."""
    ev = v03.stream_response_to_v03(event)
    kind = ev.get("kind")
    if kind == "task":
        return {"task": _task_out(ev)}
    if kind == "message":
        return {"message": _message_out(ev)}
    head = {"taskId": ev["taskId"], "contextId": ev["contextId"]}
    if kind == "status-update":
        out = {**head, "status": _status_out(ev["status"]), "final": bool(ev.get("final"))}
        _put(out, "metadata", ev.get("metadata"))
        return {"statusUpdate": out}
    out = {**head, "artifact": _artifact_out(ev["artifact"])}
    _put(out, "append", ev.get("append"))
    _put(out, "lastChunk", ev.get("lastChunk"))
    _put(out, "metadata", ev.get("metadata"))
    return {"artifactUpdate": out}


def push_config_to_proto03(config: TaskPushNotificationConfig) -> dict[str, Any]:
    """A push config as the 0.3 proto's TaskPushNotificationConfig (resource `name`)."""
    c = v03.push_config_to_v03(config)
    inner = c["pushNotificationConfig"]
    return {"name": f"tasks/{c['taskId']}/pushNotificationConfigs/{inner.get('id', '')}",
            "pushNotificationConfig": inner}


# --- the two generations -----------------------------------------------------------


class _Codec(Protocol):
    """Parsing and rendering where the generations differ; semantics do not."""

    content_type: str

    def send_request(self, body: dict[str, Any], tenant: str | None) -> SendMessageRequest: ...
    def get_request(self, task_id: str) -> GetTaskRequest: ...
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

    def get_request(self, task_id: str) -> GetTaskRequest:
        return _from_query(GetTaskRequest, {"id": task_id}, "historyLength")

    def push_request(self, body: dict[str, Any], task_id: str) -> TaskPushNotificationConfig:
        _check_task_id(body, task_id)
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

    def get_request(self, task_id: str) -> GetTaskRequest:
        # historyLength 0 meant "no limit" in 0.3: task_query_from_v03 knows.
        try:
            return v03.task_query_from_v03({**_query("historyLength"), "id": task_id})
        except pydantic.ValidationError as exc:
            raise _bad_query(exc) from None

    def push_request(self, body: dict[str, Any], task_id: str) -> TaskPushNotificationConfig:
        return _from_v03(lambda b: push_config_from_proto03(b, task_id), body)

    def send_result(self, out: SendOutcome) -> bytes:
        if out.message is not None:
            return _dumps({"message": _message_out(v03.message_to_v03(out.message))})
        return _dumps({"task": task_to_proto03(out.record.task)})

    def task(self, task: Task) -> bytes:
        return _dumps(task_to_proto03(task))

    def event(self, event: StreamResponse) -> bytes:
        return _dumps(stream_response_to_proto03(event))

    def tasks(self, resp: ListTasksResponse) -> bytes:
        body = dump(resp)
        body["tasks"] = [task_to_proto03(t) for t in resp.tasks]
        return _dumps(body)

    def push(self, config: TaskPushNotificationConfig) -> bytes:
        return _dumps(push_config_to_proto03(config))

    def pushes(self, resp: ListTaskPushNotificationConfigsResponse) -> bytes:
        body: dict[str, Any] = {"configs": [push_config_to_proto03(c) for c in resp.configs]}
        if resp.next_page_token:
            body["nextPageToken"] = resp.next_page_token
        return _dumps(body)


_CODECS: dict[str, _Codec] = {"1.0": _V10(), "0.3": _V03()}


@attrs.frozen
class _Call:
    """One authenticated request, its generation and its tenant."""

    state: AppState
    principal: str
    version: str
    tenant: str | None

    @property
    def svc(self) -> A2AService:
        return self.state.service

    @property
    def codec(self) -> _Codec:
        return _CODECS[self.version]

    def ok(self, data: bytes) -> Response:
        return Response(data, status=200, content_type=self.codec.content_type)

    def stream(self, first: StoredEvent | None,
               events: AsyncIterator[StoredEvent | None]) -> Response:
        return sse_response(event_frames(first, events, self.codec.event, _render_error))


# --- operations ----------------------------------------------------------------------


async def send_message(call: _Call) -> Response:
    req = call.codec.send_request(await _body(required=True) or {}, call.tenant)
    return call.ok(call.codec.send_result(await call.svc.send_message(req, call.principal)))


async def send_streaming(call: _Call) -> Response:
    req = call.codec.send_request(await _body(required=True) or {}, call.tenant)
    first, events = await call.svc.send_streaming(req, call.principal)
    return call.stream(first, events)


async def get_task(call: _Call, task_id: str) -> Response:
    if task_id.endswith(":cancel"):  # GET /tasks/{id}:cancel routes here; ids have no ':'
        raise MethodNotAllowed(valid_methods=["POST"])
    task = await call.svc.get_task(call.codec.get_request(task_id), call.principal)
    return call.ok(call.codec.task(task))


async def list_tasks(call: _Call) -> Response:
    """ListTasks from query parameters (0.3 gets it too, as our extension)."""
    params = _query("contextId", "status", "pageSize", "pageToken", "historyLength",
                    "statusTimestampAfter", "includeArtifacts")
    if "status" in params:
        params["status"] = _status_param(params["status"])
    try:
        req = ListTasksRequest.model_validate(params)
    except pydantic.ValidationError as exc:
        raise _bad_query(exc) from None
    return call.ok(call.codec.tasks(await call.svc.list_tasks(req, call.principal)))


async def cancel_task(call: _Call, task_id: str) -> Response:
    body = await _body(required=False) or {}
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidParamsError("metadata: must be an object")
    req = CancelTaskRequest(id=task_id, metadata=metadata, tenant=call.tenant)
    return call.ok(call.codec.task(await call.svc.cancel_task(req, call.principal)))


async def subscribe(call: _Call, task_id: str) -> Response:
    """SubscribeToTask (GET or POST; a body is ignored); honours Last-Event-ID."""
    last = _last_event_id()
    first, events = await call.svc.subscribe(task_id, call.principal, last_event_id=last)
    return call.stream(first, events)


async def create_push(call: _Call, task_id: str) -> Response:
    cfg = call.codec.push_request(await _body(required=True) or {}, task_id)
    return call.ok(call.codec.push(await call.svc.create_push_config(cfg, call.principal)))


async def list_push(call: _Call, task_id: str) -> Response:
    req = _from_query(ListTaskPushNotificationConfigsRequest, {"taskId": task_id},
                      "pageSize", "pageToken")
    return call.ok(call.codec.pushes(await call.svc.list_push_configs(req, call.principal)))


async def get_push(call: _Call, task_id: str, config_id: str) -> Response:
    req = GetTaskPushNotificationConfigRequest(task_id=task_id, id=config_id)
    return call.ok(call.codec.push(await call.svc.get_push_config(req, call.principal)))


async def delete_push(call: _Call, task_id: str, config_id: str) -> Response:
    """Returns `{}` (google.protobuf.Empty), as a2a-sdk does, in both generations."""
    req = DeleteTaskPushNotificationConfigRequest(task_id=task_id, id=config_id)
    await call.svc.delete_push_config(req, call.principal)
    return call.ok(b"{}")


async def extended_card(call: _Call) -> Response:
    if call.state.extended_card is None:
        raise ExtendedAgentCardNotConfiguredError(
            "this server publishes no extended agent card (it is served when auth is on)"
        )
    return call.ok(_dumps(call.state.extended_card))


Operation = Callable[..., Awaitable[Response]]
BOTH = frozenset({"1.0", "0.3"})

# (name, path after the prefix, methods, operation, generations that have the path)
ROUTES: tuple[tuple[str, str, tuple[str, ...], Operation, frozenset[str]], ...] = (
    ("send", "/message:send", ("POST",), send_message, BOTH),
    ("stream", "/message:stream", ("POST",), send_streaming, BOTH),
    ("list_tasks", "/tasks", ("GET",), list_tasks, BOTH),
    ("get_task", "/tasks/<task_id>", ("GET",), get_task, BOTH),
    ("cancel", "/tasks/<task_id>:cancel", ("POST",), cancel_task, BOTH),
    ("subscribe", "/tasks/<task_id>:subscribe", ("GET", "POST"), subscribe,
     BOTH),
    ("create_push", "/tasks/<task_id>/pushNotificationConfigs", ("POST",), create_push,
     BOTH),
    ("list_push", "/tasks/<task_id>/pushNotificationConfigs", ("GET",), list_push,
     BOTH),
    ("get_push", "/tasks/<task_id>/pushNotificationConfigs/<config_id>", ("GET",), get_push,
     BOTH),
    ("delete_push", "/tasks/<task_id>/pushNotificationConfigs/<config_id>", ("DELETE",),
     delete_push, BOTH),
    ("extended_card", "/extendedAgentCard", ("GET",), extended_card, frozenset({"1.0"})),
    ("card_v03", "/card", ("GET",), extended_card, frozenset({"0.3"})),
)


def _version(v1_path: bool, has: frozenset[str]) -> str:
    """The generation a request speaks (see the module docstring)."""
    raw = request.headers.get("A2A-Version")
    if raw is None:
        raw = request.args.get("A2A-Version")
    value = (raw or "").strip()
    path = request.path
    if not value:
        return "0.3" if v1_path else "1.0"
    version = {"0.3": "0.3", "0.3.0": "0.3", "1.0": "1.0", "1.0.0": "1.0"}.get(value)
    if version is not None and (version == "1.0" or v1_path) and version in has:
        return version
    if version == "0.3":
        hint = "the A2A 0.3 HTTP+JSON binding lives under /v1 (e.g. /v1/message:send)"
    elif version == "1.0":
        hint = f"{path} is an A2A 0.3 path; the 1.0 extended card is GET /extendedAgentCard"
    else:
        hint = "send A2A-Version: 1.0 on 1.0 paths, or nothing (0.3) on /v1 paths"
    raise VersionNotSupportedError(
        f"A2A version {value!r} is not supported on {request.method} {path}; {hint}"
    )


def _error(err: A2AError, version: str) -> Response:
    """google.rpc.Status; 0.3 also gets `type`/`message` at the top, where a2a-sdk's
    0.3 REST client looks for the error class."""
    status, body = err.to_http()
    if version == "1.0":
        return _json_response(body, status=status, content_type=A2A_JSON)
    name = "JSONParseError" if isinstance(err, ParseError) else type(err).__name__
    return _json_response({**body, "type": name, "message": err.message}, status=status)


def _view(state: AppState, op: Operation, *, v1_path: bool, has: frozenset[str]) -> Operation:
    async def view(**params: str) -> Response:
        version = "0.3" if v1_path else "1.0"
        principal = state.auth.principal(request.headers.get("Authorization"))
        if principal is None:
            return unauthorized()
        try:
            version = _version(v1_path, has)
            tenant = params.pop("tenant", None) or ("v1" if v1_path and version == "1.0" else None)
            return await op(_Call(state, principal, version, tenant), **params)
        except A2AError as err:
            return _error(err, version)
        except HTTPException:
            raise  # 413 body too large and the like: the app's handlers answer
        except Exception:
            log.exception("internal error in HTTP+JSON operation",
                          extra={"operation": op.__name__, "path": request.path})
            return _error(InternalError("internal server error"), version)

    return view


def _http_error(exc: HTTPException) -> Response:
    """Unknown paths and wrong methods answer in google.rpc.Status JSON too."""
    code = exc.code or 500
    status = {404: "NOT_FOUND", 405: "UNIMPLEMENTED"}.get(code, "UNKNOWN")
    if code == 405:
        allowed = sorted(getattr(exc, "valid_methods", None) or ())
        usable = [m for m in allowed if m not in ("HEAD", "OPTIONS")]
        message = (f"{request.method} is not allowed on {request.path}; "
                   f"use {', '.join(usable) or 'another method'}")
        headers = {"Allow": ", ".join(allowed)} if allowed else None
    else:
        message = f"no A2A endpoint at {request.method} {request.path}"
        headers = None
    body = {"error": {"code": code, "status": status, "message": message}}
    return _json_response(body, status=code, headers=headers)


def register_rest_routes(app: QuartTrio, state: AppState) -> None:
    """Add the 1.0 paths (also under /{tenant}) and the 0.3 paths under /v1."""
    for name, path, methods, op, has in ROUTES:
        prefixes: list[tuple[str, str, bool]] = []
        if "1.0" in has:
            prefixes += [("", "", False), ("/<tenant>", "_tenant", False)]
        if "0.3" in has:
            prefixes.append(("/v1", "_v1", True))
        for prefix, suffix, v1_path in prefixes:
            app.add_url_rule(prefix + path, f"rest_{name}{suffix}",
                             _view(state, op, v1_path=v1_path, has=has), methods=list(methods))
    for code in (404, 405):
        app.register_error_handler(code, _http_error)
