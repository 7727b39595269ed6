"""A task paused for approval (`ask`) or by `ask_user` shows the client the question
and the pending tool call, never the agent's transcript (system prompt, tool outputs),
on any read: the answer, GetTask with history, ListTasks, streams, HTTP+JSON, 0.3. The
resumed run still carries on from the whole transcript."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import trio

from actors.approval import ApprovalPolicy
from protocol.agent_state import AGENT_STATE_KEY, restore_agent_state, split_agent_state
from protocol.models import (
    Message,
    Part,
    Role,
    StreamResponse,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from runtime.agents.llm import LlmAgentConfig, llm_agent
from runtime.providers.base import TextDelta, ToolCall, ToolCallEvent
from runtime.providers.echo import EchoProvider
from runtime.server import ServerConfig, open_server
from runtime.tools.registry import ToolRegistry
from tests.conftest import Rpc, user_message

PROMPT = "SYSTEM-PROMPT-MARKER keep this to yourself"
READ = ToolCallEvent(ToolCall("c1", "read_file", {"path": "secret.txt"}))
WRITE = ToolCallEvent(ToolCall("c2", "write_file", {"path": "out.txt", "content": "x"}))
ASK = ToolCallEvent(ToolCall("q1", "ask_user", {"question": "Which branch?"}))


async def _reads(c: httpx.AsyncClient, rpc: Rpc, task_id: str) -> list[str]:
    """Everything a client can read about the task, as text."""
    out = [json.dumps(await rpc.call("GetTask", {"id": task_id}))]
    out.append(json.dumps(await rpc.call("ListTasks", {"historyLength": 50})))
    out.append((await c.get(f"/tasks/{task_id}", headers={"A2A-Version": "1.0"})).text)
    out.append(json.dumps(await Rpc(c, None).call("tasks/get", {"id": task_id})))
    events = await rpc.stream("SubscribeToTask", {"id": task_id}, limit=1)
    out.extend(ev.data for ev in events)
    return out


async def test_paused_tasks_show_the_question_not_the_transcript(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    provider = EchoProvider(script=[[READ], [WRITE], [ASK], [TextDelta("done")]])
    config = LlmAgentConfig(provider=provider, model="echo", workspace_dir=tmp_path / "work",
                            tools=ToolRegistry(), approval=ApprovalPolicy.parse("ask"),
                            system_prompt=PROMPT)
    async with open_server(ServerConfig(port=0, store="memory", agent=llm_agent(config))) as srv, \
            httpx.AsyncClient(base_url=srv.url, timeout=10) as c:
        rpc = Rpc(c, "1.0")
        with trio.fail_after(30):
            first = await rpc.call("SendMessage", {"message": user_message("go")})
            paused = first["task"]
            assert paused["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
            # read_file ran (its error output is in the transcript); write_file waits for
            # approval: the question and the pending call show, nothing else
            parts = paused["status"]["message"]["parts"]
            assert "Approve this tool call? write_file" in parts[0]["text"]
            assert parts[1]["data"]["pendingToolCall"]["name"] == "write_file"
            for text in [json.dumps(first), *await _reads(c, rpc, paused["id"])]:
                assert PROMPT not in text and AGENT_STATE_KEY not in text
                assert "secret.txt" not in text.replace('"path": "secret.txt"', "")
            ctx = {"taskId": paused["id"], "contextId": paused["contextId"]}
            asked = (await rpc.call("SendMessage", {"message": user_message("deny: no",
                                                                            **ctx)}))["task"]
            assert asked["status"]["message"]["parts"][0]["text"] == "Which branch?"
            for text in await _reads(c, rpc, paused["id"]):
                assert PROMPT not in text and AGENT_STATE_KEY not in text
                assert "secret.txt" not in text  # the read's output stays in the transcript
            done = (await rpc.call("SendMessage", {"message": user_message("main",
                                                                           **ctx)}))["task"]
            assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    # every resumed run started from the whole transcript, system prompt first
    for request in provider.requests:
        assert request.messages[0].content == PROMPT
    last = provider.requests[-1].messages
    assert [m.tool_call_id for m in last if m.role == "tool"] == ["c1", "c2", "q1"]


def test_split_and_restore_are_inverse() -> None:
    state = {"transcript": [{"role": "system", "content": PROMPT}]}
    msg = Message(message_id="m1", role=Role.AGENT, parts=[
        Part(text="Approve?"), Part(data={AGENT_STATE_KEY: state, "pendingToolCall": {}})])
    event = StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id="t", context_id="c",
        status=TaskStatus(state=TaskState.INPUT_REQUIRED, message=msg)))
    (clean,), saved = split_agent_state([event])
    assert saved == {"messageId": "m1", "state": state}
    shown = clean.status_update.status.message  # type: ignore[union-attr]
    assert shown is not None and PROMPT not in shown.model_dump_json()
    assert shown.parts[1].data == {"pendingToolCall": {}}
    (back,) = restore_agent_state([shown], saved)
    assert back.parts[-1].data == {AGENT_STATE_KEY: state}
    only_state = msg.model_copy(update={"parts": [Part(data={AGENT_STATE_KEY: state})]})
    (ev,), _ = split_agent_state([event.model_copy(update={
        "status_update": event.status_update.model_copy(update={  # type: ignore[union-attr]
            "status": TaskStatus(state=TaskState.INPUT_REQUIRED, message=only_state)})})])
    assert ev.status_update.status.message.parts == [  # type: ignore[union-attr]
        Part(text="(waiting for input)")]
    untouched = [StreamResponse(message=msg)]
    assert split_agent_state(untouched) == (untouched, None)
