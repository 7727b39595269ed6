"""What a claim grants: the task, the message that started the run, the history
before it, the metadata of the send, who sent it and the output modes it
accepts and, for a worker that asks, the earlier tasks of the task's context;
all of it bounded in size (`runtime.link.grant_bound`).

Apart from `LinkConnection` because it is the one place that decides what an
attempt runs on, first attempt or retry alike.
"""

from __future__ import annotations

import json

from actors.dispatcher import Claim
from actors.store_port import DispatchState, TaskQuery, TaskRecord
from actors.task_store import ServerTaskStore
from protocol import worker_link as wl
from protocol.agent_state import restore_agent_state
from protocol.models import Message, Part, Role, Task
from protocol.output_size import message_bound
from runtime.link.grant_bound import (
    GRANT_BYTES,
    answer_text,
    fit_newest,
    snapshot_bound,
    task_snapshot,
)

__all__ = ["CONTEXT_TASKS", "build_grant", "context_messages", "run_input"]

CONTEXT_TASKS = 20
"""Earlier tasks of a context a grant carries, at most (the newest ones)."""


def build_grant(claim: Claim, context: list[Message] | None) -> wl.ClaimReply:
    """The grant of `claim`; `context` is what `context_messages` gave, or None.

    Bounded (`runtime.link.grant_bound`): the message and the request's metadata
    whole, then as much of the history, then of the context, as fits in
    `GRANT_BYTES` beside them and the task snapshot (no history, no artifact
    content)."""
    task = claim.record.task
    message, history = run_input(task, claim.record.dispatch)
    # the agent's private state comes back to the worker only (protocol.agent_state)
    history = restore_agent_state(history, claim.record.dispatch.agent_state)
    request = claim.run_request()
    snapshot = task_snapshot(task)
    budget = GRANT_BYTES - snapshot_bound(snapshot) - (
        message_bound(message) if message is not None else 0) - (
        len(json.dumps(request.metadata, default=str)) if request.metadata else 0)
    history, used = fit_newest(history, budget, what="this task")
    if context is not None:
        context, _ = fit_newest(context, budget - used, what="this context")
    return wl.ClaimReply(
        granted=True, attempt_id=claim.attempt_id, lease_expires_at=claim.lease_expires_at,
        task=snapshot, message=message, history=history, metadata=request.metadata,
        context=context, principal=request.principal or None,
        accepted_output_modes=list(request.accepted_output_modes) or None,
        traceparent=claim.record.dispatch.trace_parent)


def run_input(task: Task, dispatch: DispatchState) -> tuple[Message | None, list[Message]]:
    """The message the task's current run started with, and the history before it.

    Not the history's last message: every status an attempt replaces moves into
    the history, and so does the server's retry note, so a retry would be handed
    those. The store records which message started the run (`run_input`); a row
    from before that record was kept falls back to the last user message.
    """
    history = list(task.history or [])
    i = _input_index(history, dispatch.run_input)
    if i is None:
        return None, history
    return history[i], history[:i]


def _input_index(history: list[Message], mark: tuple[int, str] | None) -> int | None:
    if mark is not None:
        index, message_id = mark
        if 0 <= index < len(history) and history[index].message_id == message_id:
            return index
        for i in range(len(history) - 1, -1, -1):  # a history written over: by id
            if history[i].message_id == message_id:
                return i
    for i in range(len(history) - 1, -1, -1):
        if history[i].role == Role.USER:
            return i
    return len(history) - 1 if history else None


async def context_messages(store: ServerTaskStore, record: TaskRecord) -> list[Message]:
    """The earlier tasks of the record's context (same owner), oldest first: their
    messages, then their text artifacts as one agent message each, cut to
    `CONTEXT_ANSWER_CHARS` (`build_grant` fits the whole into the grant)."""
    task = record.task
    page = await store.list_tasks(TaskQuery(
        owner=record.owner, context_id=task.context_id, page_size=CONTEXT_TASKS + 1))
    earlier = sorted((r for r in page.records
                      if r.task_id != task.id and r.created_at <= record.created_at),
                     key=lambda r: r.created_at)[-CONTEXT_TASKS:]
    out: list[Message] = []
    for r in earlier:
        out.extend(r.task.history or ())
        text = answer_text(r.task.artifacts or ())
        if text:
            out.append(Message(message_id=f"{r.task_id}:answer", role=Role.AGENT,
                               parts=[Part(text=text)], task_id=r.task_id,
                               context_id=task.context_id))
    return out
