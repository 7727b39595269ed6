"""The LLM agent loop through the real server: a scripted provider, real tools in a
real workspace, each approval policy, questions and approvals by a second message."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.approval import ApprovalPolicy
from runtime.agents.llm import STATE_KEY, LlmAgentConfig, llm_agent
from runtime.providers.base import TextDelta, ToolCall, ToolCallEvent
from runtime.providers.echo import EchoProvider
from runtime.server import ServerConfig, open_server
from runtime.tools.registry import ToolRegistry
from runtime.tools.workspace import WorkspaceCleanup
from tests.conftest import Rpc, user_message

READ = ToolCallEvent(ToolCall("c1", "read_file", {"path": "notes.txt"}))
WRITE = ToolCallEvent(ToolCall("c2", "write_file", {"path": "out.txt", "content": "written"}))


@asynccontextmanager
async def serving(provider: EchoProvider, tmp_path: Path, policy: str,
                  **kw: Any) -> AsyncIterator[Rpc]:
    base = tmp_path / "work"
    config = LlmAgentConfig(provider=provider, model="echo", workspace_dir=base,
                            tools=ToolRegistry(), approval=ApprovalPolicy.parse(policy), **kw)
    async with open_server(ServerConfig(port=0, store="memory", agent=llm_agent(config))) as srv, \
            httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
        yield Rpc(client, "1.0")



async def send(rpc: Rpc, text: str, **kw: Any) -> dict[str, Any]:
    return (await rpc.call("SendMessage", {"message": user_message(text, **kw)}))["task"]


def tool_phases(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for ev in events:
        meta = (ev.get("statusUpdate") or {}).get("metadata") or {}
        call = meta.get("trio-a2a/toolCall")
        if call:
            out.append((call["name"], call["phase"]))
    return out


def answer(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for a in task.get("artifacts", []) for p in a["parts"]
                   if a.get("name") == "answer")


async def run_policy(tmp_path: Path, policy: str,
                     **kw: Any) -> tuple[dict[str, Any], EchoProvider]:
    provider = EchoProvider(script=[[READ], [WRITE], [TextDelta("all done")]])
    async with serving(provider, tmp_path, policy, **kw) as rpc:
        task = await send(rpc, "copy the notes")
    return task, provider


def tool_result(provider: EchoProvider, turn: int, call_id: str) -> tuple[str, bool]:
    (msg,) = [m for m in provider.requests[turn].messages if m.tool_call_id == call_id]
    return msg.content, msg.is_error


async def test_safe_refuses_the_write_and_tells_the_model(tmp_path: Path) -> None:
    with trio.fail_after(20):
        task, provider = await run_policy(tmp_path, "safe")
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert answer(task) == "all done"
    read, read_error = tool_result(provider, 1, "c1")
    assert read_error  # notes.txt does not exist: the model sees the tool's error
    assert "notes.txt" in read
    write, write_error = tool_result(provider, 2, "c2")
    assert write_error and "refused" in write and "'safe'" in write
    assert not list((tmp_path / "work").rglob("out.txt"))


async def test_all_runs_the_write(tmp_path: Path) -> None:
    with trio.fail_after(20):
        task, provider = await run_policy(tmp_path, "all", cleanup=WorkspaceCleanup.NEVER)
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    (written,) = list((tmp_path / "work").rglob("out.txt"))
    assert written.read_text() == "written"
    assert tool_result(provider, 2, "c2")[1] is False


async def test_none_refuses_every_call(tmp_path: Path) -> None:
    with trio.fail_after(20):
        task, provider = await run_policy(tmp_path, "none")
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert tool_result(provider, 1, "c1")[1] and "'none'" in tool_result(provider, 1, "c1")[0]
    assert not list((tmp_path / "work").rglob("out.txt"))


async def test_ask_pauses_input_required_and_a_second_message_approves(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    provider = EchoProvider(script=[[WRITE], [TextDelta("wrote it")]])
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "ask", cleanup=WorkspaceCleanup.NEVER) as rpc:
            paused = await send(rpc, "write the file")
            assert paused["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
            parts = paused["status"]["message"]["parts"]
            assert "Approve this tool call? write_file" in parts[0]["text"]
            assert parts[1]["data"]["pendingToolCall"]["name"] == "write_file"
            assert STATE_KEY not in parts[1]["data"]  # the transcript stays on the server
            assert not list((tmp_path / "work").rglob("out.txt"))  # nothing ran yet
            unclear = await send(rpc, "hmm, maybe", taskId=paused["id"],
                                 contextId=paused["contextId"])
            assert unclear["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
            done = await send(rpc, "approve", taskId=paused["id"],
                              contextId=paused["contextId"])
            events = await rpc.call("GetTask", {"id": paused["id"]})
    assert done["status"]["state"] == "TASK_STATE_COMPLETED", done["status"]
    assert answer(done) == "wrote it"
    (written,) = list((tmp_path / "work").rglob("out.txt"))
    assert written.read_text() == "written"
    assert events["status"]["state"] == "TASK_STATE_COMPLETED"
    # The resumed run carried on from the saved transcript: the model's second turn
    # saw its own call and the tool's result.
    last = provider.requests[-1].messages
    assert [m.role for m in last][-2:] == ["assistant", "tool"]
    assert last[-1].content.startswith("wrote") or "out.txt" in last[-1].content
    # The completion report carries provider, model, tool calls and tokens.
    released = [r for r in caplog.records if r.getMessage() == "task released over the link"
                and getattr(r, "outcome", None) == "completed"]
    assert released and released[-1].provider == "echo"  # type: ignore[attr-defined]
    assert released[-1].model == "echo"  # type: ignore[attr-defined]
    assert released[-1].tool_calls_count == 1  # type: ignore[attr-defined]
    assert released[-1].tokens_output > 0  # type: ignore[attr-defined]


async def test_ask_deny_tells_the_model(tmp_path: Path) -> None:
    provider = EchoProvider(script=[[WRITE], [TextDelta("fine, not writing")]])
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "ask") as rpc:
            paused = await send(rpc, "write the file")
            done = await send(rpc, "deny: wrong file", taskId=paused["id"],
                              contextId=paused["contextId"])
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    content, error = tool_result(provider, 1, "c2")
    assert error and "denied by the user: wrong file" in content
    assert not list((tmp_path / "work").rglob("out.txt"))


async def test_the_model_asks_the_user_a_question(tmp_path: Path) -> None:
    ask = ToolCallEvent(ToolCall("q1", "ask_user", {"question": "Which branch?"}))
    provider = EchoProvider(script=[[ask], [TextDelta("using main")]])
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "safe") as rpc:
            paused = await send(rpc, "deploy")
            assert paused["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
            assert paused["status"]["message"]["parts"][0]["text"] == "Which branch?"
            done = await send(rpc, "main", taskId=paused["id"], contextId=paused["contextId"])
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert tool_result(provider, 1, "q1") == ("main", False)


async def test_a_step_limit_fails_the_task_and_keeps_the_output(tmp_path: Path) -> None:
    loop = [[TextDelta("thinking "), ToolCallEvent(ToolCall(f"c{i}", "list_dir", {"path": "."}))]
            for i in range(5)]
    provider = EchoProvider(script=loop)
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "safe", max_steps=3) as rpc:
            task = await send(rpc, "loop forever")
    assert task["status"]["state"] == "TASK_STATE_FAILED"
    assert "stopped after 3 model turns" in task["status"]["message"]["parts"][0]["text"]
    assert answer(task) == "thinking " * 3
    assert len(provider.requests) == 3


async def test_written_files_come_back_as_file_artifacts_when_asked(tmp_path: Path) -> None:
    provider = EchoProvider(script=[[WRITE], [TextDelta("done")]])
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "all") as rpc:
            task = await send(rpc, "write", metadata={"trio-a2a/returnFiles": True})
    files = [a for a in task["artifacts"] if a.get("name") == "out.txt"]
    assert len(files) == 1
    part = files[0]["parts"][0]
    assert part["filename"] == "out.txt" and part["mediaType"] == "text/plain"
    assert part["raw"] == "d3JpdHRlbg=="  # base64 of "written"


def gone(pid: int) -> bool:
    """No such process, or only its zombie (nothing runs any more)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_cancel_during_run_shell_kills_it_and_ends_the_task_canceled(
        tmp_path: Path) -> None:
    shell = ToolCallEvent(ToolCall("s1", "run_shell", {"command": "echo $$ > pid.txt; "
                                                                  "exec sleep 60"}))
    provider = EchoProvider(script=[[shell], [TextDelta("never")]])
    with trio.fail_after(30):
        async with serving(provider, tmp_path, "all") as rpc:
            task = (await rpc.call("SendMessage", {
                "message": user_message("sleep"),
                "configuration": {"returnImmediately": True}}))["task"]
            while not list((tmp_path / "work").rglob("pid.txt")):  # noqa: ASYNC110
                await trio.sleep(0.05)
            (pid_file,) = list((tmp_path / "work").rglob("pid.txt"))
            while not pid_file.read_text().strip():  # noqa: ASYNC110
                await trio.sleep(0.05)
            pid = int(pid_file.read_text())
            assert not gone(pid)
            canceled = await rpc.call("CancelTask", {"id": task["id"]})
            while not gone(pid):  # noqa: ASYNC110
                await trio.sleep(0.05)
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    assert len(provider.requests) == 1  # the model never heard back


async def test_a_new_task_in_the_same_context_sees_the_earlier_conversation(
        tmp_path: Path) -> None:
    provider = EchoProvider(script=[[TextDelta("Paris is the capital.")],
                                    [TextDelta("About 2.1 million.")]])
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "safe") as rpc:
            first = await send(rpc, "What is the capital of France?")
            second = await send(rpc, "And its population?", contextId=first["contextId"])
            other = await send(rpc, "Unrelated question")
    assert second["status"]["state"] == "TASK_STATE_COMPLETED"
    seen = [(m.role, m.content) for m in provider.requests[1].messages[1:]]
    assert seen == [("user", "What is the capital of France?"),
                    ("assistant", "Paris is the capital."),
                    ("user", "And its population?")]
    # another context starts afresh
    assert [m.content for m in provider.requests[2].messages[1:]] == ["Unrelated question"]
    assert other["contextId"] != first["contextId"]


async def test_provider_failures_fail_the_task_clearly_and_keep_partial_output(
        tmp_path: Path) -> None:
    from runtime.providers.base import ProviderAuthError, ProviderStreamBroken

    provider = EchoProvider(script=[
        [ProviderAuthError("provider 'echo' refused the credentials (HTTP 401)", status=401)],
        [TextDelta("half an ans"),
         ProviderStreamBroken("provider 'echo': the stream broke", partial_text="half an ans")],
    ])
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "safe") as rpc:
            refused = await send(rpc, "hello")
            broken = await send(rpc, "hello again")
    assert refused["status"]["state"] == "TASK_STATE_FAILED"
    assert "refused the credentials (HTTP 401)" in \
        refused["status"]["message"]["parts"][0]["text"]
    assert broken["status"]["state"] == "TASK_STATE_FAILED"
    assert "the stream broke" in broken["status"]["message"]["parts"][0]["text"]
    assert answer(broken) == "half an ans"  # what the user saw stays


async def test_an_unknown_tool_is_an_error_result_the_model_can_read(tmp_path: Path) -> None:
    """A model that calls a tool that does not exist gets told which tools there are;
    the task goes on (it failed with "'tuple' object is not callable" before)."""
    bogus = ToolCallEvent(ToolCall("c9", "launch_rockets", {}))
    provider = EchoProvider(script=[[bogus], [TextDelta("fine, no rockets")]])
    with trio.fail_after(20):
        async with serving(provider, tmp_path, "all") as rpc:
            task = await send(rpc, "do something odd")
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert answer(task) == "fine, no rockets"
    result, is_error = tool_result(provider, 1, "c9")
    assert is_error and "unknown tool 'launch_rockets'" in result and "read_file" in result
