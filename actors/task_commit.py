"""The task store's committer: group commit, and a bad write failing alone.

`ServerTaskStore` (actors/task_store.py) folds each write into its task's
in-memory head and queues it; the `Committer` takes whatever has queued up and
hands it to the backend as one atomic batch. Only when the backend has stored it
does a task's committed state move on and are its readers woken; when it fails,
the task's head rolls back to what is stored, and writes queued on top of the
lost state are refused (their task's `generation` moved on).

A batch the backend refuses is searched for the writes it cannot store, so that
one client's bad write (data that cannot be serialised, a conflict) never fails
the other writers it happened to share a batch with.

The committer is also the one place a task's committed state moves to a record
another process wrote (`reload`, for a task the store's cache holds at an older
version). A reload holds the committer's lock, so it never runs while one of this
process's own commits is in flight: otherwise a reload could read this process's
own write before its commit returned and take it for someone else's.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence

import attrs
import trio

from actors.store_port import (
    BackendUnavailableError,
    ConflictError,
    StoredEvent,
    TaskBackend,
    TaskRecord,
    TaskWrite,
)
from protocol.states import is_terminal

__all__ = ["StoreClosedError", "merge_writes"]

log = logging.getLogger("actors.task_store")  # the store's own log: one place to look


class StoreClosedError(Exception):
    """The store is not running (not started yet, or shut down)."""


@attrs.define(eq=False)
class Watcher:
    """A `wait_record` caller: woken by the first commit its predicate holds for."""

    predicate: Callable[[TaskRecord], bool]
    event: trio.Event = attrs.Factory(trio.Event)
    record: TaskRecord | None = None
    """The first committed record the predicate held for."""


@attrs.define(eq=False)
class TaskEntry:
    """One task as the store holds it in memory."""

    head: TaskRecord
    """Snapshot including queued, not yet committed writes."""
    committed: TaskRecord
    tail: collections.deque[StoredEvent]
    changed: trio.Event | None = None
    """Set and dropped at the next commit; created only when someone waits."""
    watchers: list[Watcher] = attrs.Factory(list)
    """`wait_record` callers: each is woken by the first commit its predicate holds for."""
    pending: int = 0
    generation: int = 0
    """Bumped when a failed commit rolls `head` back, or a reload replaces it: queued
    writes of an older generation were built on a state that is gone and are refused."""
    refused_by_conflict: bool = False
    """Why the generation last moved on: another writer's commit (the refused writes
    get `ConflictError`, which a waiting writer rebuilds on the fresh record), or a
    failed commit of this process's (they get `StoreClosedError`)."""
    known_version: int = 0
    """The newest version of the task this process has heard of (its own commits, a
    change feed, a conflict). Above `committed.version`: the cache is stale, and the
    task is reloaded before it is next read or written."""

    @property
    def stale(self) -> bool:
        return self.known_version > self.committed.version

    def refusal(self) -> Exception:
        """The error for a write queued on top of a state that is gone."""
        if self.refused_by_conflict:
            return ConflictError(f"task {self.committed.task_id!r} was changed by another "
                                 "writer before an earlier write of this process to it")
        return StoreClosedError("an earlier write to this task failed to commit")


@attrs.define(eq=False)
class PendingWrite:
    """A queued write and the writer waiting for it."""

    write: TaskWrite
    entry: TaskEntry
    generation: int
    done: trio.Event | None = None
    """Only for writers that wait for their commit."""
    error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        if self.done is not None:
            self.done.set()


def merge_writes(writes: list[TaskWrite]) -> list[TaskWrite]:
    """Fold consecutive writes to one task into one write, in order.

    A batch often holds several writes of one task (an agent streaming chunks);
    the backend then stores that task's record once instead of once per write.
    A write is folded into the previous one of its task when it was built on that
    one's record (it expects that record's version). Events, push configs and the
    expectations of the first write are kept, and the last record (whose version
    counts every folded write), so the merged write means exactly what the
    sequence meant.
    """
    merged: list[TaskWrite] = []
    last: dict[str, int] = {}
    for w in writes:
        i = last.get(w.record.task_id)
        if i is not None and w.expected_version == merged[i].record.version:
            prev = merged[i]
            merged[i] = TaskWrite(
                record=w.record,
                events=prev.events + w.events,
                expected_seq=prev.expected_seq,
                expected_version=prev.expected_version,
                push_configs=prev.push_configs + w.push_configs,
            )
        else:
            last[w.record.task_id] = len(merged)
            merged.append(w)
    return merged


def backend_down(exc: Exception) -> bool:
    """Whether `exc` says the backend cannot store anything (closed, I/O failing,
    locked), rather than that some write of the batch cannot be stored."""
    return isinstance(exc, BackendUnavailableError | OSError | trio.ClosedResourceError)


class Committer:
    """Commits batches of queued writes and publishes what was stored.

    `on_finished` is called with the id of a task whose committed state is
    terminal and has no write pending (the store then caches it as finished).
    `write_queue` bounds the writes waiting (backpressure on the writers when the
    backend falls behind); `max_batch` bounds one commit.
    """

    def __init__(self, backend: TaskBackend, on_finished: Callable[[str], None], *,
                 write_queue: int, max_batch: int,
                 observe: Callable[[int, float], None] | None = None) -> None:
        self._backend = backend
        self._observe = observe
        """Told (writes, seconds) of each batch committed: the store's metrics."""
        self._on_finished = on_finished
        self._send, self._recv = trio.open_memory_channel[PendingWrite](write_queue)
        self._max_batch = max_batch
        self._running = False
        self._lock = trio.Lock()
        """Held while a batch is being committed and while reloads are read and applied."""
        self.commits = 0
        self.committed_writes = 0
        self.failed_commits = 0
        """Backend commits that failed, each try of a batch being searched included."""
        self.failed_writes = 0
        self.biggest_batch = 0
        self.reloads = 0
        """Records another process wrote, taken into the cache."""

    @property
    def queued(self) -> int:
        return self._send.statistics().current_buffer_used

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Commit what is queued, a batch at a time, until cancelled; then fail what is
        still queued."""
        self._running = True
        task_status.started()
        try:
            while True:
                batch = [await self._recv.receive()]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._recv.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self.commit(batch)
        finally:
            self._running = False
            exc = StoreClosedError("the task store shut down")
            while True:
                try:
                    p = self._recv.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
                p.finish(exc)

    async def enqueue(self, entry: TaskEntry, write: TaskWrite, *, wait: bool) -> None:
        """Queue a write built on `entry.head` (which it has become); with `wait`, until
        it is committed, raising what made it fail."""
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
                entry.refused_by_conflict = False
                entry.head = entry.committed
                raise
        if wait:
            assert p.done is not None
            await p.done.wait()
            if p.error is not None:
                raise p.error

    async def commit(self, batch: list[PendingWrite]) -> None:
        """Store a batch (shielded: once handed to the backend, a write's outcome must
        reach its writer) and finish each write with its outcome."""
        with trio.CancelScope(shield=True):
            try:  # a free lock taken without a schedule point: the usual case
                self._lock.acquire_nowait()
            except trio.WouldBlock:  # a reload holds it
                await self._lock.acquire()
            try:
                live = self._current(batch)
                if not live:
                    return
                self.biggest_batch = max(self.biggest_batch, len(live))
                started = trio.current_time()
                await self._store(live)
                if self._observe is not None:
                    self._observe(len(live), trio.current_time() - started)
            finally:
                self._lock.release()

    def _current(self, writes: list[PendingWrite]) -> list[PendingWrite]:
        """The writes still built on their task's state; the others (queued on top of
        a write that failed to commit) are refused here."""
        live = []
        for p in writes:
            if p.generation != p.entry.generation:
                p.entry.pending -= 1
                p.finish(p.entry.refusal())
            else:
                live.append(p)
        return live

    async def _store(self, writes: list[PendingWrite]) -> None:
        """Commit `writes` as one batch; if the backend refuses it, find the writes it
        cannot store so that only their writers get the error.

        The search bisects: each half is committed on its own, in order, so a task's
        writes keep their order and a write queued on top of one that failed is
        refused (`_current`). Finding k bad writes among n costs about 2·k·log2(n)
        backend calls, paid only when a batch fails. An error that says the backend
        cannot store anything (`backend_down`) fails the batch at once: asking again
        per half would only repeat the failure, each time after its timeout.
        """
        try:
            await self._backend.commit(merge_writes([p.write for p in writes]))
        except Exception as exc:
            self.failed_commits += 1
            if len(writes) == 1 or backend_down(exc):
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

    def _fail(self, writes: list[PendingWrite], exc: Exception) -> None:
        """The writes were not stored: each task's head rolls back to what is."""
        self.failed_writes += len(writes)
        conflict = isinstance(exc, ConflictError)
        # A conflict is another replica's write landing first: the writer rebuilds
        # its write on the fresh record or is told; not an error of the store.
        log.log(logging.INFO if conflict else logging.ERROR,
                "task store write conflicted" if conflict else "task store write failed",
                extra={"writes": len(writes),
                       "task_ids": sorted({p.write.record.task_id for p in writes}),
                       "error": repr(exc)})
        for p in writes:
            entry = p.entry
            entry.pending -= 1
            if entry.generation == p.generation:
                entry.generation += 1
                entry.refused_by_conflict = conflict
                entry.head = entry.committed
            if conflict and p.write.expected_version is not None:
                # Someone else wrote the task: what is cached is stale.
                entry.known_version = max(entry.known_version, entry.committed.version + 1)
            p.finish(exc)

    def _publish(self, writes: list[PendingWrite]) -> None:
        """The writes are stored: move each task's committed state on and wake its readers."""
        self.commits += 1
        self.committed_writes += len(writes)
        woken: dict[int, TaskEntry] = {}
        for p in writes:
            entry = p.entry
            entry.pending -= 1
            entry.committed = p.write.record
            entry.tail.extend(p.write.events)
            _wake_watchers(entry)  # each write of the batch, as committed
            woken[id(entry)] = entry
            p.finish()
        for entry in woken.values():
            self._woken(entry)

    def _woken(self, entry: TaskEntry) -> None:
        """The entry's committed record moved on: wake its subscribers."""
        if entry.changed is not None:
            entry.changed.set()
            entry.changed = None
        if is_terminal(entry.committed.state) and entry.pending == 0:
            self._on_finished(entry.committed.task_id)

    # --- records other processes wrote --------------------------------------------------

    async def reload(self, entries: Sequence[TaskEntry]) -> None:
        """Read the stale ones of `entries` again and take in what another process wrote.

        Under the lock, so no commit of this process's is in flight meanwhile: a row
        read at a version above the entry's committed one was then written by someone
        else. Writes of this process still queued for such a task were built on the
        state it replaced (they would conflict) and are refused with `ConflictError`;
        a writer waiting for one rebuilds it on the reloaded record.
        """
        async with self._lock:
            stale = [entry for entry in entries if entry.stale]
            if not stale:
                return
            if len(stale) == 1:
                record = await self._backend.get_task(stale[0].committed.task_id)
                if record is not None:
                    self._adopt(stale[0], record)
                return
            read: dict[int, TaskRecord | Exception | None] = {}

            async def load(entry: TaskEntry) -> None:
                try:
                    read[id(entry)] = await self._backend.get_task(entry.committed.task_id)
                except Exception as exc:  # raised below as itself, not in a group
                    read[id(entry)] = exc

            async with trio.open_nursery() as nursery:
                for entry in stale:
                    nursery.start_soon(load, entry)
            errors = []
            for entry in stale:
                got = read[id(entry)]
                if isinstance(got, Exception):
                    errors.append(got)  # still stale: reloaded when next read
                elif got is not None:
                    self._adopt(entry, got)
            if errors:
                raise errors[0]

    def _adopt(self, entry: TaskEntry, record: TaskRecord) -> None:
        """Make `record`, read from the backend, the entry's committed and head state if
        it is newer, and wake the task's readers as a commit of this process would.
        A newer version heard of meanwhile (`known_version`) keeps the entry stale."""
        entry.known_version = max(entry.known_version, record.version)
        if record.version <= entry.committed.version:
            return
        self.reloads += 1
        if record.seq != entry.committed.seq:
            entry.tail.clear()  # the events in between are not in memory: the backend has them
        if entry.pending:
            entry.generation += 1
            entry.refused_by_conflict = True
        log.debug("task changed by another process", extra={
            "task_id": record.task_id, "version": record.version, "seq": record.seq,
            "was_version": entry.committed.version})
        entry.committed = entry.head = record
        _wake_watchers(entry)
        self._woken(entry)


def _wake_watchers(entry: TaskEntry) -> None:
    """Wake the `wait_record` callers whose predicate the committed record satisfies."""
    for watcher in entry.watchers:
        if watcher.record is None and watcher.predicate(entry.committed):
            watcher.record = entry.committed
            watcher.event.set()
