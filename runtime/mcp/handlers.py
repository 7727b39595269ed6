"""The MCP tools at work: each call checked, sent to the A2A service, rendered.

This is an adapter at the edge, like the JSON-RPC and HTTP+JSON bindings: it
builds the same canonical requests they build (routing in the message metadata
the JSON-RPC binding accepts: `trio-a2a/priority`, `/capabilities`, `/worker`,
`/agent`) and calls the same `A2AService` with the caller's principal. There is
no task model or store path of its own.

`send_task` follows the task's events as a stream does, and when the MCP client
asked for progress (a `progressToken`) reports one progress notification per
status or artifact event, until the task ends or pauses for input, and one per
keep-alive interval (`--keepalive`) without events, so that a host which resets
its timeout on progress does not give up on a quiet, long task. A client
that cancels the call (or goes away) stops only the following: the task runs
on, as it does when an A2A stream disconnects.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import mcp_types as types

from actors.a2a_service import A2AService
from actors.dispatcher import WorkerInfo
from protocol.errors import A2AError
from protocol.limits import Limits
from protocol.models import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
)
from protocol.permissions import MCP_OPERATIONS
from runtime.mcp.render import (
    agents_result,
    error_result,
    message_text,
    part_text,
    task_result,
    tasks_result,
    workers_result,
)
from runtime.mcp.tools import (
    TOOL_NAMES,
    CancelArgs,
    GetArgs,
    ListArgs,
    SendArgs,
    ToolArgumentError,
    parse_arguments,
    state_name,
)

__all__ = ["McpTools", "Progress", "UnknownTool", "agent_for_skill"]

log = logging.getLogger(__name__)

Workers = Callable[[], Sequence[tuple[WorkerInfo, int]]]
"""The connected workers and how many tasks each runs (`Dispatcher.connected_workers`)."""

PROGRESS_TEXT = 200
"""Characters of an artifact chunk or status message quoted in a progress message."""


class Progress(Protocol):
    """Reports progress of the call (a no-op unless the client sent a progressToken)."""

    def __call__(self, progress: float, total: float | None = None,
                 message: str | None = None) -> Awaitable[None]: ...


class UnknownTool(LookupError):
    """A call names a tool this server does not have."""


def agent_for_skill(skill: str, agent: str | None,
                    workers: Sequence[tuple[WorkerInfo, int]]) -> str:
    """The agent to route a task for `skill` to: an agent of the connected workers
    that list the skill (the named `agent`, if given, must be one of them).

    A worker lists its agents' skills together; a worker with several agents
    makes each of them a candidate. ToolArgumentError when none or several fit."""
    candidates: set[str] = set()
    for info, _ in workers:
        if any(s.id == skill for s in info.skills):
            candidates |= {skill} if skill in info.agents else set(info.agents)
    if agent is not None:
        if agent not in candidates:
            raise ToolArgumentError(
                f"arguments.skill: agent {agent!r} offers no skill {skill!r}"
                + (f" (agents that do: {', '.join(sorted(candidates))})" if candidates else ""))
        return agent
    if not candidates:
        raise ToolArgumentError(f"arguments.skill: no connected worker offers skill {skill!r} "
                                "(list_agents shows the skills on offer)")
    if len(candidates) > 1:
        raise ToolArgumentError(f"arguments.skill: skill {skill!r} is offered by agents "
                                f"{', '.join(sorted(candidates))}: name one with `agent`")
    return next(iter(candidates))


def _progress_message(event: StreamResponse) -> str | None:
    """One line on a task event, for a progress notification."""
    if event.status_update is not None:
        status = event.status_update.status
        said = message_text(status.message)
        return state_name(status.state) + (f": {said[:PROGRESS_TEXT]}" if said else "")
    if event.artifact_update is not None:
        artifact = event.artifact_update.artifact
        text = "".join(part_text(p) for p in artifact.parts)
        return f"artifact {artifact.name or artifact.artifact_id}: {text[:PROGRESS_TEXT]}"
    return None


def _a2a_error(err: A2AError) -> types.CallToolResult:
    return error_result(err.message, code=type(err).__name__.removesuffix("Error"),
                        data={"a2aCode": err.code, **err.metadata})


class McpTools:
    """The tools over one `A2AService` and the dispatcher's list of workers."""

    def __init__(self, service: A2AService, workers: Workers, *, limits: Limits = Limits(),
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self._service = service
        self._workers = workers
        self._limits = limits
        self._new_id = new_id

    async def call(self, name: str, arguments: Mapping[str, Any] | None, principal: str,
                   progress: Progress, *, authorize: Callable[[str], None] | None = None
                   ) -> types.CallToolResult:
        """Run one tool call. A bad argument or a refused operation is a tool error
        (`isError`, naming the argument or the A2A error); UnknownTool otherwise.
        `authorize(permission)` raises the caller's refusal (permission, rate) before
        the arguments are looked at, so a refusal tells nothing about them."""
        if name not in TOOL_NAMES:
            raise UnknownTool(name)
        if authorize is not None:
            try:
                authorize(MCP_OPERATIONS[name])
            except A2AError as err:
                return _a2a_error(err)
        try:
            self._limits.check(arguments or {}, where="arguments")
            args = parse_arguments(name, arguments)
        except ToolArgumentError as exc:
            return error_result(str(exc), code="InvalidArguments")
        except A2AError as err:  # over a request limit
            return error_result(err.message, code="InvalidArguments", data=err.metadata or None)
        try:
            if isinstance(args, SendArgs):
                return await self._send(args, principal, progress)
            if isinstance(args, GetArgs):
                task = await self._service.get_task(
                    GetTaskRequest(id=args.task_id, history_length=args.history_length),
                    principal)
                return task_result(task)
            if isinstance(args, ListArgs):
                page = await self._service.list_tasks(ListTasksRequest(
                    context_id=args.context_id, status=args.state, page_size=args.page_size,
                    page_token=args.page_token, include_artifacts=False), principal)
                return tasks_result(page)
            if isinstance(args, CancelArgs):
                task = await self._service.cancel_task(CancelTaskRequest(id=args.task_id),
                                                       principal)
                return task_result(task)
            if name == "list_agents":
                return agents_result(self._workers())
            return workers_result(self._workers())
        except ToolArgumentError as exc:
            return error_result(str(exc), code="InvalidArguments")
        except A2AError as err:
            return _a2a_error(err)

    async def _send(self, args: SendArgs, principal: str, progress: Progress
                    ) -> types.CallToolResult:
        agent = args.agent
        if args.skill is not None:
            agent = agent_for_skill(args.skill, agent, self._workers())
        route: dict[str, Any] = {}
        if args.priority is not None:
            route["trio-a2a/priority"] = args.priority
        if args.capabilities:
            route["trio-a2a/capabilities"] = list(args.capabilities)
        if args.worker is not None:
            route["trio-a2a/worker"] = args.worker
        if agent is not None:
            route["trio-a2a/agent"] = agent
        message = Message(message_id=self._new_id(), role=Role.USER,
                          parts=[Part(text=args.text)], task_id=args.task_id,
                          context_id=args.context_id)
        req = SendMessageRequest(
            message=message, metadata=route or None,
            configuration=SendMessageConfiguration(return_immediately=not args.wait))
        if not args.wait:
            out = await self._service.send_message(req, principal)
            return task_result(out.record.task)
        first, events = await self._service.send_streaming(req, principal)
        assert first.event.task is not None
        state = first.event.task.status.state
        count = 0
        async for stored in events:
            if stored is None:  # a keep-alive tick: quiet, not stuck (hosts reset timeouts)
                count += 1
                await progress(count, None, f"still {state_name(state)}: no new event for "
                                            f"{self._service.settings.keepalive:g} s")
                continue
            if stored.event.status_update is not None:
                state = stored.event.status_update.status.state
            line = _progress_message(stored.event)
            if line is not None:
                count += 1
                await progress(count, None, line)
        task = await self._service.get_task(GetTaskRequest(id=first.task_id), principal)
        log.info("mcp task reported", extra={"task_id": task.id, "principal": principal,
                                             "state": state_name(task.status.state),
                                             "progress_events": count})
        return task_result(task)
