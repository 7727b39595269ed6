"""Render the 1.0 models as A2A 0.3 JSON-RPC shapes (the ``*_to_v03`` half of `protocol.v03`).

Each ``*_to_v03(obj)`` takes a 1.0 model or its ProtoJSON dict (as ``models.dump``
writes it and the store keeps it) and returns 0.3 JSON; the output shares metadata
and data values with the input, so treat both as read-only. The rules for what 0.3
cannot say are in `protocol.v03`'s docstring. Kept apart from the parsing half so
each module stays one idea; import them through `protocol.v03`, which re-exports
every public name here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from protocol import models
from protocol.states import INTERRUPTED_STATES, TERMINAL_STATES
from protocol.v03_card import dual_version_card
from protocol.v03_models import (
    _ROLE_TO_V03,
    _STATE_FROM_V03,
    _STATE_TO_V03,
    DATA_WRAPPED_KEY,
    FILENAME_KEY,
    MEDIA_TYPE_KEY,
    _put,
)

__all__ = [
    "artifact_to_v03",
    "artifact_update_to_v03",
    "message_to_v03",
    "part_to_v03",
    "push_config_delete_to_v03",
    "push_config_get_to_v03",
    "push_config_list_to_v03",
    "push_config_to_v03",
    "push_configs_to_v03",
    "result_to_v03",
    "send_params_to_v03",
    "send_response_to_v03",
    "status_update_to_v03",
    "stream_response_to_v03",
    "task_id_to_v03",
    "task_query_to_v03",
    "task_to_v03",
]

_ENDS_STREAM = frozenset(s.value for s in TERMINAL_STATES | INTERRUPTED_STATES)



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
