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
transcoding of ``a2a_v0_3.proto``, so 0.3 bodies are that proto's JSON, as the
official SDKs (a2a-sdk 0.3.x, and 1.x's compat layer) send and parse it, served as
``application/json``; 0.3 requests may also use the 0.3 JSON-RPC shapes, which some
0.3 clients send instead. The translation is sans-IO in `protocol.v03_rest`; the
per-generation parsing and rendering is in `runtime.http.rest_codecs`. This module reads
requests, routes them and answers errors as google.rpc.Status JSON
(`A2AError.to_http`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from actors.a2a_service import A2AService
from actors.store_port import StoredEvent
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
from protocol.identity import owner_key
from protocol.models import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    ListTaskPushNotificationConfigsRequest,
)
from protocol.permissions import REST_OPERATIONS
from protocol.security_errors import RateLimitedError
from protocol.v03_rest import LIST_TASKS_PARAMS, list_tasks_from_query, model_from_query
from runtime.http.auth import RepeatedAuthorization, one_authorization
from runtime.http.common import AppState, is_json_content_type, json_response, unauthorized
from runtime.http.gate import authorize, identify
from runtime.http.rest_codecs import A2A_JSON, CODECS, RestCodec, dumps, render_error
from runtime.http.signing_settings import SIGNED_BY
from runtime.http.sse import event_frames, sse_response

__all__ = ["A2A_JSON", "register_rest_routes"]

log = logging.getLogger(__name__)


# --- request parts ------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


async def _body(call: _Call, *, required: bool) -> dict[str, Any] | None:
    """The JSON object body; None when it is empty and optional. A body that breaks
    a request limit (`protocol.limits`) is refused here, before any model is built."""
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
    call.state.limits.check(obj, where="")
    return obj


def _query(*names: str) -> dict[str, str]:
    """The named query parameters that are present (a repeated one: the last wins)."""
    return {n: request.args.getlist(n)[-1] for n in names if n in request.args}


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


def _media_type(version: str) -> str:
    """The JSON media type of a 1.0 answer, in kind with the request (A2A 1.0.1 §11.1):
    ``application/json`` for a request sent (or, without a body, accepting only)
    ``application/json``, since clients written against 1.0.0 check for it;
    ``application/a2a+json`` otherwise. 0.3 answers ``application/json``."""
    if version != "1.0":
        return "application/json"
    ctype = request.headers.get("Content-Type")
    if ctype:
        media = ctype.split(";", 1)[0].strip().lower()
        return "application/json" if media == "application/json" else A2A_JSON
    accept = request.headers.get("Accept", "")
    kinds = {a.split(";", 1)[0].strip().lower() for a in accept.split(",")}
    return "application/json" if "application/json" in kinds and A2A_JSON not in kinds \
        else A2A_JSON


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
    def codec(self) -> RestCodec:
        return CODECS[self.version]

    def ok(self, data: bytes) -> Response:
        return Response(data, status=200, content_type=_media_type(self.version))

    def stream(self, first: StoredEvent | None,
               events: AsyncIterator[StoredEvent | None]) -> Response:
        return sse_response(event_frames(first, events, self.codec.event, render_error))


# --- operations ----------------------------------------------------------------------


async def send_message(call: _Call) -> Response:
    req = call.codec.send_request(await _body(call, required=True) or {}, call.tenant)
    return call.ok(call.codec.send_result(await call.svc.send_message(req, call.principal)))


async def send_streaming(call: _Call) -> Response:
    req = call.codec.send_request(await _body(call, required=True) or {}, call.tenant)
    first, events = await call.svc.send_streaming(req, call.principal)
    return call.stream(first, events)


async def get_task(call: _Call, task_id: str) -> Response:
    if task_id.endswith(":cancel"):  # GET /tasks/{id}:cancel routes here; ids have no ':'
        raise MethodNotAllowed(valid_methods=["POST"])
    req = call.codec.get_request(task_id, _query("historyLength"))
    task = await call.svc.get_task(req, call.principal)
    return call.ok(call.codec.task(task))


async def list_tasks(call: _Call) -> Response:
    """ListTasks from query parameters (0.3 gets it too, as our extension)."""
    req = list_tasks_from_query(_query(*LIST_TASKS_PARAMS))
    return call.ok(call.codec.tasks(await call.svc.list_tasks(req, call.principal)))


async def cancel_task(call: _Call, task_id: str) -> Response:
    body = await _body(call, required=False) or {}
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidParamsError("metadata: must be an object")
    req = CancelTaskRequest(id=task_id, metadata=metadata, tenant=call.tenant)
    return call.ok(call.codec.task(await call.svc.cancel_task(req, call.principal)))


async def subscribe(call: _Call, task_id: str) -> Response:
    """SubscribeToTask (GET or POST; a body is ignored); honours Last-Event-ID."""
    last = _last_event_id()
    first, events = await call.svc.subscribe(task_id, call.principal, last_event_id=last,
                                             through_pauses=call.version == "1.0")
    return call.stream(first, events)


async def create_push(call: _Call, task_id: str) -> Response:
    cfg = call.codec.push_request(await _body(call, required=True) or {}, task_id)
    return call.ok(call.codec.push(await call.svc.create_push_config(cfg, call.principal)))


async def list_push(call: _Call, task_id: str) -> Response:
    req = model_from_query(ListTaskPushNotificationConfigsRequest,
                           _query("pageSize", "pageToken"), {"taskId": task_id})
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
    if not call.state.extended_card:
        raise ExtendedAgentCardNotConfiguredError(
            "this server publishes no extended agent card (it is served when auth is on)"
        )
    return call.ok(dumps(call.state.card.document.data))


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
    headers = ({"Retry-After": str(err.retry_seconds)} if isinstance(err, RateLimitedError)
               else None)
    if version == "1.0":
        return json_response(body, status=status, content_type=_media_type(version),
                             headers=headers)
    name = "JSONParseError" if isinstance(err, ParseError) else type(err).__name__
    return json_response({**body, "type": name, "message": err.message}, status=status,
                         headers=headers)


# The A2A 1.0 method of each route, for metrics and traces (`runtime.observe`).
METHOD_NAMES = {"send": "SendMessage", "stream": "SendStreamingMessage",
                "list_tasks": "ListTasks", "get_task": "GetTask", "cancel": "CancelTask",
                "subscribe": "SubscribeToTask", "create_push": "CreateTaskPushNotificationConfig",
                "list_push": "ListTaskPushNotificationConfigs",
                "get_push": "GetTaskPushNotificationConfig",
                "delete_push": "DeleteTaskPushNotificationConfig",
                "extended_card": "GetExtendedAgentCard", "card_v03": "GetExtendedAgentCard"}


def _view(state: AppState, op: Operation, *, v1_path: bool, has: frozenset[str],
          name: str) -> Operation:
    permission = REST_OPERATIONS[name]  # every route names its permission (KeyError if not)
    method = METHOD_NAMES.get(name, name)

    async def view(**params: str) -> Response:
        version = "0.3" if v1_path else "1.0"
        notes = request.scope.get("a2a.notes")  # runtime.observe's, when it is in front
        if notes is not None:
            notes["binding"], notes["method"] = "rest", method
        try:
            authorization = one_authorization(request.headers.getlist("Authorization"))
        except RepeatedAuthorization as exc:
            return _error(InvalidRequestError(str(exc)), version)
        identity = await identify(state, authorization)
        if identity is None:
            return unauthorized()
        if notes is not None:
            notes["principal"] = owner_key(identity)
        try:
            version = _version(v1_path, has)
            tenant = params.pop("tenant", None) or ("v1" if v1_path and version == "1.0" else None)
            rule = request.url_rule.rule if request.url_rule is not None else ""
            authorize(state, identity, permission, f"{request.method} {rule}",
                      tenant, request.scope.get(SIGNED_BY))
            return await op(_Call(state, owner_key(identity), version, tenant), **params)
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
    return json_response(body, status=code, headers=headers)


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
                             _view(state, op, v1_path=v1_path, has=has, name=name),
                             methods=list(methods))
    for code in (404, 405):
        app.register_error_handler(code, _http_error)
