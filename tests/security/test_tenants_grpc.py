"""Tenants on the gRPC binding, on every rpc: the same principal name in another tenant
finds nothing of a task, its push configs or its context (NOT_FOUND, or an empty
list), cannot change them, and is told nothing about them; the owner still sees all.

Each client call runs in a thread (`trio.to_thread`), so the test's trio loop keeps
serving while it blocks.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import trio
from a2a.types import a2a_pb2, a2a_pb2_grpc

from runtime.http.auth import TokenEntry
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent

ENTRIES = {"key-acme": TokenEntry("alice", ("operator",), "acme"),
           "key-globex": TokenEntry("alice", ("operator",), "globex")}
URL = "https://example.com/hook"


def message(text: str, **kw: Any) -> a2a_pb2.Message:
    return a2a_pb2.Message(message_id=str(uuid.uuid4()), role=a2a_pb2.ROLE_USER,
                           parts=[a2a_pb2.Part(text=text)], **kw)


def call(server: RunningServer, method: str, req: Any, token: str) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc.port}") as channel:
        stub = a2a_pb2_grpc.A2AServiceStub(channel)
        try:
            out = getattr(stub, method)(req, metadata=(("authorization", f"Bearer {token}"),),
                                        timeout=10)
            return list(out) if method in ("SendStreamingMessage", "SubscribeToTask") else out
        except grpc.RpcError as exc:
            return exc


async def as_(server: RunningServer, token: str, method: str, req: Any) -> Any:
    return await trio.to_thread.run_sync(call, server, method, req, token)


async def test_no_rpc_reaches_another_tenants_task() -> None:
    config = ServerConfig(port=0, grpc_port=0, store="memory", agent=scripted_agent(),
                          tokens={t: e.principal for t, e in ENTRIES.items()},
                          worker_tokens={"w": "worker"},
                          security=SecurityConfig(token_entries=ENTRIES))
    async with open_server(config) as srv:
        with trio.fail_after(60):
            sent = await as_(srv, "key-acme", "SendMessage",
                             a2a_pb2.SendMessageRequest(message=message("echo secret")))
            task, context = sent.task.id, sent.task.context_id
            made = await as_(srv, "key-acme", "CreateTaskPushNotificationConfig",
                             a2a_pb2.TaskPushNotificationConfig(task_id=task, id="c1", url=URL))
            assert made.id == "c1", made
            pc = {"task_id": task, "id": "c1"}
            calls = {
                "GetTask": a2a_pb2.GetTaskRequest(id=task),
                "CancelTask": a2a_pb2.CancelTaskRequest(id=task),
                "SubscribeToTask": a2a_pb2.SubscribeToTaskRequest(id=task),
                "GetTaskPushNotificationConfig": a2a_pb2.GetTaskPushNotificationConfigRequest(
                    **pc),
                "ListTaskPushNotificationConfigs":
                    a2a_pb2.ListTaskPushNotificationConfigsRequest(task_id=task),
                "CreateTaskPushNotificationConfig": a2a_pb2.TaskPushNotificationConfig(
                    task_id=task, id="c2", url=URL),
                "SendMessage": a2a_pb2.SendMessageRequest(
                    message=message("echo reply", task_id=task)),
                "SendStreamingMessage": a2a_pb2.SendMessageRequest(
                    message=message("echo reply", task_id=task)),
            }
            for method, req in calls.items():
                out = await as_(srv, "key-globex", method, req)
                assert isinstance(out, grpc.RpcError), (method, out)
                assert out.code() == grpc.StatusCode.NOT_FOUND, (method, out.details())
                assert "secret" not in out.details() and "acme" not in out.details()
            # a delete is idempotent: it answers, and deletes nothing of acme's
            await as_(srv, "key-globex", "DeleteTaskPushNotificationConfig",
                      a2a_pb2.DeleteTaskPushNotificationConfigRequest(**pc))
            # lists are empty, whatever the filter
            for req in (a2a_pb2.ListTasksRequest(),
                        a2a_pb2.ListTasksRequest(context_id=context)):
                assert (await as_(srv, "key-globex", "ListTasks", req)).tasks == []
            # a message into acme's context makes globex's own task, not a reply in it
            other = await as_(srv, "key-globex", "SendMessage", a2a_pb2.SendMessageRequest(
                message=message("echo mine", context_id=context)))
            assert not isinstance(other, grpc.RpcError), other
            assert other.task.id != task
            history = " ".join(p.text for m in other.task.history for p in m.parts)
            assert "secret" not in history and "mine" in history
            # the owner still has it all
            got = await as_(srv, "key-acme", "GetTask", a2a_pb2.GetTaskRequest(id=task))
            assert got.id == task and got.status.state == a2a_pb2.TASK_STATE_COMPLETED
            configs = await as_(srv, "key-acme", "ListTaskPushNotificationConfigs",
                                a2a_pb2.ListTaskPushNotificationConfigsRequest(task_id=task))
            assert [c.id for c in configs.configs] == ["c1"]
            listed = await as_(srv, "key-acme", "ListTasks", a2a_pb2.ListTasksRequest())
            assert [t.id for t in listed.tasks] == [task]
