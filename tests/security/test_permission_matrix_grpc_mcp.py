"""Every role x every operation of the gRPC binding (grpcio with the official SDK's
generated stubs) and of /mcp (the official `mcp` client): allowed when the role's
permissions allow it, else PERMISSION_DENIED with the A2A error details (gRPC) or a
`PermissionDenied` tool error (MCP), naming the permission and nothing of the task."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
import trio
from a2a.types import a2a_pb2, a2a_pb2_grpc

from protocol.permissions import MCP_OPERATIONS, OPERATIONS, ROLES, RoleTable
from runtime.grpc.codec import service_methods
from runtime.http.auth import TokenEntry
from runtime.mcp.tools import TOOLS
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.grpc.test_grpc_server import error_info
from tests.mcp.helpers import open_mcp, text_of

ENTRIES = {f"tok-{role}": TokenEntry("pat", (role,)) for role in ROLES}
HOOK = "https://example.com/hook"


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), keepalive=60,
                          grpc_port=0, tokens={t: e.principal for t, e in ENTRIES.items()},
                          security=SecurityConfig(token_entries=ENTRIES))
    async with open_server(config) as srv:
        yield srv


def _message() -> a2a_pb2.Message:
    return a2a_pb2.Message(message_id=str(uuid.uuid4()), role=a2a_pb2.ROLE_USER,
                           parts=[a2a_pb2.Part(text="ask")])


def _config(task: str, config: str) -> a2a_pb2.TaskPushNotificationConfig:
    return a2a_pb2.TaskPushNotificationConfig(task_id=task, id=config, url=HOOK)


# rpc -> (task id, config id) -> request
GRPC_REQUESTS: dict[str, Callable[[str, str], Any]] = {
    "SendMessage": lambda t, c: a2a_pb2.SendMessageRequest(message=_message()),
    "SendStreamingMessage": lambda t, c: a2a_pb2.SendMessageRequest(message=_message()),
    "GetTask": lambda t, c: a2a_pb2.GetTaskRequest(id=t),
    "ListTasks": lambda t, c: a2a_pb2.ListTasksRequest(),
    "CancelTask": lambda t, c: a2a_pb2.CancelTaskRequest(id=t),
    "SubscribeToTask": lambda t, c: a2a_pb2.SubscribeToTaskRequest(id=t),
    "CreateTaskPushNotificationConfig": _config,
    "GetTaskPushNotificationConfig": lambda t, c: a2a_pb2.GetTaskPushNotificationConfigRequest(
        task_id=t, id=c),
    "ListTaskPushNotificationConfigs":
        lambda t, c: a2a_pb2.ListTaskPushNotificationConfigsRequest(task_id=t),
    "DeleteTaskPushNotificationConfig":
        lambda t, c: a2a_pb2.DeleteTaskPushNotificationConfigRequest(task_id=t, id=c),
    "GetExtendedAgentCard": lambda t, c: a2a_pb2.GetExtendedAgentCardRequest(),
}


def grpc_call(target: str, rpc: str, request: Any, token: str) -> Any:
    """One call as `token`; a stream's first message (then the call is cancelled);
    the RpcError when it fails."""
    with grpc.insecure_channel(target) as channel:
        method = getattr(a2a_pb2_grpc.A2AServiceStub(channel), rpc)
        metadata = (("authorization", f"Bearer {token}"),)
        try:
            out = method(request, metadata=metadata, timeout=10)
            if rpc in ("SendStreamingMessage", "SubscribeToTask"):
                first = next(out)
                out.cancel()
                return first
            return out
        except grpc.RpcError as exc:
            return exc


async def _grpc(server: RunningServer, rpc: str, request: Any, token: str) -> Any:
    return await trio.to_thread.run_sync(functools.partial(
        grpc_call, f"127.0.0.1:{server.grpc.port}", rpc, request, token))


async def _new_task(server: RunningServer) -> str:
    out = await _grpc(server, "SendMessage", GRPC_REQUESTS["SendMessage"]("", ""),
                      "tok-admin")
    return out.task.id


async def test_every_role_every_grpc_rpc(server: RunningServer) -> None:
    table = RoleTable()
    assert set(GRPC_REQUESTS) == set(service_methods())
    with trio.fail_after(120):
        shared = await _new_task(server)
        for n, rpc in enumerate(GRPC_REQUESTS):
            permission = OPERATIONS[rpc]
            for role in ROLES:
                allowed = table.allows([role], permission)
                task, config = shared, f"cfg-{n}-{role}"
                if allowed and rpc == "CancelTask":
                    task = await _new_task(server)
                if rpc in ("GetTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig"):
                    created = await _grpc(server, "CreateTaskPushNotificationConfig",
                                          _config(task, config), "tok-admin")
                    assert not isinstance(created, grpc.RpcError), created
                out = await _grpc(server, rpc, GRPC_REQUESTS[rpc](task, config), f"tok-{role}")
                where = f"{role} {rpc}: {out}"
                if allowed:
                    assert not isinstance(out, grpc.RpcError), where
                    continue
                assert isinstance(out, grpc.RpcError), where
                assert out.code() == grpc.StatusCode.PERMISSION_DENIED, where
                assert permission in out.details() and task not in out.details(), where
                info = error_info(out)
                assert info.reason == "PERMISSION_DENIED" and info.domain == "a2a-protocol.org"
                assert dict(info.metadata) == {"permission": permission}


# tool -> (task id) -> arguments
MCP_ARGUMENTS: dict[str, Callable[[str], dict[str, Any]]] = {
    "send_task": lambda t: {"text": "ask", "wait": False},
    "get_task": lambda t: {"task_id": t},
    "list_tasks": lambda t: {},
    "cancel_task": lambda t: {"task_id": t},
    "list_agents": lambda t: {},
    "list_workers": lambda t: {},
}


async def test_every_role_every_mcp_tool(server: RunningServer) -> None:
    table = RoleTable()
    assert set(MCP_ARGUMENTS) == {t.name for t in TOOLS} == set(MCP_OPERATIONS)
    with trio.fail_after(120):
        shared = await _new_task(server)
        for role in ROLES:
            async with open_mcp(server.url, token=f"tok-{role}") as client:
                assert {t.name for t in (await client.list_tools()).tools} == set(MCP_ARGUMENTS)
                for tool, arguments in MCP_ARGUMENTS.items():
                    permission = MCP_OPERATIONS[tool]
                    allowed = table.allows([role], permission)
                    task = shared
                    if allowed and tool == "cancel_task":
                        task = await _new_task(server)
                    out = await client.call_tool(tool, arguments(task))
                    where = f"{role} {tool}: {out}"
                    if allowed:
                        assert not out.is_error, where
                        continue
                    assert out.is_error, where
                    error = out.structured_content["error"]
                    assert error["code"] == "PermissionDenied", where
                    assert error["a2aCode"] == -32040 and error["permission"] == permission
                    assert permission in text_of(out) and task not in text_of(out), where
