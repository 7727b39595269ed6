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

Several server processes may share one database (PostgreSQL). What a store
holds in memory is then a cache of rows other replicas write too: every write
is compare-and-set on the row's version, and a backend that is a `ChangeFeed`
reports the other replicas' commits, which `actors.task_sync` turns into
reloads and wake-ups (a stream on one replica follows a task another replica
runs). Other actors hear of those commits through `remote_changes()`:

    with store.remote_changes() as changes:
        while True:
            batch = await changes.wait()  # RemoteChangeBatch
            for change in batch.changes:  # TaskChange(task_id, version, seq)
                record = await store.get_task(change.task_id)  # fresh: reloaded first
            if batch.missed:
                ...  # changes went unreported (the feed reconnected): rescan

New tasks of other replicas are reported too, cached or not. On a backend
without a feed (memory, SQLite: one process) nothing is ever reported.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence

import attrs
import trio

from actors.store_port import (
    ChangeFeed,
    ConflictError,
    DispatchState,
    PushConfigRecord,
    StoredEvent,
    TaskBackend,
    TaskPage,
    TaskQuery,
    TaskRecord,
)
from actors.task_commit import (
    Committer,
    StoreClosedError,
    TaskEntry,
    Watcher,
    merge_writes,
)
from actors.task_sync import RemoteChanges, RemoteSync
from actors.task_writes import DispatchChange, first_write, next_write
from actors.trace_port import StoreSpan, span_or_nothing
from protocol.models import Message, StreamResponse, Task
from protocol.states import is_terminal

__all__ = ["ServerTaskStore", "StoreClosedError", "StoreStatistics", "merge_writes"]

log = logging.getLogger(__name__)


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
    reloads: int = 0
    """Cached tasks reloaded because another process wrote them."""
    remote_changes: int = 0
    """Other processes' commits the change feed reported."""
    found_by_poll: int = 0
    """Changes the feed did not report and the fallback poll found."""


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
    `poll_interval` (seconds) is how often, with a change feed, the cached tasks'
    versions are compared with the stored ones, the fallback for a lost
    notification. `feed` defaults to the backend if it is a `ChangeFeed`.
    `conflict_retries` bounds how often a conflicting write is rebuilt (`write`).
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
        poll_interval: float = 5.0,
        feed: ChangeFeed | None = None,
        conflict_retries: int = 3,
        observe_commit: Callable[[int, float], None] | None = None,
        span: StoreSpan | None = None,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._tail_size = tail_size
        self._cache_size = cache_size
        self._entries: dict[str, TaskEntry] = {}
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._conflict_retries = conflict_retries
        self._committer = Committer(backend, self._remember_finished, write_queue=write_queue,
                                    max_batch=max_batch, observe=observe_commit)
        self._span = span  # tracing on: a span around each create and waited-for write
        if feed is None and isinstance(backend, ChangeFeed):
            feed = backend
        self._sync = None if feed is None else RemoteSync(
            feed, self._entries, self._committer, poll_interval=poll_interval)

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
            queued_writes=self._committer.queued,
            commits=self._committer.commits,
            committed_writes=self._committer.committed_writes,
            failed_commits=self._committer.failed_commits,
            failed_writes=self._committer.failed_writes,
            max_batch=self._committer.biggest_batch,
            reloads=self._committer.reloads,
            remote_changes=0 if self._sync is None else self._sync.notified,
            found_by_poll=0 if self._sync is None else self._sync.found_by_poll,
        )

    def tasks_by_state(self) -> dict[str, int]:
        """The cached tasks by committed state (every unfinished task this process
        serves, and the recently finished ones), counted when asked: for a scrape."""
        counts: dict[str, int] = {}
        for entry in self._entries.values():
            state = entry.committed.state.value
            counts[state] = counts.get(state, 0) + 1
        return counts

    @property
    def shared(self) -> bool:
        """Other processes write this store too (the backend has a change feed)."""
        return self._sync is not None

    @contextlib.contextmanager
    def remote_changes(self, limit: int = 4096) -> Iterator[RemoteChanges]:
        """Subscribe to the commits of other processes; see the module docstring.
        `limit` bounds the tasks waiting to be taken (past it: `missed`)."""
        if self._sync is None:
            yield RemoteChanges(limit)  # nothing to report: one process owns the data
            return
        with self._sync.subscribe(limit) as changes:
            yield changes

    # --- the committer ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the committer (and, with a change feed, `RemoteSync`) until cancelled.
        Started once the feed listens. Writes queued at cancellation are failed."""
        async with trio.open_nursery() as nursery:
            if self._sync is not None:
                await nursery.start(self._sync.run)
            await nursery.start(self._committer.run)
            task_status.started()

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
        """Store a new task; its first log entry (seq 1) is the task itself.
        `ConflictError` if a task of that id exists (another process may have made it)."""
        if task.id in self._entries:
            raise ValueError(f"task {task.id} already exists")
        write = first_write(task, owner=owner, now=self.now(), dispatch=dispatch,
                            push_configs=push_configs)
        record = write.record
        entry = TaskEntry(
            head=record, committed=record, tail=collections.deque(maxlen=self._tail_size)
        )
        self._entries[task.id] = entry
        try:
            with span_or_nothing(self._span, "create", task.id):
                await self._committer.enqueue(entry, write, wait=True)
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
        dispatch: DispatchChange = None,
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

        Other processes may write the task too (replicas on one database). A
        write built on a record one of them has replaced conflicts; with `wait`
        it is then built again on the fresh record, reloaded from the backend
        (`check` and `dispatch` see that record, so fencing holds), up to
        `conflict_retries` times before `ConflictError` reaches the caller. A
        `wait=False` write cannot be rebuilt, its caller having moved on: it is
        lost, and the caller learns so from a later write, which is built on the
        reloaded record (its `check` may find, say, that the lease moved on).
        """
        retries = self._conflict_retries if wait else 0
        for attempt in itertools.count():
            entry = await self._entry(task_id)  # reloaded if the last try conflicted
            if entry is None:
                raise KeyError(task_id)
            if check is not None:
                check(entry.head)
            write = next_write(entry.head, events, now=self.now(), add_history=add_history,
                               dispatch=dispatch)
            entry.head = write.record
            try:
                with span_or_nothing(self._span if wait else None, "write", task_id):
                    await self._committer.enqueue(entry, write, wait=wait)
            except ConflictError as exc:
                if attempt >= retries:
                    raise
                log.info("write conflicted with another process's; building it again on "
                         "the fresh record", extra={"task_id": task_id, "error": repr(exc)})
                continue
            return write.record
        raise AssertionError("unreachable")

    # --- reads --------------------------------------------------------------------

    async def _entry(self, task_id: str) -> TaskEntry | None:
        """The cached task, loaded if it is not cached, reloaded if another process
        wrote it since (`TaskEntry.stale`); None if it does not exist."""
        entry = self._entries.get(task_id)
        if entry is None:
            entry = await self._load(task_id)
        if entry is not None and entry.stale:
            await self._committer.reload([entry])
        return entry

    async def _load(self, task_id: str) -> TaskEntry | None:
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
        # A change reported while the row was being read may be newer than what was read.
        heard = 0 if self._sync is None else self._sync.heard(task_id)
        entry.known_version = max(entry.known_version, record.version, heard)
        return entry

    async def head(self, task_id: str) -> TaskRecord | None:
        """The newest record of a task, including writes not yet committed.

        For the dispatcher's decisions (claims, fencing), which must see what the
        next write will build on; never show it to a client.
        """
        entry = await self._entry(task_id)
        return None if entry is None else entry.head

    def cached_head(self, task_id: str) -> TaskRecord | None:
        """`head` as cached, without I/O (None if not cached); possibly stale."""
        entry = self._entries.get(task_id)
        return None if entry is None else entry.head

    async def heads(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        """`head` of each task that exists: one backend read per task not cached, and
        the stale ones reloaded together (a batch of other replicas' changes)."""
        entries = [e for e in [self._entries.get(t) or await self._load(t) for t in task_ids]
                   if e is not None]
        stale = [e for e in entries if e.stale]
        if stale:
            await self._committer.reload(stale)
        return [e.head for e in entries]

    async def get_task(self, task_id: str) -> TaskRecord | None:
        """The committed record of a task, or None."""
        entry = await self._entry(task_id)
        return None if entry is None else entry.committed

    async def get_task_fresh(self, task_id: str) -> TaskRecord | None:
        """The committed record as the backend has it now: for a decision that a cache
        which has not heard of another process's commit yet would get wrong (a resume
        from an event this replica has not seen). Read once, taken into the cache."""
        entry = self._entries.get(task_id)
        if entry is None:
            return await self.get_task(task_id)  # not cached: read from the backend
        record = await self._backend.get_task(task_id)
        if record is not None and record.version > entry.known_version:
            entry.known_version = record.version
        return await self.get_task(task_id)  # reloaded (and readers woken) if stale

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
