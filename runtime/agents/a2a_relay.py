"""The A2A backend: a remote A2A agent does the work, this agent relays it.

The task's message is forwarded to the agent at `url` (any A2A server: 1.0 or
0.3, whichever its card says; `runtime.client.client`) as a streaming send, and
what comes back is relayed as it arrives: artifacts and their chunks (same ids),
working status messages, and the remote task's end: completed, failed,
rejected, canceled, input-required or auth-required, with its message. So
trio-a2a can front, chain and evaluate other agents.

A continued task (after input-required) continues the same remote task: the
remote ids ride in the metadata of the input-required message
(``trio-a2a/relay``). Cancelling the task here cancels the remote task.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from protocol.models import Message, Part, Role, TaskState
from runtime.client.client import A2AClient, open_a2a_client

__all__ = ["RELAY_KEY", "a2a_relay_agent"]

log = logging.getLogger(__name__)

RELAY_KEY = "trio-a2a/relay"


def a2a_relay_agent(url: str, *, token: str | None = None, name: str = "a2a-relay",
                    protocol: str = "auto") -> AgentSpec:
    """An agent that relays each task to the A2A agent at `url`."""

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        async with open_a2a_client(url, token=token, protocol=protocol) as client:  # type: ignore[arg-type]
            await _relay(client, ctx, emit)

    return AgentSpec(name=name, run=run,
                     description=f"Relays tasks to the A2A agent at {url}.")


def _remote_ids(ctx: TaskContext) -> tuple[str | None, str | None]:
    """The remote task this one continues, from the last agent message that named it."""
    for message in reversed([*ctx.history,
                             *([ctx.task.status.message] if ctx.task and ctx.task.status.message
                               else [])]):
        relay = (message.metadata or {}).get(RELAY_KEY)
        if message.role == Role.AGENT and isinstance(relay, dict):
            return relay.get("taskId"), relay.get("contextId")
    return None, None


async def _relay(client: A2AClient, ctx: TaskContext, emit: Emitter) -> None:
    task_id, context_id = _remote_ids(ctx)
    outgoing = Message(message_id=str(uuid.uuid4()), role=Role.USER, parts=ctx.message.parts,
                       task_id=task_id, context_id=context_id,
                       metadata=ctx.message.metadata)
    await emit.working()
    remote: dict[str, Any] = {"taskId": task_id, "contextId": context_id}
    ended = False
    try:
        async with client.send_stream(outgoing) as events:
            async for ev in events:
                if ev.task is not None:
                    remote.update(taskId=ev.task.id, contextId=ev.task.context_id)
                elif (up := ev.artifact_update) is not None:
                    art = up.artifact
                    await emit.artifact(art.parts, artifact_id=art.artifact_id, name=art.name,
                                        description=art.description, append=bool(up.append),
                                        last_chunk=bool(up.last_chunk), metadata=art.metadata)
                elif (su := ev.status_update) is not None:
                    remote.update(taskId=su.task_id, contextId=su.context_id)
                    if su.status.state == TaskState.WORKING:
                        if su.status.message is not None or su.metadata:
                            await emit.status(TaskState.WORKING, _parts(su.status.message),
                                              metadata=su.metadata)
                elif ev.message is not None:  # a direct reply: the remote did not make a task
                    ended = True
                    await emit.reply(ev.message.parts)
                    return
            final = events.task
        if final is None:
            raise RuntimeError(f"the A2A agent at {client.rpc_url} ended the stream without "
                               "a task or a reply")
        ended = True
        await _end(emit, final.status.state, final.status.message, remote, client)
    finally:
        if not ended and remote.get("taskId"):
            with trio.move_on_after(5) as scope:
                scope.shield = True
                try:
                    await client.cancel(str(remote["taskId"]))
                except Exception as exc:  # the remote may have ended meanwhile
                    log.info("remote task not canceled", extra={
                        "remote_task_id": remote["taskId"], "error": repr(exc)})


def _parts(message: Message | None) -> list[Any] | None:
    return list(message.parts) if message is not None and message.parts else None


async def _end(emit: Emitter, state: TaskState, message: Message | None,
               remote: dict[str, Any], client: A2AClient) -> None:
    parts = _parts(message)
    if state == TaskState.COMPLETED:
        await emit.complete(parts)
    elif state == TaskState.FAILED:
        await emit.fail(parts or f"the A2A agent at {client.rpc_url} failed the task")
    elif state == TaskState.REJECTED:
        await emit.reject(parts)
    elif state == TaskState.CANCELED:
        await emit.status(TaskState.CANCELED, parts)
    elif state in (TaskState.INPUT_REQUIRED, TaskState.AUTH_REQUIRED):
        note = Message(message_id=str(uuid.uuid4()), role=Role.AGENT,
                       parts=parts or [], metadata={RELAY_KEY: remote})
        if not note.parts:
            note = note.model_copy(update={"parts": [Part(text="(the remote agent is "
                                                               "waiting for input)")]})
        await emit.status(state, note)
    else:
        raise RuntimeError(f"the A2A agent at {client.rpc_url} left the task "
                           f"{state.value}")
