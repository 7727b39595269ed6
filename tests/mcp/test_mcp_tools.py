"""/mcp with the official `mcp` client against a real server on loopback.

Every tool, progress notifications of a streaming task, a task that asks for input,
a cancel that reaches the agent, routing, and each refusal (unknown task, bad
arguments, unknown tool). The tasks are the A2A service's: what a tool creates is
the task the JSON-RPC binding reads.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from mcp.shared.exceptions import MCPError

from actors.dispatch.types import WorkerInfo
from protocol.models import AgentSkill, ListTasksRequest, TaskState
from runtime.mcp.handlers import agent_for_skill
from runtime.mcp.tools import ToolArgumentError
from runtime.server import RunningServer
from tests.agents import Controls
from tests.conftest import Rpc, user_message, wait_state
from tests.mcp.helpers import open_mcp, text_of


async def test_lists_the_tools_with_their_schemas(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            tools = {t.name: t for t in (await mcp.list_tools()).tools}
    assert sorted(tools) == ["cancel_task", "get_task", "list_agents", "list_tasks",
                             "list_workers", "send_task"]
    assert tools["send_task"].input_schema["required"] == ["text"]
    assert {"agent", "skill", "capabilities", "priority", "task_id", "wait"} <= set(
        tools["send_task"].input_schema["properties"])
    assert tools["get_task"].annotations.read_only_hint is True
    assert tools["cancel_task"].annotations.destructive_hint is True


async def test_streaming_task_reports_progress_per_event(server: RunningServer,
                                                         rpc: Rpc) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            result = await mcp.call_tool("send_task", {"text": "chunks 3"},
                                         progress_callback=progress)
        a2a = await rpc.call("GetTask", {"id": result.structured_content["taskId"]})
    assert not result.is_error
    assert result.structured_content["state"] == "completed"
    assert result.structured_content["text"] == "c0c1c2"
    assert text_of(result).endswith("completed.\n\nc0c1c2")
    # one notification per status and artifact event, numbered, until the end
    assert [v for v, _, _ in seen] == [1, 2, 3, 4, 5]
    assert [m.split(":")[0] if m.startswith("artifact") else m for _, _, m in seen] == [
        "working", "artifact " + a2a["artifacts"][0]["artifactId"],
        "artifact " + a2a["artifacts"][0]["artifactId"],
        "artifact " + a2a["artifacts"][0]["artifactId"], "completed"]
    assert [m.rsplit(": ", 1)[1] for _, _, m in seen[1:4]] == ["c0", "c1", "c2"]
    # the same task, in the same store, as A2A clients see it
    assert a2a["status"]["state"] == "TASK_STATE_COMPLETED"
    assert result.structured_content["task"]["id"] == a2a["id"]


async def test_no_progress_without_a_progress_token(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            result = await mcp.call_tool("send_task", {"text": "echo hi there"})
    assert result.structured_content["state"] == "completed"
    assert "hi there" in text_of(result)


async def test_progress_over_the_2025_handshake_protocol(server: RunningServer) -> None:
    seen: list[str | None] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    with trio.fail_after(10):
        async with open_mcp(server.url, mode="legacy") as mcp:
            assert not mcp.protocol_version.startswith("2026")
            result = await mcp.call_tool("send_task", {"text": "chunks 2"},
                                         progress_callback=progress)
    assert result.structured_content["text"] == "c0c1"
    assert seen[0] == "working" and seen[-1] == "completed" and len(seen) == 4


async def test_input_required_is_reported_and_answered(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            asked = await mcp.call_tool("send_task", {"text": "ask"})
            task_id = asked.structured_content["taskId"]
            answered = await mcp.call_tool("send_task", {"text": "ask bob",
                                                         "task_id": task_id})
    assert not asked.is_error
    assert asked.structured_content["state"] == "input-required"
    assert text_of(asked) == (f"Task {task_id} is input-required. The agent needs input: what "
                              f"is your name? Answer with send_task, task_id={task_id!r}.")
    assert answered.structured_content["taskId"] == task_id
    assert answered.structured_content["state"] == "completed"
    assert answered.structured_content["text"] == "answer: ask bob"


async def test_cancel_reaches_the_running_agent(server: RunningServer,
                                                controls: Controls) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            sent = await mcp.call_tool("send_task", {"text": "wait", "wait": False})
            task_id = sent.structured_content["taskId"]
            assert sent.structured_content["state"] in ("submitted", "working")
            await controls.wait_started(task_id)
            canceled = await mcp.call_tool("cancel_task", {"task_id": task_id})
            again = await mcp.call_tool("cancel_task", {"task_id": task_id})
    assert canceled.structured_content["state"] == "canceled"
    assert controls.cancelled == [task_id]  # the agent's cancel scope was cancelled
    assert again.is_error
    assert again.structured_content["error"]["code"] == "TaskNotCancelable"
    assert again.structured_content["error"]["a2aCode"] == -32002


async def test_get_and_list_tasks(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            ids = [(await mcp.call_tool("send_task", {"text": f"echo {i}",
                                                      "context_id": "ctx-1"}))
                   .structured_content["taskId"] for i in range(3)]
            failed = await mcp.call_tool("send_task", {"text": "fail"})
            got = await mcp.call_tool("get_task", {"task_id": ids[0], "history_length": 0})
            page = await mcp.call_tool("list_tasks", {"context_id": "ctx-1", "page_size": 2})
            rest = await mcp.call_tool("list_tasks", {
                "context_id": "ctx-1", "page_size": 2,
                "page_token": page.structured_content["nextPageToken"]})
            only_failed = await mcp.call_tool("list_tasks", {"state": "failed"})
    assert got.structured_content["state"] == "completed"
    assert "history" not in got.structured_content["task"]
    # a failed task is what the call asked about, not an error of the call
    assert not failed.is_error and failed.structured_content["state"] == "failed"
    assert "scripted failure" in text_of(failed)
    listed = [t["taskId"] for t in page.structured_content["tasks"] +
              rest.structured_content["tasks"]]
    assert sorted(listed) == sorted(ids)
    assert page.structured_content["totalSize"] == 3
    assert text_of(page).startswith("2 of 3 task(s); next page: page_token=")
    assert rest.structured_content["nextPageToken"] == ""
    assert [t["taskId"] for t in only_failed.structured_content["tasks"]] == [
        failed.structured_content["taskId"]]


async def test_lists_connected_agents_and_workers(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            agents = await mcp.call_tool("list_agents", {})
            workers = await mcp.call_tool("list_workers")
    [agent] = agents.structured_content["agents"]
    assert agent["name"] == "scripted"
    assert [s["id"] for s in agent["skills"]] == ["scripted"]
    [worker] = workers.structured_content["workers"]
    assert worker["agents"] == ["scripted"] and worker["embedded"] is True
    assert worker["maxConcurrent"] == 256 and worker["running"] == 0
    assert agent["workers"] == [worker["workerId"]]
    assert text_of(workers).startswith("1 worker(s) connected\n")


async def test_routing_arguments_reach_the_dispatcher(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            # no connected worker has the capability: the task waits in the queue
            queued = await mcp.call_tool("send_task", {
                "text": "echo later", "capabilities": ["gpu"], "priority": 7, "wait": False})
            by_skill = await mcp.call_tool("send_task", {"text": "echo skill",
                                                         "skill": "scripted"})
            no_skill = await mcp.call_tool("send_task", {"text": "echo", "skill": "painting"})
    record = await server.store.get_task(queued.structured_content["taskId"])
    assert record is not None and record.state is TaskState.SUBMITTED
    assert (record.dispatch.route.priority, record.dispatch.route.capabilities) == (7, ("gpu",))
    assert by_skill.structured_content["state"] == "completed"
    skill_record = await server.store.get_task(by_skill.structured_content["taskId"])
    assert skill_record is not None and skill_record.dispatch.route.agent == "scripted"
    assert no_skill.is_error
    assert text_of(no_skill) == ("arguments.skill: no connected worker offers skill 'painting' "
                                 "(list_agents shows the skills on offer)")


def test_skill_resolution_names_the_candidates() -> None:
    def worker(wid: str, agents: set[str], skills: list[str]) -> tuple[WorkerInfo, int]:
        return (WorkerInfo(worker_id=wid, agents=frozenset(agents), skills=tuple(
            AgentSkill(id=s, name=s, description=s, tags=[]) for s in skills)), 0)

    workers = [worker("w1", {"coder"}, ["python"]), worker("w2", {"writer"}, ["python", "prose"]),
               worker("w3", {"a", "b"}, ["b", "maths"])]
    assert agent_for_skill("prose", None, workers) == "writer"
    assert agent_for_skill("b", None, workers) == "b"  # a skill named after its agent
    assert agent_for_skill("python", "coder", workers) == "coder"
    with pytest.raises(ToolArgumentError, match=r"offered by agents coder, writer: name one"):
        agent_for_skill("python", None, workers)
    with pytest.raises(ToolArgumentError, match=r"offered by agents a, b"):
        agent_for_skill("maths", None, workers)
    with pytest.raises(ToolArgumentError,
                       match=r"agent 'coder' offers no skill 'prose' \(agents that do: writer\)"):
        agent_for_skill("prose", "coder", workers)


async def test_unknown_task_is_a_tool_error(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            results = [await mcp.call_tool(name, args) for name, args in [
                ("get_task", {"task_id": "nope"}), ("cancel_task", {"task_id": "nope"}),
                ("send_task", {"text": "more", "task_id": "nope"})]]
    for result in results:
        assert result.is_error
        assert text_of(result) == "task 'nope' not found"
        assert result.structured_content["error"] == {
            "code": "TaskNotFound", "message": "task 'nope' not found", "a2aCode": -32001,
            "taskId": "nope"}


BAD_ARGUMENTS: list[tuple[str, dict[str, Any], str]] = [
    ("send_task", {}, "arguments.text: required"),
    ("send_task", {"text": "  "}, "arguments.text: must be a non-empty string, not '  '"),
    ("send_task", {"text": "x", "priority": "high"},
     "arguments.priority: must be an integer, not 'high'"),
    ("send_task", {"text": "x", "priority": True},
     "arguments.priority: must be an integer, not True"),
    ("send_task", {"text": "x", "capabilities": [1]},
     "arguments.capabilities: must be a list of non-empty strings, not [1]"),
    ("send_task", {"text": "x", "wait": "yes"}, "arguments.wait: must be true or false, not 'yes'"),
    ("send_task", {"text": "x", "agnet": "a"},
     "arguments.agnet: send_task takes no such argument (it takes: agent, capabilities, "
     "context_id, priority, skill, task_id, text, wait, worker)"),
    ("send_task", {"text": "x", "task_id": "t", "priority": 3},
     "arguments.priority: a continued task keeps the route it was sent with; leave out agent, "
     "skill, capabilities, worker, priority with task_id"),
    ("get_task", {"task_id": 5}, "arguments.task_id: must be a non-empty string, not 5"),
    ("get_task", {"task_id": "t", "history_length": -1},
     "arguments.history_length: must be an integer from 0, not -1"),
    ("list_tasks", {"state": "done"},
     "arguments.state: must be one of auth-required, canceled, completed, failed, "
     "input-required, rejected, submitted, working, not 'done'"),
    ("list_tasks", {"page_size": 0},
     "arguments.page_size: must be an integer from 1 to 100, not 0"),
    ("list_tasks", {"page_token": "garbage!"},
     "pageToken 'garbage!' is not a token this server issued"),
    ("list_workers", {"all": True}, "arguments.all: list_workers takes no such argument "
     "(it takes: none)"),
]


async def test_bad_arguments_get_a_precise_tool_error(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            for name, args, message in BAD_ARGUMENTS:
                result = await mcp.call_tool(name, args)
                assert result.is_error, (name, args)
                assert text_of(result) == message
                code = result.structured_content["error"]["code"]
                assert code == ("InvalidParams" if name == "list_tasks" and "page_token" in args
                                else "InvalidArguments")
    listed = await server.service.list_tasks(ListTasksRequest(), "")
    assert listed.tasks == []  # nothing was sent on


async def test_arguments_over_a_request_limit_are_refused(server: RunningServer) -> None:
    text = "x" * (server_limit := 1_048_577)
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            result = await mcp.call_tool("send_task", {"text": text})
    assert result.is_error
    assert text_of(result).startswith(f"arguments.text: a string of {server_limit} characters")
    assert result.structured_content["error"]["field"] == "arguments.text"


async def test_unknown_tool_is_a_protocol_error(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            with pytest.raises(MCPError) as caught:
                await mcp.call_tool("delete_everything", {})
    assert caught.value.code == -32602
    assert caught.value.message == (
        "unknown tool 'delete_everything'; the tools are: send_task, get_task, list_tasks, "
        "cancel_task, list_agents, list_workers")


async def test_waits_for_a_task_in_the_queue(server: RunningServer, controls: Controls) -> None:
    """wait=False returns the stored task at once; get_task then follows it."""
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            sent = await mcp.call_tool("send_task", {"text": "wait", "wait": False})
            task_id = sent.structured_content["taskId"]
            await wait_state(server, task_id, "TASK_STATE_WORKING")
            working = await mcp.call_tool("get_task", {"task_id": task_id})
            controls.gate.set()
            await wait_state(server, task_id, "TASK_STATE_COMPLETED")
            done = await mcp.call_tool("get_task", {"task_id": task_id})
    assert working.structured_content["state"] == "working"
    assert done.structured_content["state"] == "completed"
    assert "gate opened" in text_of(done)


async def test_auth_required_is_reported_as_a_pause(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            paused = await mcp.call_tool("send_task", {"text": "auth"})
    task_id = paused.structured_content["taskId"]
    assert paused.structured_content["state"] == "auth-required"
    assert text_of(paused) == (f"Task {task_id} is auth-required. The agent needs authentication:"
                               f" sign in first. Answer with send_task, task_id={task_id!r}.")


async def test_workers_count_the_tasks_they_run(server: RunningServer,
                                                controls: Controls) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            sent = await mcp.call_tool("send_task", {"text": "wait", "wait": False})
            await controls.wait_started(sent.structured_content["taskId"])
            busy = await mcp.call_tool("list_workers", {})
            controls.gate.set()
    [worker] = busy.structured_content["workers"]
    assert worker["running"] == 1
    assert text_of(busy).endswith("running 1 of 256")


async def test_a_bug_is_logged_and_never_shown(server: RunningServer,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    async def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(server.service, "get_task", broken)
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            with pytest.raises(MCPError) as caught:
                await mcp.call_tool("get_task", {"task_id": "t"})
            after = await mcp.call_tool("list_workers", {})  # the endpoint serves on
    assert (caught.value.code, caught.value.message) == (-32603, "internal server error")
    assert "secret detail" not in str(caught.value.error)
    [logged] = [r for r in caplog.records if r.message == "internal error in an MCP tool"]
    assert logged.tool == "get_task" and "secret detail" in logged.exc_text
    assert not after.is_error


async def test_a_task_sent_over_json_rpc_is_read_over_mcp(server: RunningServer,
                                                          rpc: Rpc) -> None:
    with trio.fail_after(10):
        sent = await rpc.call("SendMessage", {"message": user_message("echo from a2a")})
        async with open_mcp(server.url) as mcp:
            got = await mcp.call_tool("get_task", {"task_id": sent["task"]["id"]})
    assert got.structured_content["task"] == sent["task"]
    assert "from a2a" in got.structured_content["text"]
