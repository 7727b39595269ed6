"""Drive the official a2a-sdk (1.3, asyncio) client against a running server.

Run as a subprocess by `test_sdk_client.py` (the SDK is asyncio-only and the
tests are trio):

    python tests/interop/sdk_client_script.py URL MODE BINDING SCENARIO [ARG]

MODE is "1.0" (the client discovers the card and picks the 1.0 interface) or
"0.3" (the client sees the card as a 0.3-only client would: `supportedInterfaces`
is dropped, so the SDK derives the interfaces from the legacy top-level fields
`url`/`preferredTransport`/`additionalInterfaces`/`protocolVersion` and picks its
0.3 compat transport). BINDING is "JSONRPC" or "HTTP+JSON".

Stdout carries one JSON object per line: `{"progress": name, ...}` when the
script reaches a point the test may act on (e.g. a subscription is open), and a
last line `{"report": {...}}` with everything observed. Errors raised by the
SDK are recorded as `{"error": class name, "message": ...}` values rather than
ending the script, so the test can say which call failed and how.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import httpx
from a2a.client import ClientConfig, ClientFactory, create_client
from a2a.client.card_resolver import parse_agent_card
from a2a.compat.v0_3 import a2a_v0_3_pb2, conversions, proto_utils
from a2a.types import (
    AgentCard,
    AuthenticationInfo,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
)
from google.protobuf.json_format import ParseDict

STREAM_TIMEOUT = 15.0
TERMINAL = {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED",
            "TASK_STATE_REJECTED"}


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def err(exc: BaseException) -> dict[str, Any]:
    return {"error": type(exc).__name__, "message": str(exc)[:500]}


def parts_text(parts: Any) -> str:
    return "".join(p.text for p in parts if p.WhichOneof("content") == "text")


def task_summary(t: Task) -> dict[str, Any]:
    return {
        "id": t.id,
        "context_id": t.context_id,
        "state": TaskState.Name(t.status.state),
        "status_text": parts_text(t.status.message.parts),
        "artifact_text": "".join(parts_text(a.parts) for a in t.artifacts),
        "artifacts": len(t.artifacts),
        "history": len(t.history),
    }


def event_summary(ev: StreamResponse) -> dict[str, Any]:
    kind = ev.WhichOneof("payload")
    out: dict[str, Any] = {"kind": kind}
    if kind == "task":
        out.update(task_summary(ev.task))
    elif kind == "status_update":
        u = ev.status_update
        out.update(task_id=u.task_id, context_id=u.context_id,
                   state=TaskState.Name(u.status.state),
                   status_text=parts_text(u.status.message.parts))
    elif kind == "artifact_update":
        a = ev.artifact_update
        out.update(task_id=a.task_id, context_id=a.context_id,
                   artifact_id=a.artifact.artifact_id, text=parts_text(a.artifact.parts),
                   append=a.append, last_chunk=a.last_chunk)
    elif kind == "message":
        out.update(text=parts_text(ev.message.parts), role=Role.Name(ev.message.role))
    return out


def push_summary(c: TaskPushNotificationConfig) -> dict[str, Any]:
    return {"id": c.id, "task_id": c.task_id, "url": c.url, "token": c.token,
            "scheme": c.authentication.scheme, "credentials": c.authentication.credentials}


def message(text: str, **kw: Any) -> Message:
    return Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)],
                   **kw)


async def attempt(report: dict[str, Any], key: str, call: Callable[[], Awaitable[Any]],
                  render: Callable[[Any], Any] = lambda x: x) -> Any:
    """Run one SDK call; record its rendered result (or error) under `key`."""
    try:
        value = await call()
    except Exception as exc:  # noqa: BLE001 - the report names it
        report[key] = err(exc)
        return None
    report[key] = render(value)
    return value


async def collect(stream: AsyncIterator[StreamResponse], events: list[dict[str, Any]],
                  on_event: Callable[[StreamResponse], Awaitable[None]] | None = None) -> None:
    """Read a stream to its end (bounded), appending summaries; errors go in as items."""
    async def run() -> None:
        async for ev in stream:
            events.append(event_summary(ev))
            if on_event is not None:
                await on_event(ev)

    try:
        await asyncio.wait_for(run(), STREAM_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - the report names it
        events.append(err(exc))


class Session:
    def __init__(self, url: str, mode: str, binding: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.mode = mode
        self.binding = binding
        self.http = http
        self.card: AgentCard | None = None

    async def resolve_card(self) -> AgentCard:
        if self.card is None:
            r = await self.http.get(self.url + "/.well-known/agent-card.json")
            r.raise_for_status()
            data = r.json()
            if self.mode == "0.3":
                data.pop("supportedInterfaces", None)  # what a 0.3-only client reads
            self.card = parse_agent_card(data)
        return self.card

    async def client(self, *, streaming: bool) -> Any:
        config = ClientConfig(streaming=streaming, supported_protocol_bindings=[self.binding],
                              httpx_client=self.http)
        if self.mode == "1.0":
            return await create_client(self.url, client_config=config)
        return ClientFactory(config).create(await self.resolve_card())


def transport_name(client: Any) -> str:
    return type(getattr(client, "_transport", None)).__name__


async def wait_terminal(client: Any, task_id: str, report: dict[str, Any], key: str) -> None:
    deadline = time.monotonic() + STREAM_TIMEOUT
    while True:
        task = await attempt(report, key, lambda: client.get_task(GetTaskRequest(id=task_id)),
                             task_summary)
        if task is None or TaskState.Name(task.status.state) in TERMINAL \
                or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


# --- scenarios --------------------------------------------------------------------


async def scenario_card(s: Session, report: dict[str, Any], arg: str) -> None:
    client = await s.client(streaming=True)
    card = client._card  # noqa: SLF001 - the card the SDK resolved and uses
    report["transport"] = transport_name(client)
    report["transport_url"] = getattr(client._transport, "url", None)  # noqa: SLF001
    report["card"] = {
        "name": card.name,
        "description": card.description,
        "version": card.version,
        "streaming": card.capabilities.streaming,
        "push_notifications": card.capabilities.push_notifications,
        "extended_agent_card": card.capabilities.extended_agent_card,
        "interfaces": [[i.protocol_binding, i.protocol_version, i.url]
                       for i in card.supported_interfaces],
        "skills": [sk.id for sk in card.skills],
        "input_modes": list(card.default_input_modes),
        "output_modes": list(card.default_output_modes),
    }
    await client.close()


async def scenario_blocking(s: Session, report: dict[str, Any], arg: str) -> None:
    client = await s.client(streaming=False)
    report["transport"] = transport_name(client)
    events: list[dict[str, Any]] = []
    await collect(client.send_message(SendMessageRequest(message=message(arg or "hello"))),
                  events)
    report["events"] = events
    await client.close()


async def scenario_streaming(s: Session, report: dict[str, Any], arg: str) -> None:
    """Streaming send, then get_task and list_tasks on the result."""
    client = await s.client(streaming=True)
    report["transport"] = transport_name(client)
    events: list[dict[str, Any]] = []
    await collect(client.send_message(SendMessageRequest(message=message(arg or "hello"))),
                  events)
    report["events"] = events
    task_id = events[0].get("id") if events else None
    if task_id:
        await attempt(report, "get", lambda: client.get_task(GetTaskRequest(id=task_id)),
                      task_summary)
        await attempt(report, "get_history0",
                      lambda: client.get_task(GetTaskRequest(id=task_id, history_length=0)),
                      task_summary)
        await attempt(report, "get_unknown",
                      lambda: client.get_task(GetTaskRequest(id=str(uuid.uuid4()))),
                      task_summary)
        await attempt(
            report, "list",
            lambda: client.list_tasks(ListTasksRequest(page_size=10, include_artifacts=True)),
            lambda r: {"tasks": [task_summary(t) for t in r.tasks],
                       "next_page_token": r.next_page_token, "total_size": r.total_size})
    await client.close()


async def scenario_cancel(s: Session, report: dict[str, Any], arg: str) -> None:
    """Streaming send of a blocking task; cancel it once the task event arrived."""
    client = await s.client(streaming=True)
    report["transport"] = transport_name(client)
    events: list[dict[str, Any]] = []

    async def on_event(ev: StreamResponse) -> None:
        if ev.WhichOneof("payload") == "task":
            await attempt(report, "cancel",
                          lambda: client.cancel_task(CancelTaskRequest(id=ev.task.id)),
                          task_summary)

    await collect(client.send_message(SendMessageRequest(message=message("wait"))), events,
                  on_event)
    report["events"] = events
    task_id = events[0].get("id") if events else None
    if task_id:
        await attempt(report, "get", lambda: client.get_task(GetTaskRequest(id=task_id)),
                      task_summary)
        await attempt(report, "cancel_again",
                      lambda: client.cancel_task(CancelTaskRequest(id=task_id)), task_summary)
    await client.close()


async def scenario_subscribe(s: Session, report: dict[str, Any], arg: str) -> None:
    """Non-blocking send of a "wait" task, then subscribe; the test opens the gate."""
    sender = await s.client(streaming=False)
    client = await s.client(streaming=True)
    report["transport"] = transport_name(client)
    sent: list[dict[str, Any]] = []
    req = SendMessageRequest(message=message("wait"),
                             configuration=SendMessageConfiguration(return_immediately=True))
    await collect(sender.send_message(req), sent)
    report["sent"] = sent
    task_id = sent[0].get("id") if sent else None
    if not task_id:
        return
    events: list[dict[str, Any]] = []

    async def on_event(ev: StreamResponse) -> None:
        if len(events) == 1:
            emit({"progress": "subscribed", "task_id": task_id})

    await collect(client.subscribe(SubscribeToTaskRequest(id=task_id)), events, on_event)
    report["events"] = events
    again: list[dict[str, Any]] = []
    await collect(client.subscribe(SubscribeToTaskRequest(id=task_id)), again)
    report["subscribe_terminal"] = again
    await attempt(report, "get", lambda: client.get_task(GetTaskRequest(id=task_id)),
                  task_summary)
    await sender.close()
    await client.close()


async def rest03_list_push(s: Session, task_id: str) -> ListTaskPushNotificationConfigsResponse:
    r = await s.http.get(f"{s.url}/v1/tasks/{task_id}/pushNotificationConfigs",
                         headers={"A2A-Version": "0.3"})
    r.raise_for_status()
    proto = ParseDict(r.json(), a2a_v0_3_pb2.ListTaskPushNotificationConfigResponse(),
                      ignore_unknown_fields=True)
    return ListTaskPushNotificationConfigsResponse(configs=[
        conversions.to_core_task_push_notification_config(
            proto_utils.FromProto.task_push_notification_config(c))
        for c in proto.configs])


async def rest03_delete_push(s: Session, task_id: str, config_id: str) -> None:
    r = await s.http.delete(f"{s.url}/v1/tasks/{task_id}/pushNotificationConfigs/{config_id}",
                            headers={"A2A-Version": "0.3"})
    r.raise_for_status()


async def scenario_push(s: Session, report: dict[str, Any], hook: str) -> None:
    """Push config CRUD on a waiting task; the test opens the gate and checks delivery."""
    client = await s.client(streaming=False)
    report["transport"] = transport_name(client)
    sent: list[dict[str, Any]] = []
    on_send = TaskPushNotificationConfig(url=hook + "/send", token="tok-send")
    req = SendMessageRequest(
        message=message("wait"),
        configuration=SendMessageConfiguration(return_immediately=True,
                                               task_push_notification_config=on_send))
    await collect(client.send_message(req), sent)
    report["sent"] = sent
    task_id = sent[0].get("id") if sent else None
    if not task_id:
        return

    def cfg(cid: str, **kw: Any) -> TaskPushNotificationConfig:
        return TaskPushNotificationConfig(task_id=task_id, id=cid, url=f"{hook}/{cid}", **kw)

    def listing(r: Any) -> list[dict[str, Any]]:
        return sorted((push_summary(c) for c in r.configs), key=lambda c: c["id"])

    auth = AuthenticationInfo(scheme="Bearer", credentials="secret-b")
    await attempt(report, "create_b", lambda: client.create_task_push_notification_config(
        cfg("cfg-b", token="tok-b", authentication=auth)), push_summary)
    await attempt(report, "get_b", lambda: client.get_task_push_notification_config(
        GetTaskPushNotificationConfigRequest(task_id=task_id, id="cfg-b")), push_summary)
    await attempt(report, "create_c", lambda: client.create_task_push_notification_config(
        cfg("cfg-c", token="tok-c")), push_summary)
    ops: dict[str, Callable[[], Awaitable[Any]]] = {
        "list": lambda: client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task_id)),
        "delete_c": lambda: client.delete_task_push_notification_config(
            DeleteTaskPushNotificationConfigRequest(task_id=task_id, id="cfg-c")),
    }
    if s.mode == "0.3" and s.binding == "HTTP+JSON":
        # The SDK's CompatRestTransport raises NotImplementedError for these two; record
        # that, then do them as the 0.3 REST binding defines them, reading the answer
        # with the SDK's own 0.3 proto and conversions.
        await attempt(report, "sdk_list", ops["list"], lambda _: "ok")
        await attempt(report, "sdk_delete", ops["delete_c"], lambda _: "ok")
        ops = {"list": partial(rest03_list_push, s, task_id),
               "delete_c": partial(rest03_delete_push, s, task_id, "cfg-c")}
    await attempt(report, "list_3", ops["list"], listing)
    await attempt(report, "delete_c", ops["delete_c"], lambda _: "ok")
    await attempt(report, "list_2", ops["list"], listing)
    await attempt(report, "get_deleted", lambda: client.get_task_push_notification_config(
        GetTaskPushNotificationConfigRequest(task_id=task_id, id="cfg-c")), push_summary)
    emit({"progress": "push_ready", "task_id": task_id})
    await wait_terminal(client, task_id, report, "final")
    await client.close()


SCENARIOS = {
    "card": scenario_card,
    "blocking": scenario_blocking,
    "streaming": scenario_streaming,
    "cancel": scenario_cancel,
    "subscribe": scenario_subscribe,
    "push": scenario_push,
}


async def main(url: str, mode: str, binding: str, scenario: str, arg: str) -> None:
    report: dict[str, Any] = {"mode": mode, "binding": binding, "scenario": scenario}
    async with httpx.AsyncClient(timeout=STREAM_TIMEOUT) as http:
        try:
            await SCENARIOS[scenario](Session(url.rstrip("/"), mode, binding, http), report, arg)
        except Exception as exc:  # noqa: BLE001 - the report names it
            report["fatal"] = err(exc)
    emit({"report": report})


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    asyncio.run(main(*sys.argv[1:5], sys.argv[5] if len(sys.argv) == 6 else ""))
