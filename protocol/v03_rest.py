"""The A2A 0.3 HTTP+JSON (REST) wire shape: the JSON mapping of ``a2a_v0_3.proto``.

A2A 0.3 had two JSON dialects. Its JSON-RPC binding (handled by `protocol.v03`)
used the types of the 0.3 JSON schema. Its HTTP+JSON binding was the HTTP
transcoding of the gRPC service in ``a2a_v0_3.proto``, so its bodies are that
proto's canonical JSON mapping (ProtoJSON). The official SDKs (a2a-sdk 0.3.x, and
1.x's compat layer) send and parse exactly that, and it differs from the JSON-RPC
shapes in almost every object:

* no ``kind`` tags: the enclosing oneof field names the object, so results are
  wrapped (``{"task": ...}``, ``{"message": ...}``, ``{"statusUpdate": ...}``,
  ``{"artifactUpdate": ...}``) where JSON-RPC returns them bare;
* a message's parts are under ``content`` (JSON-RPC: ``parts``); a part is the
  oneof ``text`` / ``file`` / ``data``, a file ``fileWithUri`` / ``fileWithBytes``
  (JSON-RPC: ``uri`` / ``bytes``), and a DataPart wraps its Struct, so data is
  ``{"data": {"data": {...}}}``;
* enums are names: ``ROLE_USER`` / ``ROLE_AGENT`` for ``"user"`` / ``"agent"``,
  ``TASK_STATE_INPUT_REQUIRED`` for ``"input-required"``, and the proto spells
  ``TASK_STATE_CANCELLED`` (two Ls) where JSON-RPC (and 1.0) say ``canceled``;
* a push config is a resource, ``{"name": "tasks/{t}/pushNotificationConfigs/{id}",
  "pushNotificationConfig": ...}``, where JSON-RPC has ``{taskId,
  pushNotificationConfig}``;
* ``blocking`` is a proto3 ``bool``: a ``configuration`` without it is
  non-blocking, where JSON-RPC's default is to block.

ProtoJSON parsers accept the proto field names (snake_case, e.g. ``message_id``,
``push_notification``) as well as the JSON names (lowerCamelCase), and enums by
name or number, so the ``*_from_proto03`` functions accept both spellings. Some 0.3
clients send the JSON-RPC shapes (``kind``-tagged ``parts``) to the REST paths
instead; those are accepted too. Everything is translated through `protocol.v03`, so
the 0.3 -> 1.0 rules documented there (historyLength 0, push authentication, ...)
hold here as well.

* ``*_from_proto03(body)`` returns the 1.0 model. Bad input raises
  ``pydantic.ValidationError`` (from the 0.3 models, ``loc`` naming the 0.3 field)
  or `InvalidParamsError`.
* ``*_to_proto03(obj)`` takes a 1.0 model and returns 0.3 proto JSON (camelCase
  keys, unset fields omitted).

The REST binding's GET requests carry their parameters in the query string, in
both generations; the pure parsing of those parameters lives here too
(`model_from_query`, `list_tasks_from_query`, ...) and raises `InvalidParamsError`
naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic
from pydantic.alias_generators import to_camel

from protocol import v03
from protocol.errors import InvalidParamsError
from protocol.jsonrpc import format_validation_error
from protocol.models import (
    GetTaskRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskPushNotificationConfig,
    dump,
)

__all__ = [
    "LIST_TASKS_PARAMS",
    "check_task_id",
    "list_tasks_from_query",
    "list_tasks_to_proto03",
    "message_to_proto03",
    "model_from_query",
    "push_config_from_proto03",
    "push_config_to_proto03",
    "push_configs_to_proto03",
    "query_error",
    "send_params_from_proto03",
    "send_response_to_proto03",
    "status_param",
    "stream_response_to_proto03",
    "task_query_from_proto03",
    "task_to_proto03",
]

_M = TypeVar("_M", bound=pydantic.BaseModel)

_ROLE_IN = {"ROLE_USER": "user", "ROLE_AGENT": "agent", 1: "user", 2: "agent"}
_ROLE_OUT = {"user": "ROLE_USER", "agent": "ROLE_AGENT"}
_STATE_OUT = {
    "submitted": "TASK_STATE_SUBMITTED", "working": "TASK_STATE_WORKING",
    "completed": "TASK_STATE_COMPLETED", "failed": "TASK_STATE_FAILED",
    "canceled": "TASK_STATE_CANCELLED", "input-required": "TASK_STATE_INPUT_REQUIRED",
    "rejected": "TASK_STATE_REJECTED", "auth-required": "TASK_STATE_AUTH_REQUIRED",
    "unknown": "TASK_STATE_UNSPECIFIED",
}

# ListTasks query parameters (0.3 gets ListTasks too, as our extension).
LIST_TASKS_PARAMS = ("contextId", "status", "pageSize", "pageToken", "historyLength",
                     "statusTimestampAfter", "includeArtifacts")


# --- query parameters and path rules (both generations) ------------------------------


def query_error(exc: pydantic.ValidationError) -> InvalidParamsError:
    """A query-parameter validation failure, naming the parameter."""
    first = next((e["loc"][0] for e in exc.errors() if e["loc"]), None)
    return InvalidParamsError(
        "query parameter " + format_validation_error(exc, prefix=""),
        metadata={"parameter": str(first)} if first is not None else None,
    )


def model_from_query(model: type[_M], query: Mapping[str, str], fixed: Mapping[str, Any]) -> _M:
    """`model` from query parameters plus fields fixed by the path (these win)."""
    try:
        return model.model_validate({**query, **fixed})
    except pydantic.ValidationError as exc:
        raise query_error(exc) from None


def status_param(value: str) -> str:
    """ListTasks `status`: the enum name, its number, or a short form ('working')."""
    s = value.strip().upper().replace("-", "_")
    s = s if s.isdigit() or s.startswith("TASK_STATE_") else "TASK_STATE_" + s
    return "TASK_STATE_CANCELED" if s == "TASK_STATE_CANCELLED" else s  # the 0.3 proto's spelling


def list_tasks_from_query(query: Mapping[str, str]) -> ListTasksRequest:
    """ListTasks from its query parameters (`LIST_TASKS_PARAMS`)."""
    params = dict(query)
    if "status" in params:
        params["status"] = status_param(params["status"])
    try:
        return ListTasksRequest.model_validate(params)
    except pydantic.ValidationError as exc:
        raise query_error(exc) from None


def task_query_from_proto03(query: Mapping[str, str], task_id: str) -> GetTaskRequest:
    """A 0.3 GetTask (`historyLength` 0 meant "no limit" in 0.3: unset in 1.0)."""
    try:
        return v03.task_query_from_v03({**query, "id": task_id})
    except pydantic.ValidationError as exc:
        raise query_error(exc) from None


def check_task_id(body: Mapping[str, Any], task_id: str) -> None:
    """A body's `taskId` (or `task_id`), if any, must be the path's task."""
    given = body.get("taskId", body.get("task_id"))
    if given not in (None, "", task_id):
        raise InvalidParamsError(
            f"taskId {given!r} in the body does not match task {task_id!r} of the path",
            metadata={"taskId": task_id},
        )


# --- 0.3 proto JSON in ----------------------------------------------------------------


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
    check_task_id(b, task_id)
    inner = _push_in(b["pushNotificationConfig"] if "pushNotificationConfig" in b else b)
    if isinstance(inner, dict) and not inner.get("id") and config_id:
        inner["id"] = config_id
    return v03.push_config_from_v03({"taskId": task_id, "pushNotificationConfig": inner})


# --- 0.3 proto JSON out (from the 0.3 JSON-RPC shapes protocol.v03 writes) -------------


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


def message_to_proto03(message: Message) -> dict[str, Any]:
    """A message as 0.3 proto JSON (parts under `content`)."""
    return _message_out(v03.message_to_v03(message))


def send_response_to_proto03(result: Task | Message) -> dict[str, Any]:
    """The 0.3 proto's SendMessageResponse: `{"task": ...}` or `{"message": ...}`."""
    if isinstance(result, Message):
        return {"message": message_to_proto03(result)}
    return {"task": task_to_proto03(result)}


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


def list_tasks_to_proto03(resp: ListTasksResponse) -> dict[str, Any]:
    """ListTasks (not in the 0.3 proto; our extension): the 1.0 page, 0.3 tasks."""
    body = dump(resp)
    body["tasks"] = [task_to_proto03(t) for t in resp.tasks]
    return body


def push_config_to_proto03(config: TaskPushNotificationConfig) -> dict[str, Any]:
    """A push config as the 0.3 proto's TaskPushNotificationConfig (resource `name`)."""
    c = v03.push_config_to_v03(config)
    inner = c["pushNotificationConfig"]
    return {"name": f"tasks/{c['taskId']}/pushNotificationConfigs/{inner.get('id', '')}",
            "pushNotificationConfig": inner}


def push_configs_to_proto03(resp: ListTaskPushNotificationConfigsResponse) -> dict[str, Any]:
    """The 0.3 proto's ListTaskPushNotificationConfigResponse."""
    body: dict[str, Any] = {"configs": [push_config_to_proto03(c) for c in resp.configs]}
    if resp.next_page_token:
        body["nextPageToken"] = resp.next_page_token
    return body
