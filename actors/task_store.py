"""ServerTaskStore: the one source of truth for tasks on a server.

Every change to a task goes through `write()`: the event is checked against the
lifecycle, folded into the task's snapshot, given the next sequence number and
queued for the committer. The committer takes whatever has queued up and hands
it to the backend as one atomic batch (group commit), then publishes it: the
committed snapshot moves on and the task's waiters are woken.

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
import logging
import time
from collections.abc import Callable, Sequence

import attrs
import trio

from actors.store_port import (
    BackendUnavailableError,
    DispatchState,
    PushConfigRecord,
    StoredEvent,
    TaskBackend,
    TaskPage,
    TaskQuery,
    TaskRecord,
    TaskWrite,
)
from protocol.models import Message, StreamResponse, Task, format_timestamp
from protocol.states import apply_events, is_terminal

__all__ = ["ServerTaskStore", "StoreClosedError", "StoreStatistics", "merge_writes"]

log = logging.getLogger(__name__)


class StoreClosedError(Exception):
    """The store is not running (not started yet, or shut down)."""


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


@attrs.define(eq=False)
class _Watcher:
    predicate: Callable[[TaskRecord], bool]
    event: trio.Event = attrs.Factory(trio.Event)
    record: TaskRecord | None = None
    """The first committed record the predicate held for."""


@attrs.define(eq=False)
class _Entry:
    head: TaskRecord
    """Snapshot including queued, not yet committed writes."""
    committed: TaskRecord
    tail: collections.deque[StoredEvent]
    changed: trio.Event | None = None
    """Set and dropped at the next commit; created only when someone waits."""
    watchers: list[_Watcher] = attrs.Factory(list)
    """`wait_record` callers: each is woken by the first commit its predicate holds for."""
    pending: int = 0
    generation: int = 0
    """Bumped when a failed commit rolls `head` back: queued writes of an older
    generation were built on the lost state and are refused."""


def merge_writes(writes: list[TaskWrite]) -> list[TaskWrite]:
    """Fold consecutive writes to one task into one write, in order.

    A batch often holds several writes of one task (an agent streaming chunks);
    the backend then stores that task's record once instead of once per write.
    Events, push configs and the expectation of the first write are kept, so the
    merged write means exactly what the sequence meant.
    """
    merged: list[TaskWrite] = []
    last: dict[str, int] = {}
    for w in writes:
        i = last.get(w.record.task_id)
        if i is not None and w.expected_seq == merged[i].record.seq:
            prev = merged[i]
            merged[i] = TaskWrite(
                record=w.record,
                events=prev.events + w.events,
                expected_seq=prev.expected_seq,
                push_configs=prev.push_configs + w.push_configs,
            )
        else:
            last[w.record.task_id] = len(merged)
            merged.append(w)
    return merged


def _backend_down(exc: Exception) -> bool:
    """Whether `exc` says the backend cannot store anything (closed, I/O failing,
    locked), rather than that some write of the batch cannot be stored."""
    return isinstance(exc, BackendUnavailableError | OSError | trio.ClosedResourceError)


def _changed(entry: _Entry) -> trio.Event:
    if entry.changed is None:
        entry.changed = trio.Event()
    return entry.changed


@attrs.define(eq=False)
class _Pending:
    write: TaskWrite
    entry: _Entry
    generation: int
    done: trio.Event | None = None
    """Only for writers that wait for their commit."""
    error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        if self.done is not None:
            self.done.set()


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
        self._send, self._recv = trio.open_memory_channel[_Pending](write_queue)
        self._max_batch = max_batch
        self._tail_size = tail_size
        self._cache_size = cache_size
        self._entries: dict[str, _Entry] = {}
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._running = False
        self._commits = 0
        self._committed_writes = 0
        self._failed_commits = 0
        self._failed_writes = 0
        self._biggest_batch = 0

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
            commits=self._commits,
            committed_writes=self._committed_writes,
            failed_commits=self._failed_commits,
            failed_writes=self._failed_writes,
            max_batch=self._biggest_batch,
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
                await self._commit(batch)
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

    async def _commit(self, batch: list[_Pending]) -> None:
        live = self._current(batch)
        if not live:
            return
        self._biggest_batch = max(self._biggest_batch, len(live))
        with trio.CancelScope(shield=True):
            await self._store(live)

    def _current(self, writes: list[_Pending]) -> list[_Pending]:
        """The writes still built on their task's state; the others (queued on top of
        a write that failed to commit) are refused here."""
        live = []
        for p in writes:
            if p.generation != p.entry.generation:
                p.entry.pending -= 1
                p.finish(StoreClosedError("an earlier write to this task failed to commit"))
            else:
                live.append(p)
        return live

    async def _store(self, writes: list[_Pending]) -> None:
        """Commit `writes` as one batch; if the backend refuses it, find the writes it
        cannot store so that only their writers get the error.

        One client's bad write (data the backend cannot serialise, a conflict) must not
        fail every other writer it happened to share a batch with. The search bisects:
        each half is committed on its own, in order, so a task's writes keep their
        order and a write queued on top of one that failed is refused (`_current`).
        Finding k bad writes among n costs about 2·k·log2(n) backend calls, paid only
        when a batch fails. An error that says the backend cannot store anything
        (`_backend_down`) fails the batch at once: asking it again per half would only
        repeat the failure, each time after its timeout.
        """
        try:
            await self._backend.commit(merge_writes([p.write for p in writes]))
        except Exception as exc:
            self._failed_commits += 1
            if len(writes) == 1 or _backend_down(exc):
                self._fail(writes, exc)
                return
            log.warning("task store commit failed; committing its writes in smaller batches",
                        extra={"writes": len(writes), "error": repr(exc)})
            half = len(writes) // 2
            await self._store(writes[:half])
            rest = self._current(writes[half:])
            if rest:
                await self._store(rest)
            return
        self._publish(writes)

    def _fail(self, writes: list[_Pending], exc: Exception) -> None:
        """The writes were not stored: each task's head rolls back to what is."""
        self._failed_writes += len(writes)
        log.error("task store write failed", extra={
            "writes": len(writes), "task_ids": sorted({p.write.record.task_id for p in writes}),
            "error": repr(exc)})
        for p in writes:
            entry = p.entry
            entry.pending -= 1
            if entry.generation == p.generation:
                entry.generation += 1
                entry.head = entry.committed
            p.finish(exc)

    def _publish(self, writes: list[_Pending]) -> None:
        """The writes are stored: move each task's committed state on and wake its readers."""
        self._commits += 1
        self._committed_writes += len(writes)
        woken: dict[int, _Entry] = {}
        for p in writes:
            entry = p.entry
            entry.pending -= 1
            entry.committed = p.write.record
            entry.tail.extend(p.write.events)
            for watcher in entry.watchers:  # each write of the batch, as committed
                if watcher.record is None and watcher.predicate(entry.committed):
                    watcher.record = entry.committed
                    watcher.event.set()
            woken[id(entry)] = entry
            p.finish()
        for entry in woken.values():
            if entry.changed is not None:
                entry.changed.set()
                entry.changed = None
            if is_terminal(entry.committed.state) and entry.pending == 0:
                self._remember_finished(entry.committed.task_id)

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
        entry = _Entry(
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
        `DispatchState.run_input` (what every attempt of that run is given).

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
        if add_history:
            assert task.history is not None
            dispatch = attrs.evolve(dispatch, run_input=_last_message(task.history))
        record = TaskRecord(task=task, owner=head.owner, seq=seq, created_at=head.created_at,
                            status_at=status_at, dispatch=dispatch)
        write = TaskWrite(record=record, events=tuple(stored), expected_seq=head.seq)
        entry.head = record
        await self._enqueue(entry, write, wait=wait)
        return record

    async def _enqueue(self, entry: _Entry, write: TaskWrite, *, wait: bool) -> None:
        if not self._running:
            entry.head = entry.committed
            raise StoreClosedError("the task store is not running")
        p = _Pending(
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

    async def _entry(self, task_id: str) -> _Entry | None:
        entry = self._entries.get(task_id)
        if entry is not None:
            return entry
        record = await self._backend.get_task(task_id)
        if record is None:
            return None
        entry = self._entries.get(task_id)  # loaded concurrently meanwhile?
        if entry is None:
            entry = _Entry(
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
        watcher = _Watcher(predicate)
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
