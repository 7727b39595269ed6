"""Tenants on the /mcp binding, on every tool that names a task or lists them: the same
principal name in another tenant gets TaskNotFound for get_task, cancel_task and a
send_task continuing the task, an empty list_tasks, and its own task for a send_task
into the other tenant's context; the owner still sees its task as it was."""

from __future__ import annotations

from typing import Any

import trio

from runtime.http.auth import TokenEntry
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.mcp.helpers import open_mcp

ENTRIES = {"key-acme": TokenEntry("alice", ("operator",), "acme"),
           "key-globex": TokenEntry("alice", ("operator",), "globex")}


async def tool(server: RunningServer, token: str, name: str, **arguments: Any) -> Any:
    async with open_mcp(server.url, token=token) as client:
        return await client.call_tool(name, arguments)


async def test_no_tool_reaches_another_tenants_task() -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), mcp=True,
                          tokens={t: e.principal for t, e in ENTRIES.items()},
                          worker_tokens={"w": "worker"},
                          security=SecurityConfig(token_entries=ENTRIES))
    async with open_server(config) as srv:
        with trio.fail_after(60):
            sent = await tool(srv, "key-acme", "send_task", text="echo secret")
            assert not sent.is_error, sent
            task = sent.structured_content["taskId"]
            context = sent.structured_content["contextId"]
            for name, args in (("get_task", {"task_id": task}),
                               ("cancel_task", {"task_id": task}),
                               ("send_task", {"text": "echo reply", "task_id": task})):
                out = await tool(srv, "key-globex", name, **args)
                assert out.is_error, (name, out)
                assert out.structured_content["error"]["code"] == "TaskNotFound", (name, out)
                assert "secret" not in str(out.structured_content)
            for args in ({}, {"context_id": context}):
                listed = await tool(srv, "key-globex", "list_tasks", **args)
                assert listed.structured_content["tasks"] == [], args
            mine = await tool(srv, "key-globex", "send_task", text="echo mine",
                              context_id=context)
            assert not mine.is_error and mine.structured_content["taskId"] != task
            assert "secret" not in str(mine.structured_content)
            got = await tool(srv, "key-acme", "get_task", task_id=task)
            assert got.structured_content["taskId"] == task
            assert got.structured_content["state"] == sent.structured_content["state"]
            listed = await tool(srv, "key-acme", "list_tasks")
            assert [t["taskId"] for t in listed.structured_content["tasks"]] == [task]
