"""The agent's private state, kept on the server side of a task.

An agent that pauses (input-required) may leave the state it needs to resume (the LLM
agent's whole transcript: system prompt, tool outputs) in a data part of its status
message, under `AGENT_STATE_KEY`. That message is what a client reads, so the server
takes the state out of it before the event is stored or sent anywhere
(`split_agent_state`), keeps it with the task's dispatch state, and puts it back only
into what a worker is granted for the next run (`restore_agent_state`). The client sees
the question and the pending tool call, never the transcript. Sans-IO.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protocol.models import Message, Part, StreamResponse

__all__ = ["AGENT_STATE_KEY", "restore_agent_state", "split_agent_state"]

AGENT_STATE_KEY = "trio-a2a/agentState"


def _strip(message: Message) -> tuple[Message, Any]:
    found: Any = None
    parts: list[Part] = []
    for part in message.parts:
        if isinstance(part.data, dict) and AGENT_STATE_KEY in part.data:
            found = part.data[AGENT_STATE_KEY]
            rest = {k: v for k, v in part.data.items() if k != AGENT_STATE_KEY}
            if rest:
                parts.append(part.model_copy(update={"data": rest}))
            continue
        parts.append(part)
    if found is None:
        return message, None
    if not parts:  # a message needs a part: say that the agent paused
        parts = [Part(text="(waiting for input)")]
    return message.model_copy(update={"parts": parts}), found


def split_agent_state(events: Sequence[StreamResponse]
                      ) -> tuple[list[StreamResponse], dict[str, Any] | None]:
    """`events` without agent state, and the last state found with the id of the message
    it was in (``{"messageId": ..., "state": ...}``), or None."""
    out: list[StreamResponse] = []
    saved: dict[str, Any] | None = None
    for event in events:
        update = event.status_update
        status = update.status if update is not None else (
            event.task.status if event.task is not None else None)
        if status is None or status.message is None:
            out.append(event)
            continue
        message, state = _strip(status.message)
        if state is None:
            out.append(event)
            continue
        saved = {"messageId": message.message_id, "state": state}
        new_status = status.model_copy(update={"message": message})
        if update is not None:
            event = event.model_copy(update={
                "status_update": update.model_copy(update={"status": new_status})})
        else:
            assert event.task is not None
            event = event.model_copy(update={
                "task": event.task.model_copy(update={"status": new_status})})
        out.append(event)
    return out, saved


def restore_agent_state(messages: Sequence[Message], saved: dict[str, Any] | None
                        ) -> list[Message]:
    """`messages` with the saved state back in the message it was taken from."""
    out = list(messages)
    if not saved:
        return out
    for i, message in enumerate(out):
        if message.message_id == saved.get("messageId"):
            out[i] = message.model_copy(update={
                "parts": [*message.parts, Part(data={AGENT_STATE_KEY: saved.get("state")})]})
    return out
