"""The LLM agent: a model in a loop with tools, under an approval policy.

One task run: the system prompt, the task's conversation and the tool
definitions go to the provider; the model's text streams out as chunks of one
text/plain artifact; each tool call it makes is put to the approval policy
(actors.approval) and, if approved, run in the task's workspace
(runtime.tools), its result going back to the model; this repeats until the
model answers without calling a tool (the task completes) or `max_steps` turns
were taken (the task fails, keeping what was streamed).

Tool calls are reported as working status updates whose metadata carry
``trio-a2a/toolCall`` (phase ``start`` with the arguments, then ``complete``
with the output); each turn's tokens as ``trio-a2a/usage`` (provider, model,
input, output). The worker's StatusReporter sums them into the completion
report.

Pausing: a call the policy sends to the user (`ask`), or the built-in
``ask_user`` tool (the model's own question), ends the run input-required. The
status message carries the prompt as text and a data part with the loop's state
under ``trio-a2a/agentState`` (the transcript and the pending call); the server
takes that state out before anything is stored or shown to the client, and gives it
back only to the worker of the next run (`protocol.agent_state`). The
client's next message to the task resumes it: an approval reply for a pending
call ("approve" / "deny: reason", or a data part ``{"approve": true}``), the
answer for a question.

Cleanup: when the task ends (completed, failed, canceled; not when it pauses, whose
next run needs the files), its workspace is removed, or kept as `cleanup` says
(`WorkspaceCleanup`: keep a failed or canceled task's, to look at; keep all).
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.approval import (
    PENDING_TOOL_CALL_KEY,
    ApprovalPolicy,
    Approved,
    AskUser,
    NotUnderstood,
    Refused,
    ToolCallRequest,
    UserApproved,
    parse_approval_reply,
)
from protocol.agent_state import AGENT_STATE_KEY
from protocol.models import AgentSkill, Part, Role, TaskState
from runtime.observe.instruments import count_tokens, tool_call
from runtime.providers.base import (
    ChatMessage,
    Provider,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
    Usage,
)
from runtime.tools.base import Tool
from runtime.tools.registry import ToolRegistry
from runtime.tools.workspace import Workspace, WorkspaceCleanup, WorkspaceError

__all__ = ["ASK_USER", "STATE_KEY", "LlmAgentConfig", "llm_agent"]

log = logging.getLogger(__name__)

STATE_KEY = AGENT_STATE_KEY
TOOL_CALL_KEY = "trio-a2a/toolCall"
USAGE_KEY = "trio-a2a/usage"
RETURN_FILES_KEY = "trio-a2a/returnFiles"
ASK_USER = ToolSpec(
    name="ask_user",
    description="Ask the user a question when you cannot go on without their answer. "
                "The task pauses until they reply; their reply is this tool's result.",
    parameters={"type": "object", "properties": {"question": {"type": "string"}},
                "required": ["question"]})
DEFAULT_SYSTEM_PROMPT = (
    "You are a careful software agent working in a workspace directory. Use the tools to "
    "read and change files and to run commands; paths are relative to the workspace. "
    "When you are done, answer with a short summary of what you did.")
_OUTPUT_SHOWN = 4000
_WRITERS = frozenset({"write_file", "edit_file"})


ProviderSource = Callable[[], Awaitable[Provider]]
"""Gets the provider when a run starts (e.g. `ProviderRegistry.get`, which resolves
its API key then: a key that cannot be had fails that task, not the worker)."""


@attrs.frozen
class LlmAgentConfig:
    provider: Provider | ProviderSource
    model: str
    workspace_dir: Path
    """Each task works in its own directory under this one."""
    tools: ToolRegistry = attrs.field(factory=ToolRegistry)
    approval: ApprovalPolicy = ApprovalPolicy.SAFE
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_steps: int = 20
    """Model turns per run before the task fails."""
    max_tokens: int | None = None
    name: str = "llm"
    cleanup: WorkspaceCleanup = WorkspaceCleanup.ALWAYS
    """What becomes of a task's workspace when the task ends."""


def llm_agent(config: LlmAgentConfig) -> AgentSpec:
    """An `AgentSpec` running the loop of the module docstring with `config`."""

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        source = config.provider
        provider = source if hasattr(source, "stream_chat") else await source()  # type: ignore[operator]
        task = _Run(config, provider, ctx, emit)  # type: ignore[arg-type]
        outcome = "failed"  # an exception fails the task
        try:
            outcome = await task.run()
        except trio.Cancelled:
            outcome = "canceled"
            raise
        finally:
            if outcome != "paused" and config.cleanup.removes(outcome):
                task.ws.discard()

    label = getattr(config.provider, "name", "llm")
    return AgentSpec(
        name=config.name, run=run,
        description=f"An LLM agent ({label}/{config.model}) with tools under "
                    f"the '{config.approval.value}' approval policy.",
        skills=(AgentSkill(id="code", name="Coding agent",
                           description="Reads, writes and runs code in a workspace.",
                           tags=["llm", "tools"]),),
        context_history=True)


class _Pause(Exception):
    """The run stops input-required (already emitted)."""


class _Run:
    def __init__(self, config: LlmAgentConfig, provider: Provider, ctx: TaskContext,
                 emit: Emitter) -> None:
        self.cfg = config
        self.provider = provider
        self.ctx = ctx
        self.emit = emit
        self.ws = Workspace.for_task(config.workspace_dir, ctx.task_id)
        self.transcript: list[ChatMessage] = []
        self.answer_id: str | None = None
        self.written: list[str] = []
        self.totals = {"input": 0, "output": 0, "toolCalls": 0}
        """This task's tokens and tool calls over all its runs so far."""

    @property
    def tools(self) -> list[ToolSpec]:
        return [*(ToolSpec(t.name, t.description, t.parameters) for t in self.cfg.tools),
                ASK_USER]

    async def run(self) -> str:
        """Run until the task ends or pauses: "completed", "failed" or "paused"."""
        state = _saved_state(self.ctx)
        await self.emit.working()
        try:
            if state is None:
                self.transcript = [ChatMessage("system", self.cfg.system_prompt),
                                   *_conversation(self.ctx)]
                remaining: list[ToolCall] = []
            else:
                self.transcript = [_message_from(m) for m in state.get("transcript", [])]
                remaining = [_call_from(c) for c in state.get("remaining", [])]
                await self._carry_over(state.get("totals"))
                await self._resume(state)
            await self._run_calls(remaining)
            for _ in range(self.cfg.max_steps):
                calls = await self._turn()
                if not calls:
                    await self._return_files()
                    await self.emit.complete()
                    return "completed"
                await self._run_calls(calls)
        except _Pause:
            return "paused"
        await self.emit.fail(f"stopped after {self.cfg.max_steps} model turns without a "
                             "final answer")
        return "failed"

    async def _turn(self) -> list[ToolCall]:
        """One model turn, streamed; the calls it made (already in the transcript)."""
        text: list[str] = []
        calls: list[ToolCall] = []
        stream = self.provider.stream_chat(model=self.cfg.model, messages=self.transcript,
                                               tools=self.tools, max_tokens=self.cfg.max_tokens)
        async with contextlib.aclosing(stream) as events:  # type: ignore[type-var]
            async for event in events:
                if isinstance(event, TextDelta) and event.text:
                    text.append(event.text)
                    self.answer_id = await self.emit.artifact_text(
                        event.text, artifact_id=self.answer_id, name="answer",
                        append=self.answer_id is not None)
                elif isinstance(event, ToolCallEvent):
                    calls.append(event.call)
                elif isinstance(event, Usage):
                    self.totals["input"] += event.input_tokens
                    self.totals["output"] += event.output_tokens
                    count_tokens(self.provider.name, self.cfg.model, event.input_tokens,
                                 event.output_tokens)
                    await self.emit.status(TaskState.WORKING, metadata={USAGE_KEY: {
                        "provider": self.provider.name, "model": self.cfg.model,
                        "input": event.input_tokens, "output": event.output_tokens}})
        self.transcript.append(ChatMessage("assistant", "".join(text), tuple(calls)))
        return calls

    async def _run_calls(self, calls: Sequence[ToolCall]) -> None:
        for i, call in enumerate(calls):
            if call.name == ASK_USER.name:
                question = str(call.arguments.get("question") or "").strip()
                if not question:
                    self._result(call, "ask_user needs a non-empty 'question'", error=True)
                    continue
                await self._pause(question, {"question": {"toolCallId": call.id}},
                                  calls[i + 1:])
            tool = self.cfg.tools.get(call.name)
            if tool is None:
                self._result(call, f"unknown tool {call.name!r}; the tools are: "
                                   f"{', '.join(self.cfg.tools.names)}", error=True)
                continue
            request = ToolCallRequest(call.id, call.name, call.arguments,
                                      read_only=tool.read_only)
            decision = self.cfg.approval.decide(request)
            if isinstance(decision, Refused):
                with tool_call(call.name) as outcome:
                    outcome[0] = "refused"
                await self._report(call, "refused", decision.message, error=True)
                self._result(call, decision.message, error=True)
            elif isinstance(decision, AskUser):
                await self._pause(decision.prompt, {"pending": request.to_data(),
                                                    **decision.data}, calls[i + 1:])
            else:
                assert isinstance(decision, Approved)
                await self._execute(tool, call)

    async def _execute(self, tool: Tool, call: ToolCall) -> None:
        self.totals["toolCalls"] += 1
        await self._report(call, "start")
        invalid = call.invalid_arguments
        with tool_call(call.name) as outcome:  # its span and its count
            if invalid is not None:
                outcome[0] = "invalid_arguments"
                output, error = f"the arguments were not a JSON object: {invalid[:200]}", True
            else:
                result = await tool.run(call.arguments, self.ws)
                output, error = result.output, result.is_error
                outcome[0] = "error" if error else "ok"
            if not error and call.name in _WRITERS and "path" in call.arguments:
                self.written.append(str(call.arguments["path"]))
        await self._report(call, "complete", output, error=error)
        self._result(call, output, error=error)

    def _result(self, call: ToolCall, output: str, *, error: bool = False) -> None:
        self.transcript.append(ChatMessage("tool", output, tool_call_id=call.id,
                                           is_error=error))

    async def _report(self, call: ToolCall, phase: str, output: str | None = None, *,
                      error: bool = False) -> None:
        info: dict[str, Any] = {"id": call.id, "name": call.name, "phase": phase}
        if phase == "start":
            info["arguments"] = dict(call.arguments)
        else:
            info["output"] = (output or "")[:_OUTPUT_SHOWN]
            info["isError"] = error
        await self.emit.status(TaskState.WORKING, metadata={TOOL_CALL_KEY: info})

    async def _pause(self, prompt: str, pending: dict[str, Any],
                     remaining: Sequence[ToolCall]) -> None:
        state = {"transcript": [_message_json(m) for m in self.transcript],
                 "remaining": [_call_json(c) for c in remaining], "totals": self.totals,
                 **pending}
        await self.emit.input_required([Part(text=prompt),
                                        Part(data={STATE_KEY: state,
                                                   **({PENDING_TOOL_CALL_KEY: pending[
                                                       PENDING_TOOL_CALL_KEY]}
                                                      if PENDING_TOOL_CALL_KEY in pending
                                                      else {})})])
        raise _Pause

    async def _carry_over(self, totals: Any) -> None:
        """Report the earlier runs' tokens and tool calls again, so that the attempt
        that completes the task reports the whole task's (a usage event marked
        ``carriedOver``)."""
        if not isinstance(totals, dict):
            return
        for key in self.totals:
            value = totals.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                self.totals[key] = value
        if any(self.totals.values()):
            await self.emit.status(TaskState.WORKING, metadata={USAGE_KEY: {
                "provider": self.provider.name, "model": self.cfg.model,
                "input": self.totals["input"], "output": self.totals["output"],
                "toolCalls": self.totals["toolCalls"], "carriedOver": True}})

    async def _resume(self, state: dict[str, Any]) -> None:
        """Apply the user's reply to what the paused run was waiting for."""
        if "question" in state:
            call_id = str(state["question"].get("toolCallId", ""))
            self.transcript.append(ChatMessage("tool", self.ctx.text or "(no answer)",
                                               tool_call_id=call_id))
            return
        request = ToolCallRequest.from_data(state["pending"])
        reply = parse_approval_reply(self.ctx.message, request)
        call = ToolCall(request.call_id, request.name, dict(request.arguments))
        if isinstance(reply, NotUnderstood):
            await self._pause(f"{reply.message}\n{request.summary()}",
                              {k: v for k, v in state.items()
                               if k not in ("transcript", "remaining")},
                              [_call_from(c) for c in state.get("remaining", [])])
        if isinstance(reply, UserApproved):
            tool = self.cfg.tools.get(request.name)
            if tool is None:
                self._result(call, f"unknown tool {request.name!r}", error=True)
            else:
                await self._execute(tool, call)
            return
        reason = getattr(reply, "reason", "")
        message = f"{request.name} was denied by the user" + (f": {reason}" if reason else "")
        await self._report(call, "refused", message, error=True)
        self._result(call, message, error=True)

    async def _return_files(self) -> None:
        """Files the run wrote, as file artifacts, when the request (or its message) asked
    for them with ``trio-a2a/returnFiles: true``."""
        asked = self.ctx.metadata.get(RETURN_FILES_KEY) or (
            self.ctx.message.metadata or {}).get(RETURN_FILES_KEY)
        if not asked:
            return
        for shown in dict.fromkeys(self.written):
            try:
                content = self.ws.resolve(shown).read_bytes()
            except (OSError, WorkspaceError) as exc:
                log.info("written file not returned", extra={"path": shown, "error": str(exc)})
                continue
            media = mimetypes.guess_type(shown)[0] or "application/octet-stream"
            await self.emit.artifact_file(content, filename=shown, media_type=media,
                                          name=shown, last_chunk=True)


def _saved_state(ctx: TaskContext) -> dict[str, Any] | None:
    """The state a paused run left in its input-required message, if the message
    this run serves answers it (no user message came between the two)."""
    messages = list(ctx.history)
    status = ctx.task.status.message if ctx.task is not None else None
    if status is not None and (not messages or messages[-1].message_id != status.message_id):
        messages.append(status)
    for message in reversed(messages):
        if message.role == Role.USER:
            return None
        for part in message.parts:
            if isinstance(part.data, dict) and isinstance(part.data.get(STATE_KEY), dict):
                return part.data[STATE_KEY]
    return None


def _conversation(ctx: TaskContext) -> list[ChatMessage]:
    out = []
    for message in [*ctx.context, *ctx.history, ctx.message]:
        text = "\n".join(p.text for p in message.parts if p.text is not None)
        if text:
            out.append(ChatMessage("user" if message.role == Role.USER else "assistant", text))
    return out


def _call_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": dict(call.arguments)}


def _call_from(data: dict[str, Any]) -> ToolCall:
    return ToolCall(str(data["id"]), str(data["name"]), dict(data.get("arguments") or {}))


def _message_json(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["toolCalls"] = [_call_json(c) for c in m.tool_calls]
    if m.tool_call_id is not None:
        out["toolCallId"] = m.tool_call_id
    if m.is_error:
        out["isError"] = True
    return out


def _message_from(data: dict[str, Any]) -> ChatMessage:
    return ChatMessage(data["role"], str(data.get("content", "")),
                       tuple(_call_from(c) for c in data.get("toolCalls", [])),
                       data.get("toolCallId"), bool(data.get("isError", False)))
