"""ServerTaskStore: the one source of truth for tasks on a server.

Every change to a task goes through `write()`: the event is checked against the
lifecycle, folded into the task's snapshot, given the next sequence number and
queued for the committer (`actors.task_commit`). The committer takes whatever
has queued up and hands it to the backend as one atomic batch (group commit),
then publishes it: the committed snapshot moves on and the task's waiters are
woken. A write the backend cannot store fails alone, not its whole batch.

Readers never slow the store down. A subscriber keeps its own cursor into the
task's log and calls `wait_events(task_id, after_seq)`; the store only wakes it
(level-triggered: a fresh `trio.Event` per commit) and it reads whatever it has
not yet seen, from a short in-memory tail or from the backend. A subscriber that
falls far behind costs a backend read, never a buffer that grows.

Only committed state is ever visible: `get_task`, `wait_events` and
`wait_record` see nothing a crash could take back.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence

import attrs
import trio

from actors.store_port import (
    DispatchState,
    PushConfigRecord,
    StoredEvent,
    TaskBackend,
    TaskPage,
    TaskQuery,
    TaskRecord,
    TaskWrite,
)
from actors.task_commit import (
    Committer,
    PendingWrite,
    StoreClosedError,
    TaskEntry,
    Watcher,
    merge_writes,
)
from protocol.models import Message, StreamResponse, Task, format_timestamp
from protocol.states import apply_events, is_terminal

__all__ = ["ServerTaskStore", "StoreClosedError", "StoreStatistics", "merge_writes"]


@attrs.frozen
class StoreStatistics:
    cached_tasks: int
    queued_writes: int
    commits: int
    committed_writes: int
    failed_commits: int
    """Backend commits that failed, each try of a batch being searched included."""
    failed_writes: int
    """Writes whose writer got a commit error."""
    max_batch: int


def _changed(entry: TaskEntry) -> trio.Event:
    if entry.changed is None:
        entry.changed = trio.Event()
    return entry.changed


class ServerTaskStore:
    """Owns every task of the server; see the module docstring.

    `write_queue` bounds the writes waiting for the committer (backpressure on
    producers when the backend falls behind); `max_batch` bounds one commit;
    `tail_size` is how many recent events per task are served from memory;
    `cache_size` is how many finished tasks stay cached after their last write.
    """

    def __init__(
        self,
        backend: TaskBackend,
        *,
        clock: Callable[[], float] = time.time,
        write_queue: int = 4096,
        max_batch: int = 512,
        tail_size: int = 64,
        cache_size: int = 4096,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._send, self._recv = trio.open_memory_channel[PendingWrite](write_queue)
        self._max_batch = max_batch
        self._tail_size = tail_size
        self._cache_size = cache_size
        self._entries: dict[str, TaskEntry] = {}
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._running = False
        self._committer = Committer(backend, self._remember_finished)

    @property
    def backend(self) -> TaskBackend:
        return self._backend

    def now(self) -> float:
        """Wall-clock time for task timestamps (injected for tests), in whole
        milliseconds so that it equals what the wire timestamp says."""
        return round(self._clock() * 1000) / 1000

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            cached_tasks=len(self._entries),
            queued_writes=self._send.statistics().current_buffer_used,
            commits=self._committer.commits,
            committed_writes=self._committer.committed_writes,
            failed_commits=self._committer.failed_commits,
            failed_writes=self._committer.failed_writes,
            max_batch=self._committer.biggest_batch,
        )

    # --- the committer ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the committer until cancelled. Writes queued at cancellation are failed."""
        self._running = True
        task_status.started()
        try:
            while True:
                first = await self._recv.receive()
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._recv.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self._committer.commit(batch)
        finally:
            self._running = False
            self._fail_queued(StoreClosedError("the task store shut down"))

    def _fail_queued(self, exc: BaseException) -> None:
        while True:
            try:
                p = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            p.finish(exc)

    def _remember_finished(self, task_id: str) -> None:
        self._finished[task_id] = None
        self._finished.move_to_end(task_id)
        while len(self._finished) > self._cache_size:
            old, _ = self._finished.popitem(last=False)
            entry = self._entries.get(old)
            if entry is not None and entry.pending == 0:
                del self._entries[old]

    # --- writes -------------------------------------------------------------------

    async def create_task(
        self,
        task: Task,
        *,
        owner: str,
        push_configs: Sequence[PushConfigRecord] = (),
        dispatch: DispatchState | None = None,
    ) -> TaskRecord:
        """Store a new task; its first log entry (seq 1) is the task itself."""
        if task.id in self._entries:
            raise ValueError(f"task {task.id} already exists")
        now = self.now()
        if task.status.timestamp is None:
            task = task.model_copy(
                update={
                    "status": task.status.model_copy(update={"timestamp": format_timestamp(now)})
                }
            )
        dispatch = dispatch or DispatchState()
        if task.history and dispatch.run_input is None:  # the message that creates the task
            dispatch = attrs.evolve(dispatch, run_input=_last_message(task.history))
        record = TaskRecord(task=task, owner=owner, seq=1, created_at=now, status_at=now,
                            dispatch=dispatch)
        event = StoredEvent(task_id=task.id, seq=1, event=StreamResponse(task=task))
        entry = TaskEntry(
            head=record, committed=record, tail=collections.deque(maxlen=self._tail_size)
        )
        self._entries[task.id] = entry
        write = TaskWrite(
            record=record, events=(event,), expected_seq=None, push_configs=tuple(push_configs)
        )
        try:
            await self._enqueue(entry, write, wait=True)
        except BaseException:
            if (
                entry.committed.seq == 1
                and self._entries.get(task.id) is entry
                and entry.pending == 0
            ):
                # never committed: forget it
                if not entry.tail:
                    del self._entries[task.id]
            raise
        return record

    async def write(
        self,
        task_id: str,
        events: Sequence[StreamResponse] = (),
        *,
        add_history: Sequence[Message] = (),
        dispatch: DispatchState | Callable[[DispatchState], DispatchState] | None = None,
        check: Callable[[TaskRecord], None] | None = None,
        wait: bool = True,
    ) -> TaskRecord:
        """Apply events (and history messages) to a task and log the events.

        `add_history` is what a client sent to continue the task: the last of
        those messages starts its next run and is recorded as its
        `DispatchState.run_input` (what every attempt of that run is given); the
        run's attempts count from zero again (`DispatchState.run_attempts`).

        Raises `protocol.states.IllegalTransition` (nothing is written) if an
        event breaks the lifecycle, KeyError if the task does not exist. `check`
        sees the newest record (including queued writes) first and may raise to
        refuse the write (the dispatcher fences stale attempts this way);
        `dispatch` replaces the task's dispatch state in the same write (a
        callable maps the newest one to its replacement, atomically). With
        `wait=False` it returns once the write is queued: readers see it only
        when it is committed, so nothing unacknowledged leaks either way.
        """
        entry = await self._entry(task_id)
        if entry is None:
            raise KeyError(task_id)
        head = entry.head
        if check is not None:
            check(head)
        task = head.task
        status_at = head.status_at
        stored: list[StoredEvent] = []
        seq = head.seq
        now = self.now()
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
                            status_at=status_at, dispatch=dispatch)
        write = TaskWrite(record=record, events=tuple(stored), expected_seq=head.seq)
        entry.head = record
        await self._enqueue(entry, write, wait=wait)
        return record

    async def _enqueue(self, entry: TaskEntry, write: TaskWrite, *, wait: bool) -> None:
        if not self._running:
            entry.head = entry.committed
            raise StoreClosedError("the task store is not running")
        p = PendingWrite(
            write=write,
            entry=entry,
            generation=entry.generation,
            done=trio.Event() if wait else None,
        )
        entry.pending += 1
        try:
            self._send.send_nowait(p)
        except trio.WouldBlock:
            try:
                await self._send.send(p)
            except BaseException:
                entry.pending -= 1
                entry.generation += 1
                entry.head = entry.committed
                raise
        if wait:
            assert p.done is not None
            await p.done.wait()
            if p.error is not None:
                raise p.error

    # --- reads --------------------------------------------------------------------

    async def _entry(self, task_id: str) -> TaskEntry | None:
        entry = self._entries.get(task_id)
        if entry is not None:
            return entry
        record = await self._backend.get_task(task_id)
        if record is None:
            return None
        entry = self._entries.get(task_id)  # loaded concurrently meanwhile?
        if entry is None:
            entry = TaskEntry(
                head=record, committed=record, tail=collections.deque(maxlen=self._tail_size)
            )
            self._entries[task_id] = entry
            if is_terminal(record.state):
                self._remember_finished(task_id)
        return entry

    async def head(self, task_id: str) -> TaskRecord | None:
        """The newest record of a task, including writes not yet committed.

        For the dispatcher's decisions (claims, fencing), which must see what the
        next write will build on; never show it to a client.
        """
        entry = await self._entry(task_id)
        return None if entry is None else entry.head

    async def get_task(self, task_id: str) -> TaskRecord | None:
        """The committed record of a task, or None."""
        entry = await self._entry(task_id)
        return None if entry is None else entry.committed

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        return await self._backend.list_tasks(query)

    async def wait_record(
        self, task_id: str, predicate: Callable[[TaskRecord], bool]
    ) -> TaskRecord:
        """Wait until the committed record satisfies `predicate`; KeyError if unknown."""
        entry = await self._entry(task_id)
        if entry is None:
            raise KeyError(task_id)
        if predicate(entry.committed):
            return entry.committed
        # Woken only by a commit the predicate holds for, not by every commit.
        watcher = Watcher(predicate)
        entry.watchers.append(watcher)
        try:
            await watcher.event.wait()
        finally:
            entry.watchers.remove(watcher)
        assert watcher.record is not None
        return watcher.record

    async def wait_events(
        self, task_id: str, after_seq: int, *, limit: int = 256
    ) -> list[StoredEvent]:
        """Committed events with seq > after_seq, waiting for at least one.

        Returns [] only when the task is terminal and nothing newer exists.
        KeyError if the task does not exist.
        """
        entry = await self._entry(task_id)
        if entry is None:
            raise KeyError(task_id)
        while entry.committed.seq <= after_seq:
            if is_terminal(entry.committed.state):
                return []
            await _changed(entry).wait()
        tail = entry.tail
        if tail and tail[0].seq <= after_seq + 1:
            start = after_seq + 1 - tail[0].seq
            end = min(len(tail), start + limit)
            upto = entry.committed.seq
            return [tail[i] for i in range(start, end) if tail[i].seq <= upto]
        return await self._backend.read_events(task_id, after_seq, limit)

    async def read_events(
        self, task_id: str, after_seq: int, limit: int = 256
    ) -> list[StoredEvent]:
        """Committed events after `after_seq` without waiting."""
        return await self._backend.read_events(task_id, after_seq, limit)

    async def list_unfinished(self) -> list[TaskRecord]:
        return await self._backend.list_unfinished()

    # --- push configs ---------------------------------------------------------------

    async def put_push_config(self, record: PushConfigRecord) -> None:
        await self._backend.put_push_config(record)

    async def get_push_config(self, task_id: str, config_id: str) -> PushConfigRecord | None:
        return await self._backend.get_push_config(task_id, config_id)

    async def list_push_configs(self, task_id: str) -> list[PushConfigRecord]:
        return await self._backend.list_push_configs(task_id)

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        return await self._backend.delete_push_config(task_id, config_id)


def _last_message(history: Sequence[Message]) -> tuple[int, str]:
    """`DispatchState.run_input` naming the last message of `history`."""
    return len(history) - 1, history[-1].message_id
