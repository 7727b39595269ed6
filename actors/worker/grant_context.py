"""The agent's view of a granted claim: the `TaskContext` a session runs with."""

from __future__ import annotations

from actors.agent import TaskContext
from protocol.worker_link import ClaimReply

__all__ = ["claim_context"]


def claim_context(grant: ClaimReply) -> TaskContext:
    """The agent's view of a granted claim."""
    if grant.task is None:
        raise ValueError("a granted claim carries the task")
    task = grant.task
    history = list(grant.history if grant.history is not None else task.history or [])
    message = grant.message
    if message is None:
        if not history:
            raise ValueError(f"claim of task {task.id} carries no message to answer")
        message = history.pop()
    elif history and history[-1].message_id == message.message_id:
        history.pop()
    return TaskContext(task_id=task.id, context_id=task.context_id, message=message,
                       history=history, task=task, metadata=dict(grant.metadata or {}),
                       accepted_output_modes=tuple(grant.accepted_output_modes or ()),
                       principal=grant.principal or "", context=tuple(grant.context or ()))
