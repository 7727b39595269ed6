"""The lifecycle folds: `apply_events` is `apply_event` over a batch, in one copy."""

from __future__ import annotations

import random

import pytest

from protocol.models import (
    Artifact,
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
from protocol.states import IllegalTransition, apply_event, apply_events

STATES = [TaskState.SUBMITTED, TaskState.WORKING, TaskState.INPUT_REQUIRED,
          TaskState.AUTH_REQUIRED, TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED]


def _random_event(rng: random.Random, task_id: str) -> StreamResponse:
    kind = rng.choice(["status", "status", "artifact", "artifact", "artifact", "message",
                       "task"])
    if kind == "status":
        message = (Message(message_id=f"m{rng.random()}", role=Role.AGENT,
                           parts=[Part(text="note")]) if rng.random() < 0.5 else None)
        return StreamResponse(status_update=TaskStatusUpdateEvent(
            task_id=task_id, context_id="c",
            status=TaskStatus(state=rng.choice(STATES), message=message)))
    if kind == "artifact":
        meta = {f"k{rng.randrange(3)}": rng.randrange(9)} if rng.random() < 0.3 else None
        return StreamResponse(artifact_update=TaskArtifactUpdateEvent(
            task_id=task_id, context_id="c", append=rng.random() < 0.6 or None,
            artifact=Artifact(artifact_id=f"a{rng.randrange(3)}", metadata=meta,
                              parts=[Part(text=f"t{rng.randrange(100)}")])))
    if kind == "message":
        return StreamResponse(message=Message(message_id=f"u{rng.random()}", role=Role.USER,
                                              parts=[Part(text="more")], task_id=task_id))
    return StreamResponse(task=Task(id=task_id, context_id="c",
                                    status=TaskStatus(state=TaskState.WORKING)))


def _sequential(task: Task, events: list[StreamResponse]) -> Task | str:
    try:
        for ev in events:
            task = apply_event(task, ev)
    except (IllegalTransition, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return task


def _batched(task: Task, events: list[StreamResponse]) -> Task | str:
    try:
        return apply_events(task, events)
    except (IllegalTransition, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("seed", range(300))
def test_apply_events_equals_apply_event_in_turn(seed: int) -> None:
    rng = random.Random(seed)
    start = Task(id="t", context_id="c", status=TaskStatus(state=TaskState.SUBMITTED),
                 history=[Message(message_id="m0", role=Role.USER, parts=[Part(text="hi")])])
    events = [_random_event(rng, "t") for _ in range(rng.randrange(0, 8))]
    expected = _sequential(start, events)
    got = _batched(start, events)
    if isinstance(expected, str):
        assert got == expected
    else:
        assert isinstance(got, Task)
        assert got.model_dump() == expected.model_dump()


def test_apply_events_leaves_its_input_alone() -> None:
    start = Task(id="t", context_id="c", status=TaskStatus(state=TaskState.WORKING),
                 artifacts=[Artifact(artifact_id="a", parts=[Part(text="x")])])
    before = start.model_dump()
    chunk = StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id="t", context_id="c", append=True,
        artifact=Artifact(artifact_id="a", parts=[Part(text="y")])))
    done = StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id="t", context_id="c", status=TaskStatus(state=TaskState.COMPLETED)))
    out = apply_events(start, [chunk, chunk, done])
    assert start.model_dump() == before
    assert [p.text for p in out.artifacts[0].parts] == ["x", "y", "y"]  # type: ignore[index]
    assert out.status.state is TaskState.COMPLETED


def test_apply_events_refuses_an_event_of_another_task() -> None:
    start = Task(id="t", context_id="c", status=TaskStatus(state=TaskState.WORKING))
    other = StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id="x", context_id="c", status=TaskStatus(state=TaskState.COMPLETED)))
    with pytest.raises(ValueError, match="event for task x"):
        apply_events(start, [other, other])
