"""What the permission matrix test calls: each operation on each binding, as one HTTP
request, and how its answer reads (allowed, or refused for lack of permission)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import httpx

from tests.conftest import user_message, user_message_v03

BINDINGS = ("jsonrpc-1.0", "jsonrpc-0.3", "rest-1.0")


@attrs.frozen
class Ids:
    task: str
    config: str


@attrs.frozen
class Call:
    method: str
    path: str
    body: Any = None
    version: str | None = None
    rpc: bool = False


def _rpc(method: str, params: Any, version: str | None) -> Call:
    return Call("POST", "/", {"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                version, rpc=True)


def _push10(ids: Ids) -> dict[str, Any]:
    return {"taskId": ids.task, "id": ids.config, "url": "https://example.com/hook"}


Builder = Callable[[Ids], Call]

# permission name -> binding -> request builder
OPERATIONS: dict[str, dict[str, Builder]] = {
    "message.send": {
        "jsonrpc-1.0": lambda i: _rpc("SendMessage", {"message": user_message("ask")}, "1.0"),
        "jsonrpc-0.3": lambda i: _rpc("message/send", {"message": user_message_v03("ask")},
                                      None),
        "rest-1.0": lambda i: Call("POST", "/message:send", {"message": user_message("ask")},
                                   "1.0"),
    },
    "message.stream": {
        "jsonrpc-1.0": lambda i: _rpc("SendStreamingMessage",
                                      {"message": user_message("ask")}, "1.0"),
        "jsonrpc-0.3": lambda i: _rpc("message/stream", {"message": user_message_v03("ask")},
                                      None),
        "rest-1.0": lambda i: Call("POST", "/message:stream",
                                   {"message": user_message("ask")}, "1.0"),
    },
    "task.get": {
        "jsonrpc-1.0": lambda i: _rpc("GetTask", {"id": i.task}, "1.0"),
        "jsonrpc-0.3": lambda i: _rpc("tasks/get", {"id": i.task}, None),
        "rest-1.0": lambda i: Call("GET", f"/tasks/{i.task}", version="1.0"),
    },
    "task.list": {
        "jsonrpc-1.0": lambda i: _rpc("ListTasks", {}, "1.0"),
        "jsonrpc-0.3": lambda i: _rpc("tasks/list", {}, None),
        "rest-1.0": lambda i: Call("GET", "/tasks", version="1.0"),
    },
    "task.cancel": {
        "jsonrpc-1.0": lambda i: _rpc("CancelTask", {"id": i.task}, "1.0"),
        "jsonrpc-0.3": lambda i: _rpc("tasks/cancel", {"id": i.task}, None),
        "rest-1.0": lambda i: Call("POST", f"/tasks/{i.task}:cancel", {}, "1.0"),
    },
    "task.subscribe": {
        "jsonrpc-1.0": lambda i: _rpc("SubscribeToTask", {"id": i.task}, "1.0"),
        "jsonrpc-0.3": lambda i: _rpc("tasks/resubscribe", {"id": i.task}, None),
        "rest-1.0": lambda i: Call("GET", f"/tasks/{i.task}:subscribe", version="1.0"),
    },
    "push.create": {
        "jsonrpc-1.0": lambda i: _rpc("CreateTaskPushNotificationConfig", _push10(i), "1.0"),
        "jsonrpc-0.3": lambda i: _rpc("tasks/pushNotificationConfig/set", {
            "taskId": i.task, "pushNotificationConfig": {
                "id": i.config, "url": "https://example.com/hook"}}, None),
        "rest-1.0": lambda i: Call("POST", f"/tasks/{i.task}/pushNotificationConfigs",
                                   _push10(i), "1.0"),
    },
    "push.get": {
        "jsonrpc-1.0": lambda i: _rpc("GetTaskPushNotificationConfig",
                                      {"taskId": i.task, "id": i.config}, "1.0"),
        "jsonrpc-0.3": lambda i: _rpc("tasks/pushNotificationConfig/get", {
            "id": i.task, "pushNotificationConfigId": i.config}, None),
        "rest-1.0": lambda i: Call(
            "GET", f"/tasks/{i.task}/pushNotificationConfigs/{i.config}", version="1.0"),
    },
    "push.list": {
        "jsonrpc-1.0": lambda i: _rpc("ListTaskPushNotificationConfigs", {"taskId": i.task},
                                      "1.0"),
        "jsonrpc-0.3": lambda i: _rpc("tasks/pushNotificationConfig/list", {"id": i.task},
                                      None),
        "rest-1.0": lambda i: Call("GET", f"/tasks/{i.task}/pushNotificationConfigs",
                                   version="1.0"),
    },
    "push.delete": {
        "jsonrpc-1.0": lambda i: _rpc("DeleteTaskPushNotificationConfig",
                                      {"taskId": i.task, "id": i.config}, "1.0"),
        "jsonrpc-0.3": lambda i: _rpc("tasks/pushNotificationConfig/delete", {
            "id": i.task, "pushNotificationConfigId": i.config}, None),
        "rest-1.0": lambda i: Call(
            "DELETE", f"/tasks/{i.task}/pushNotificationConfigs/{i.config}", version="1.0"),
    },
    "card.extended": {
        "jsonrpc-1.0": lambda i: _rpc("GetExtendedAgentCard", {}, "1.0"),
        "jsonrpc-0.3": lambda i: _rpc("agent/getAuthenticatedExtendedCard", {}, None),
        "rest-1.0": lambda i: Call("GET", "/extendedAgentCard", version="1.0"),
    },
}

PERMISSION_OF = {"message.stream": "message.send"}


@attrs.frozen
class Outcome:
    status: int
    code: int | None
    """The JSON-RPC error code, or the google.rpc status's HTTP code; None: success."""
    reason: str | None
    text: str


async def perform(client: httpx.AsyncClient, call: Call, token: str | None,
                  extra: dict[str, str] | None = None) -> Outcome:
    """Send `call`; read a JSON answer whole, or an SSE answer's first event."""
    headers = {"Content-Type": "application/json", **(extra or {})}
    if call.version is not None:
        headers["A2A-Version"] = call.version
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = json.dumps(call.body) if call.body is not None else None
    async with client.stream(call.method, call.path, content=content, headers=headers) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            text = ""
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    text = line[5:].strip()
                    break
        else:
            text = (await r.aread()).decode()
    data = json.loads(text) if text else {}
    code = reason = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        code = err.get("code")
        details = err.get("details") or err.get("data") or []
        if isinstance(details, list) and details and isinstance(details[0], dict):
            reason = details[0].get("reason")
    return Outcome(r.status_code, code, reason, text)


def is_permission_refusal(out: Outcome, rpc: bool) -> bool:
    if rpc:
        return out.status == 200 and out.code == -32040
    return out.status == 403 and out.code == 403 and out.reason == "PERMISSION_DENIED"
