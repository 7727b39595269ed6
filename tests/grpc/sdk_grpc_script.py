"""Drive the official a2a-sdk (1.3, asyncio) client over its gRPC transport.

Run as a subprocess by `test_grpc_sdk.py` (the SDK is asyncio-only, the tests trio):

    python tests/grpc/sdk_grpc_script.py URL SCENARIO [TOKEN]

The client reads the agent card at URL and picks its `GRPC` interface. TOKEN, when
given, is sent as `authorization: Bearer TOKEN` metadata on every call. Stdout is
one JSON object per line: `{"progress": name, ...}` at points the test acts on,
and a last `{"report": {...}}`. SDK errors are recorded as `{"error": class name,
"message": ...}` values, so the test says which call failed and how.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import sys
from pathlib import Path
from typing import Any

import grpc
from a2a.client import ClientCallContext, ClientConfig, create_client
from a2a.types import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    SendMessageConfiguration,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.interop.sdk_client_script import (  # noqa: E402
    attempt,
    emit,
    err,
    event_summary,
    message,
    push_summary,
    task_summary,
    transport_name,
)


class Session:
    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        headers = {"authorization": f"Bearer {token}"} if token else None
        self.ctx = ClientCallContext(service_parameters=headers, timeout=15)

    async def client(self, *, streaming: bool) -> Any:
        config = ClientConfig(streaming=streaming, supported_protocol_bindings=["GRPC"],
                              grpc_channel_factory=grpc.aio.insecure_channel)
        return await create_client(self.url, client_config=config)

    def ctx_with(self, **metadata: str) -> ClientCallContext:
        params = dict(self.ctx.service_parameters or {})
        params.update(metadata)
        return ClientCallContext(service_parameters=params, timeout=15)


async def events_of(stream: Any, out: list[dict[str, Any]]) -> None:
    try:
        async for ev in stream:
            out.append(event_summary(ev))
    except Exception as exc:  # noqa: BLE001 - the report names it
        out.append(err(exc))


async def send(client: Any, s: Session, text: str, **config: Any) -> list[dict[str, Any]]:
    req = SendMessageRequest(message=message(text),
                             configuration=SendMessageConfiguration(**config) if config else None)
    out: list[dict[str, Any]] = []
    await events_of(client.send_message(req, context=s.ctx), out)
    return out


async def scenario_methods(s: Session, report: dict[str, Any]) -> None:
    """Every unary method, streaming, push config CRUD and the error codes."""
    blocking = await s.client(streaming=False)
    streaming = await s.client(streaming=True)
    report["transport"] = transport_name(blocking)
    card = blocking._card  # noqa: SLF001 - the card the SDK resolved and uses
    report["interfaces"] = [[i.protocol_binding, i.protocol_version, i.url]
                            for i in card.supported_interfaces]
    report["send"] = await send(blocking, s, "echo hello grpc")
    report["reply"] = await send(blocking, s, "reply hi")
    report["stream"] = await send(streaming, s, "chunks 3")
    done_id = report["send"][0].get("id")
    await attempt(report, "get", lambda: blocking.get_task(
        GetTaskRequest(id=done_id, history_length=1), context=s.ctx), task_summary)
    await attempt(report, "list", lambda: blocking.list_tasks(
        ListTasksRequest(page_size=2, include_artifacts=True), context=s.ctx),
        lambda r: {"ids": [t.id for t in r.tasks], "total": r.total_size,
                   "next": bool(r.next_page_token), "page_size": r.page_size})
    await attempt(report, "get_unknown", lambda: blocking.get_task(
        GetTaskRequest(id="no-such-task"), context=s.ctx))
    await attempt(report, "cancel_done", lambda: blocking.cancel_task(
        CancelTaskRequest(id=done_id), context=s.ctx))
    terminal: list[dict[str, Any]] = []
    await events_of(streaming.subscribe(SubscribeToTaskRequest(id=done_id), context=s.ctx),
                    terminal)
    report["subscribe_terminal"] = terminal
    await attempt(report, "extended_card", lambda: blocking.get_extended_agent_card(
        GetExtendedAgentCardRequest(), context=s.ctx), lambda c: {"name": c.name})

    # push config CRUD on a task that waits for the gate
    waiting = await send(blocking, s, "wait", return_immediately=True)
    wait_id = waiting[0]["id"]
    hook = "http://127.0.0.1:9/hook"

    def cfg(cid: str) -> TaskPushNotificationConfig:
        return TaskPushNotificationConfig(task_id=wait_id, id=cid, url=f"{hook}/{cid}",
                                          token=f"tok-{cid}")

    def listing(r: Any) -> list[dict[str, Any]]:
        return sorted((push_summary(c) for c in r.configs), key=lambda c: c["id"])

    for cid in ("a", "b"):
        await attempt(report, f"push_create_{cid}", lambda cid=cid: blocking
                      .create_task_push_notification_config(cfg(cid), context=s.ctx),
                      push_summary)
    await attempt(report, "push_get", lambda: blocking.get_task_push_notification_config(
        GetTaskPushNotificationConfigRequest(task_id=wait_id, id="a"), context=s.ctx),
        push_summary)
    await attempt(report, "push_list", lambda: blocking.list_task_push_notification_configs(
        ListTaskPushNotificationConfigsRequest(task_id=wait_id), context=s.ctx), listing)
    for key in ("push_delete", "push_delete_again"):
        await attempt(report, key, lambda: blocking.delete_task_push_notification_config(
            DeleteTaskPushNotificationConfigRequest(task_id=wait_id, id="a"), context=s.ctx),
            lambda _: "ok")
    await attempt(report, "push_list_after", lambda: blocking
                  .list_task_push_notification_configs(
                      ListTaskPushNotificationConfigsRequest(task_id=wait_id), context=s.ctx),
                  listing)
    await attempt(report, "push_get_unknown_task", lambda: blocking
                  .get_task_push_notification_config(GetTaskPushNotificationConfigRequest(
                      task_id="no-such-task", id="a"), context=s.ctx))
    await attempt(report, "cancel", lambda: blocking.cancel_task(
        CancelTaskRequest(id=wait_id), context=s.ctx), task_summary)
    await blocking.close()
    await streaming.close()


async def scenario_subscribe(s: Session, report: dict[str, Any]) -> None:
    """Subscribe to a running task, then replay its log with `last-event-id`."""
    client = await s.client(streaming=True)
    blocking = await s.client(streaming=False)
    started = await send(blocking, s, "gated 2", return_immediately=True)
    task_id = started[0]["id"]
    events: list[dict[str, Any]] = []
    stream = client.subscribe(SubscribeToTaskRequest(id=task_id), context=s.ctx)
    try:
        async for ev in stream:
            events.append(event_summary(ev))
            if len(events) == 1:
                emit({"progress": "subscribed", "task_id": task_id})
    except Exception as exc:  # noqa: BLE001
        events.append(err(exc))
    report["events"] = events
    replay: list[dict[str, Any]] = []
    await events_of(client.subscribe(SubscribeToTaskRequest(id=task_id),
                                     context=s.ctx_with(**{"last-event-id": "1"})), replay)
    report["replay"] = replay
    bad: list[dict[str, Any]] = []
    await events_of(client.subscribe(SubscribeToTaskRequest(id=task_id),
                                     context=s.ctx_with(**{"last-event-id": "x"})), bad)
    report["replay_bad_id"] = bad
    await client.close()
    await blocking.close()


async def scenario_cancel_stream(s: Session, report: dict[str, Any]) -> None:
    """Stop reading a stream and drop it: the server's call scope must be cancelled,
    while the task runs on."""
    client = await s.client(streaming=True)
    blocking = await s.client(streaming=False)
    req = SendMessageRequest(message=message("wait"))
    stream = client.send_message(req, context=s.ctx)
    first = await stream.__anext__()
    report["first"] = event_summary(first)
    await stream.aclose()
    del stream
    gc.collect()  # the SDK leaves the call to grpc.aio, which cancels it when collected
    await client.close()
    emit({"progress": "cancelled", "task_id": first.task.id})
    await asyncio.sleep(0.2)
    await attempt(report, "after", lambda: blocking.get_task(
        GetTaskRequest(id=first.task.id), context=s.ctx), task_summary)
    await blocking.close()


async def scenario_auth(s: Session, report: dict[str, Any]) -> None:
    """With auth on: no token, a wrong token, another principal's task, push refused."""
    client = await s.client(streaming=False)
    report["transport"] = transport_name(client)
    own = await send(client, s, "echo mine")
    report["own"] = own
    anonymous = Session(s.url, None)
    wrong = Session(s.url, "not-a-token")
    other = Session(s.url, sys.argv[4])
    report["no_token"] = await send(client, anonymous, "echo x")
    report["wrong_token"] = await send(client, wrong, "echo x")
    await attempt(report, "other_get", lambda: client.get_task(
        GetTaskRequest(id=own[0]["id"]), context=other.ctx))
    await attempt(report, "other_list", lambda: client.list_tasks(
        ListTasksRequest(), context=other.ctx), lambda r: len(r.tasks))
    await attempt(report, "extended_card", lambda: client.get_extended_agent_card(
        GetExtendedAgentCardRequest(), context=s.ctx), lambda c: {"name": c.name})
    await attempt(report, "push_off", lambda: client.create_task_push_notification_config(
        TaskPushNotificationConfig(task_id=own[0]["id"], url="http://127.0.0.1:9/h"),
        context=s.ctx))
    await client.close()


async def scenario_roles(s: Session, report: dict[str, Any]) -> None:
    """TOKEN may send (operator); argv[4], of the same principal, only reads (observer)."""
    client = await s.client(streaming=False)
    own = await send(client, s, "echo mine")
    report["own"] = own
    reader = Session(s.url, sys.argv[4])
    report["reader_send"] = await send(client, reader, "echo x")
    await attempt(report, "reader_get", lambda: client.get_task(
        GetTaskRequest(id=own[0]["id"]), context=reader.ctx), task_summary)
    await attempt(report, "reader_cancel", lambda: client.cancel_task(
        CancelTaskRequest(id=own[0]["id"]), context=reader.ctx), task_summary)
    await client.close()


async def scenario_signed(s: Session, report: dict[str, Any]) -> None:
    """Calls signed by our grpc.aio interceptor (key `TRIO_A2A_TEST_SIGNING_KEY`,
    KEY_ID:SECRET) in the SDK's channel, streaming and not; then unsigned ones."""
    from runtime.client.grpc_signing import aio_signing_interceptors
    from runtime.client.signing import parse_hmac_key

    key = parse_hmac_key(os.environ["TRIO_A2A_TEST_SIGNING_KEY"])
    for streaming in (False, True):
        config = ClientConfig(streaming=streaming, supported_protocol_bindings=["GRPC"],
                              grpc_channel_factory=lambda url: grpc.aio.insecure_channel(
                                  url, interceptors=aio_signing_interceptors(key)))
        client = await create_client(s.url, client_config=config)
        report["transport"] = transport_name(client)
        name = "signed_stream" if streaming else "signed"
        report[name] = await send(client, s, f"echo {name}")
        await attempt(report, f"{name}_list", functools.partial(
            client.list_tasks, ListTasksRequest(), context=s.ctx), lambda r: len(r.tasks))
        await client.close()
    plain = await s.client(streaming=False)
    report["unsigned"] = await send(plain, s, "echo x")
    await plain.close()


SCENARIOS = {"methods": scenario_methods, "subscribe": scenario_subscribe,
             "cancel_stream": scenario_cancel_stream, "auth": scenario_auth,
             "roles": scenario_roles, "signed": scenario_signed}


async def main(url: str, scenario: str, token: str | None) -> None:
    report: dict[str, Any] = {}
    try:
        await SCENARIOS[scenario](Session(url, token), report)
    except Exception as exc:  # noqa: BLE001
        report["fatal"] = err(exc)
    emit({"report": report})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
