"""A worker's output and release frames, checked and turned into task events.

Pure helpers of `LinkConnection`, apart from it so the connection reads as the
serving of each op: `Refused` (a frame refused with a link error code), the
checks that a frame's events and carried status belong to the frame's task and
attempt, and `release_events`, the events that end an attempt.
"""

from __future__ import annotations

import uuid

from protocol import worker_link as wl
from protocol.models import (
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

__all__ = ["OUTCOME_STATES", "Refused", "check_carried_status", "check_task_id", "event_task_id",
           "release_events"]

OUTCOME_STATES = {"completed": TaskState.COMPLETED, "failed": TaskState.FAILED,
                  "canceled": TaskState.CANCELED, "input-required": TaskState.INPUT_REQUIRED,
                  "auth-required": TaskState.AUTH_REQUIRED}


class Refused(Exception):
    """A frame the server refuses: `code` is the link error code of its ack."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def event_task_id(ev: StreamResponse) -> str | None:
    if ev.status_update is not None:
        return ev.status_update.task_id
    if ev.artifact_update is not None:
        return ev.artifact_update.task_id
    if ev.task is not None:
        return ev.task.id
    return ev.message.task_id if ev.message is not None else None


def check_task_id(found: str | None, task_id: str, where: str) -> None:
    if found is not None and found != task_id:
        raise Refused(wl.INVALID_FRAME, f"{where}: belongs to task {found!r}, not {task_id!r}")


def check_carried_status(body: wl.OutputBody | wl.ReleaseBody) -> None:
    status = body.status
    if status is not None and (status.task_id, status.attempt_id) != (body.task_id,
                                                                        body.attempt_id):
        raise Refused(wl.INVALID_FRAME, "body.status: belongs to attempt "
                      f"{status.attempt_id!r} of task {status.task_id!r}, not to this frame's")


def release_events(body: wl.ReleaseBody, task: Task,
                   also_streamed: set[str] | None = None) -> list[StreamResponse]:
    """The events that end an attempt: the artifacts its output did not stream
    (one already in the task by id, or in `also_streamed`, is left as streamed,
    not written twice), then its final status."""
    task_id, context_id = body.task_id, task.context_id
    streamed = {a.artifact_id for a in task.artifacts or ()}
    if also_streamed:
        streamed |= also_streamed
    events = [StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id=task_id, context_id=context_id, artifact=artifact, last_chunk=True))
        for artifact in body.artifacts or () if artifact.artifact_id not in streamed]
    message = body.message
    if message is None and body.error:
        message = Message(message_id=str(uuid.uuid4()), role=Role.AGENT,
                          parts=[Part(text=body.error)])
    if message is not None:
        check_task_id(message.task_id, task_id, "body.message.taskId")
        message = message.model_copy(update={"task_id": task_id,
                                             "context_id": message.context_id or context_id})
    status = TaskStatus(state=OUTCOME_STATES[body.outcome], message=message)
    events.append(StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=task_id, context_id=context_id, status=status)))
    return events
