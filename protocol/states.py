"""The task lifecycle as pure functions.

A transition that the lifecycle does not allow raises `IllegalTransition`; nothing
here ever overwrites a state silently. `apply_event` folds one stream event into a
task snapshot, which is how the store keeps its record in step with its log.
"""

from __future__ import annotations

from protocol.models import (
    Artifact,
    Message,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatusUpdateEvent,
)

__all__ = [
    "ACTIVE_STATES",
    "INTERRUPTED_STATES",
    "TERMINAL_STATES",
    "IllegalTransition",
    "apply_event",
    "check_transition",
    "ends_stream",
    "is_interrupted",
    "is_terminal",
]

TERMINAL_STATES = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED}
)
INTERRUPTED_STATES = frozenset({TaskState.INPUT_REQUIRED, TaskState.AUTH_REQUIRED})
ACTIVE_STATES = frozenset({TaskState.SUBMITTED, TaskState.WORKING})

_ENDINGS = TERMINAL_STATES | INTERRUPTED_STATES

_ALLOWED: dict[TaskState, frozenset[TaskState]] = {
    TaskState.SUBMITTED: frozenset({TaskState.WORKING} | _ENDINGS),
    TaskState.WORKING: frozenset({TaskState.WORKING} | _ENDINGS),
    # An interrupted task resumes when the client answers; it may also be
    # canceled, failed or rejected while it waits, or interrupted again.
    TaskState.INPUT_REQUIRED: frozenset(
        {TaskState.SUBMITTED, TaskState.WORKING, TaskState.CANCELED, TaskState.FAILED,
         TaskState.REJECTED} | INTERRUPTED_STATES
    ),
    TaskState.AUTH_REQUIRED: frozenset(
        {TaskState.SUBMITTED, TaskState.WORKING, TaskState.CANCELED, TaskState.FAILED,
         TaskState.REJECTED} | INTERRUPTED_STATES
    ),
}
for _s in TERMINAL_STATES:
    _ALLOWED[_s] = frozenset()
_ALLOWED[TaskState.UNSPECIFIED] = frozenset()


class IllegalTransition(ValueError):
    """A state change the task lifecycle does not allow."""

    def __init__(self, old: TaskState, new: TaskState) -> None:
        self.old = old
        self.new = new
        super().__init__(f"illegal task state transition {old.value} -> {new.value}")


def is_terminal(state: TaskState) -> bool:
    """Completed, failed, canceled or rejected: the task accepts nothing more."""
    return state in TERMINAL_STATES


def is_interrupted(state: TaskState) -> bool:
    """Input-required or auth-required: the task waits for the client."""
    return state in INTERRUPTED_STATES


def ends_stream(state: TaskState) -> bool:
    """A stream closes after a terminal or interrupted state (spec section 11.7)."""
    return state in _ENDINGS


def check_transition(old: TaskState, new: TaskState) -> None:
    """Raise `IllegalTransition` unless `old -> new` is allowed."""
    if new not in _ALLOWED.get(old, frozenset()):
        raise IllegalTransition(old, new)


def _merge_artifact(artifacts: list[Artifact], ev: TaskArtifactUpdateEvent) -> list[Artifact]:
    out = list(artifacts)
    for i, existing in enumerate(out):
        if existing.artifact_id == ev.artifact.artifact_id:
            if ev.append:
                merged = existing.model_copy(
                    update={"parts": [*existing.parts, *ev.artifact.parts]}
                )
                if ev.artifact.metadata:
                    merged.metadata = {**(existing.metadata or {}), **ev.artifact.metadata}
                out[i] = merged
            else:
                out[i] = ev.artifact
            return out
    out.append(ev.artifact)
    return out


def _apply_status(task: Task, ev: TaskStatusUpdateEvent) -> Task:
    check_transition(task.status.state, ev.status.state)
    history = list(task.history or [])
    # The previous status message becomes history once a newer status replaces it.
    if task.status.message is not None:
        history.append(task.status.message)
    return task.model_copy(update={"status": ev.status, "history": history})


def apply_event(task: Task, event: StreamResponse) -> Task:
    """Fold one stream event into a task snapshot; raises IllegalTransition.

    The input is not modified. Events for another task raise ValueError.
    """
    if event.status_update is not None:
        _check_ids(task, event.status_update.task_id)
        return _apply_status(task, event.status_update)
    if event.artifact_update is not None:
        _check_ids(task, event.artifact_update.task_id)
        if is_terminal(task.status.state):
            raise ValueError(f"task {task.id} is {task.status.state.value}: no more artifacts")
        return task.model_copy(
            update={"artifacts": _merge_artifact(task.artifacts or [], event.artifact_update)}
        )
    if event.message is not None:
        return _append_message(task, event.message)
    assert event.task is not None
    _check_ids(task, event.task.id)
    return event.task


def _append_message(task: Task, message: Message) -> Task:
    return task.model_copy(update={"history": [*(task.history or []), message]})


def _check_ids(task: Task, task_id: str) -> None:
    if task_id != task.id:
        raise ValueError(f"event for task {task_id} applied to task {task.id}")
