"""The task lifecycle as pure functions.

A transition that the lifecycle does not allow raises `IllegalTransition`; nothing
here ever overwrites a state silently. `apply_event` folds one stream event into a
task snapshot, which is how the store keeps its record in step with its log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protocol.models import (
    Artifact,
    Message,
    Part,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

__all__ = [
    "ACTIVE_STATES",
    "INTERRUPTED_STATES",
    "TERMINAL_STATES",
    "IllegalTransition",
    "apply_event",
    "apply_events",
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


def apply_events(task: Task, events: Sequence[StreamResponse]) -> Task:
    """`apply_event` over a batch, with one copy of the task at the end instead
    of one per event (and one per appended artifact): the same result, and the
    same `IllegalTransition` or ValueError for the first event that breaks the
    lifecycle. The store folds each write this way.
    """
    if len(events) == 1:
        return apply_event(task, events[0])
    status = task.status
    history: list[Message] | None = None
    artifacts: list[Artifact] | None = None
    index: dict[str, int] = {}
    appended: dict[int, tuple[list[Part], dict[str, Any] | None]] = {}
    for event in events:
        if (up := event.status_update) is not None:
            _check_ids(task, up.task_id)
            check_transition(status.state, up.status.state)
            if status.message is not None:
                if history is None:
                    history = list(task.history or [])
                history.append(status.message)
            status = up.status
        elif (art := event.artifact_update) is not None:
            _check_ids(task, art.task_id)
            if is_terminal(status.state):
                raise ValueError(f"task {task.id} is {status.state.value}: no more artifacts")
            if artifacts is None:
                artifacts = list(task.artifacts or [])
                index = {a.artifact_id: i for i, a in enumerate(artifacts)}
            aid = art.artifact.artifact_id
            i = index.get(aid)
            if i is None:
                index[aid] = len(artifacts)
                artifacts.append(art.artifact)
            elif art.append:
                parts, meta = appended.get(i, ([], None))
                parts.extend(art.artifact.parts)
                if art.artifact.metadata:
                    meta = {**(meta or {}), **art.artifact.metadata}
                appended[i] = (parts, meta)
            else:
                artifacts[i] = art.artifact
                appended.pop(i, None)
        elif event.message is not None:
            if history is None:
                history = list(task.history or [])
            history.append(event.message)
        else:  # a whole task replaces the snapshot: fold what came before, start again
            assert event.task is not None
            _check_ids(task, event.task.id)
            task, status, history, artifacts = event.task, event.task.status, None, None
            index, appended = {}, {}
    return _fold(task, status, history, artifacts, appended)


def _fold(task: Task, status: TaskStatus, history: list[Message] | None,
          artifacts: list[Artifact] | None,
          appended: dict[int, tuple[list[Part], dict[str, Any] | None]]) -> Task:
    update: dict[str, Any] = {}
    if status is not task.status:
        update["status"] = status
        # apply_event copies the history on every status change, even an empty one
        update["history"] = history if history is not None else list(task.history or [])
    elif history is not None:
        update["history"] = history
    if artifacts is not None:
        for i, (parts, meta) in appended.items():
            old = artifacts[i]
            merged = old.model_copy(update={"parts": [*old.parts, *parts]})
            if meta:
                merged.metadata = {**(old.metadata or {}), **meta}
            artifacts[i] = merged
        update["artifacts"] = artifacts
    return task.model_copy(update=update) if update else task
