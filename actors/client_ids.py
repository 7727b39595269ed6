"""Tasks named by their client: A2A 0.1/0.2 `tasks/send` with a client-chosen id.

In the first A2A drafts the client picks the task id, and a `tasks/send` with an
id that exists is a follow-up message on that task. 1.0 has no such thing (the
server names tasks), so the rules are ours, chosen so that an id can never reach
into someone else's task:

* an unknown id creates a task of that id, in the context ``sessionId`` (or a
  new one when the client sent none);
* the id of another principal's task is refused (-32602, "the id is taken"); the
  task is neither changed nor shown, and the caller learns only that the id is
  in use, which it must know to pick another;
* the id of the caller's own task continues it, as a message with ``taskId``
  does: a ``sessionId`` other than the task's context is refused (-32602); a
  terminal task is refused (-32004) with a hint to use a new id; a task still at
  work is refused (-32004, as the service does); an input-required or
  auth-required task takes the message and runs again.

Two creates of one id racing (two replicas, or two requests) meet in the store,
which refuses the second; that one is then handled as a follow-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from actors.a2a_service import A2AService, SendOutcome
from actors.store_port import ConflictError, StoredEvent
from protocol.errors import InvalidParamsError, UnsupportedOperationError
from protocol.legacy import LegacySend
from protocol.models import SendMessageRequest, TaskState
from protocol.states import is_terminal

__all__ = ["send_to_client_task", "stream_to_client_task"]


async def _prepare(svc: A2AService, send: LegacySend, principal: str
                   ) -> tuple[SendMessageRequest, str | None]:
    """The request to hand the service, and the id to create (None: continue)."""
    task_id = send.task_id
    record = await svc.store.get_task(task_id)
    if record is None:
        return send.request, task_id
    if record.owner != principal:
        raise InvalidParamsError(
            f"params.id: task id {task_id!r} is already taken; choose another id "
            "(a new UUID)", metadata={"taskId": task_id, "reason": "task-id-taken"},
        )
    task = record.task
    if send.session_id is not None and send.session_id != task.context_id:
        raise InvalidParamsError(
            f"params.sessionId {send.session_id!r} does not match the sessionId "
            f"{task.context_id!r} of task {task_id!r}",
            metadata={"taskId": task_id, "reason": "session-mismatch"},
        )
    if is_terminal(task.status.state):
        raise UnsupportedOperationError(
            f"task {task_id!r} is {_name(task.status.state)} and accepts no more messages; "
            "send tasks/send with a new id to start another task",
            metadata={"taskId": task_id},
        )
    message = send.request.message.model_copy(update={"task_id": task_id})
    return send.request.model_copy(update={"message": message}), None


def _name(state: TaskState) -> str:
    """The state as 0.1/0.2 spells it (``input-required``)."""
    return state.value.removeprefix("TASK_STATE_").lower().replace("_", "-")


async def send_to_client_task(svc: A2AService, send: LegacySend, principal: str
                              ) -> SendOutcome:
    """tasks/send: create or continue the client's task, as `A2AService.send_message`."""
    for retry in (True, False):
        req, new_id = await _prepare(svc, send, principal)
        try:
            return await svc.send_message(req, principal, new_id)
        except (ConflictError, ValueError):
            if not (retry and new_id and await svc.store.get_task(new_id) is not None):
                raise
    raise AssertionError("unreachable")


async def stream_to_client_task(
    svc: A2AService, send: LegacySend, principal: str
) -> tuple[StoredEvent, AsyncIterator[StoredEvent | None]]:
    """tasks/sendSubscribe: as `send_to_client_task`, streaming."""
    for retry in (True, False):
        req, new_id = await _prepare(svc, send, principal)
        try:
            return await svc.send_streaming(req, principal, new_id)
        except (ConflictError, ValueError):
            if not (retry and new_id and await svc.store.get_task(new_id) is not None):
                raise
    raise AssertionError("unreachable")
