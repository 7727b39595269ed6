"""How one write changes a task's record: pure functions, no I/O.

`ServerTaskStore` builds every write here from the record it builds on (its
head): events get the next sequence numbers and their status timestamps, they
are folded into the task's snapshot (checked against the lifecycle), history and
dispatch state are applied, and the new record takes the next version. Keeping
this pure lets the store run it again on a fresher record when another process
wrote the task first (a conflict), with the same outcome as if it had seen that
record in the first place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from actors.store_port import (
    DispatchState,
    PushConfigRecord,
    StoredEvent,
    TaskRecord,
    TaskWrite,
)
from protocol.models import Message, StreamResponse, Task, format_timestamp
from protocol.states import apply_events

__all__: list[str] = []  # the store's internals; ServerTaskStore is the API

DispatchChange = DispatchState | Callable[[DispatchState], DispatchState] | None


def first_write(task: Task, *, owner: str, now: float, dispatch: DispatchState | None,
                push_configs: Sequence[PushConfigRecord]) -> TaskWrite:
    """The write that creates `task`: its first log entry (seq 1) is the task itself."""
    if task.status.timestamp is None:
        status = task.status.model_copy(update={"timestamp": format_timestamp(now)})
        task = task.model_copy(update={"status": status})
    dispatch = dispatch or DispatchState()
    if task.history and dispatch.run_input is None:  # the message that creates the task
        dispatch = attrs.evolve(dispatch, run_input=_last_message(task.history))
    record = TaskRecord(task=task, owner=owner, seq=1, created_at=now, status_at=now,
                        dispatch=dispatch)
    event = StoredEvent(task_id=task.id, seq=1, event=StreamResponse(task=task))
    return TaskWrite(record=record, events=(event,), expected_seq=None, expected_version=None,
                     push_configs=tuple(push_configs))


def next_write(head: TaskRecord, events: Sequence[StreamResponse], *, now: float,
               add_history: Sequence[Message] = (), dispatch: DispatchChange = None
               ) -> TaskWrite:
    """The write that applies `events` (and `add_history`, and `dispatch`) on `head`.

    Raises `protocol.states.IllegalTransition` if an event breaks the lifecycle.
    Status updates without a timestamp get `now`, and move `status_at` to it.
    """
    task_id = head.task_id
    task = head.task
    status_at = head.status_at
    stored: list[StoredEvent] = []
    seq = head.seq
    stamp: str | None = None
    for ev in events:
        if ev.status_update is not None:
            if ev.status_update.status.timestamp is None:
                stamp = stamp or format_timestamp(now)
                status = ev.status_update.status.model_copy(update={"timestamp": stamp})
                ev = StreamResponse(
                    status_update=ev.status_update.model_copy(update={"status": status})
                )
            status_at = now
        seq += 1
        stored.append(StoredEvent(task_id=task_id, seq=seq, event=ev))
    if stored:  # one copy of the task for the whole write
        task = apply_events(task, [e.event for e in stored])
    if add_history:  # after the events: a status change first moves its message to history
        task = task.model_copy(update={"history": [*(task.history or []), *add_history]})
    if dispatch is None:
        dispatch = head.dispatch
    elif callable(dispatch):
        dispatch = dispatch(head.dispatch)
    if add_history:  # a new run: its own input, all of its attempts
        assert task.history is not None
        dispatch = attrs.evolve(dispatch, run_input=_last_message(task.history),
                                run_attempts=0)
    record = TaskRecord(task=task, owner=head.owner, seq=seq, created_at=head.created_at,
                        status_at=status_at, dispatch=dispatch, version=head.version + 1)
    return TaskWrite(record=record, events=tuple(stored), expected_seq=head.seq,
                     expected_version=head.version)


def _last_message(history: Sequence[Message]) -> tuple[int, str]:
    """`DispatchState.run_input` naming the last message of `history`."""
    return len(history) - 1, history[-1].message_id
