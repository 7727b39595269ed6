"""Keeping a server's task cache in step with the other replicas on its database.

Each `ServerTaskStore` caches the tasks it serves (their committed record, a short
tail of events, the readers waiting on them). With several server processes on one
database, another replica may commit a write to a task this one caches. The
backend's change feed (`actors.store_port.ChangeFeed`; PostgreSQL: LISTEN/NOTIFY)
reports each such commit, and `RemoteSync` acts on it:

* a cached task whose stored version is now above its committed one is marked
  stale (`TaskEntry.known_version`); if readers wait on it (`wait_events`
  subscribers, `wait_record` watchers) it is reloaded at once and they are woken,
  exactly as a commit of this process wakes them; otherwise it is reloaded when it
  is next read or written (`ServerTaskStore._entry`);
* every change, cached task or not, is passed on to `RemoteChanges` subscribers
  (the dispatcher will learn of new, cancelled and claimed tasks this way).

Notifications can be lost while the feed's connection is down. The feed says
`resync` when it is back, and at that point, and every `poll_interval` as the
fallback for anything else, the cached tasks' stored versions are compared with
what is cached (`ChangeFeed.task_versions`), so a missed change is found within
one interval.

Nothing here waits on a subscriber: changes are coalesced per task (the newest
wins) in a bounded dict, for this actor and for each subscriber; one that
overflows is told it `missed` changes (and should rescan) instead of growing.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import attrs
import trio

from actors.store_port import ChangeFeed, TaskChange
from actors.task_commit import Committer, TaskEntry, backend_down

__all__ = ["RemoteChangeBatch", "RemoteChanges"]

log = logging.getLogger("actors.task_store")  # the store's own log: one place to look

POLL_CHUNK = 1000
"""Task ids per `task_versions` call of a poll (one statement each)."""


@attrs.frozen
class RemoteChangeBatch:
    """What a `RemoteChanges` subscriber gets: the changes since it last looked."""

    changes: tuple[TaskChange, ...]
    """The newest change of each task, in the order the tasks were first reported."""
    missed: bool
    """Changes may have gone unreported (the feed reconnected, or this subscriber fell
    more than its limit behind): rescan whatever the subscriber keeps track of."""


class RemoteChanges:
    """One subscriber's view of other processes' commits (`ServerTaskStore.remote_changes`).

    Level-triggered and bounded: changes wait here coalesced per task, up to `limit`
    tasks; past that the subscriber is told it `missed` some instead.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending: dict[str, TaskChange] = {}
        self._missed = False
        self._event = trio.Event()

    def _add(self, changes: Sequence[TaskChange], missed: bool) -> None:
        for change in changes:
            if not _coalesce(self._pending, change, self._limit):
                missed = True
        self._missed = self._missed or missed
        if self._pending or self._missed:
            self._event.set()

    async def wait(self) -> RemoteChangeBatch:
        """The changes since the last call, waiting for at least one (or a `missed`)."""
        while not self._pending and not self._missed:
            self._event = trio.Event()
            await self._event.wait()
        batch = RemoteChangeBatch(changes=tuple(self._pending.values()), missed=self._missed)
        self._pending = {}
        self._missed = False
        return batch


def _coalesce(pending: dict[str, TaskChange], change: TaskChange, limit: int) -> bool:
    """Keep the newer of `change` and what `pending` holds for its task; False if it
    is a task more than `pending` may hold."""
    old = pending.get(change.task_id)
    if old is None:
        if len(pending) >= limit:
            return False
        pending[change.task_id] = change
    elif change.version > old.version:
        pending[change.task_id] = change
    return True


def _waited_on(entry: TaskEntry) -> bool:
    return entry.changed is not None or bool(entry.watchers)


class RemoteSync:
    """Follows the backend's change feed for a `ServerTaskStore`; see the module docstring.

    `entries` is the store's cache (read, never resized here); reloads go through the
    store's `committer`. `max_pending` bounds the changes noted and not yet handled.
    """

    def __init__(self, feed: ChangeFeed, entries: dict[str, TaskEntry], committer: Committer,
                 *, poll_interval: float, max_pending: int = 4096) -> None:
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0, got {poll_interval}")
        self._feed = feed
        self._entries = entries
        self._committer = committer
        self._poll_interval = poll_interval
        self._max_pending = max_pending
        self._pending: dict[str, TaskChange] = {}
        self._resync = False
        self._wakeup = trio.Event()
        self._heard: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._subscribers: set[RemoteChanges] = set()
        self.notified = 0
        """Changes the feed reported."""
        self.polls = 0
        self.found_by_poll = 0
        """Cached tasks a poll found newer than anything the feed had reported."""

    # --- the feed's listener (must not block) --------------------------------------------

    def changed(self, change: TaskChange) -> None:
        self.notified += 1
        self._hear(change)
        if not _coalesce(self._pending, change, self._max_pending):
            self._resync = True  # too many to track one by one: compare versions instead
        self._wakeup.set()

    def resync(self) -> None:
        self._resync = True
        self._wakeup.set()

    def _hear(self, change: TaskChange) -> None:
        if change.version > self._heard.get(change.task_id, 0):
            self._heard[change.task_id] = change.version
        self._heard.move_to_end(change.task_id)
        while len(self._heard) > self._max_pending:
            self._heard.popitem(last=False)

    def heard(self, task_id: str) -> int:
        """The newest version reported for the task lately (0 if none): a task the store
        loads while its change is being reported is then known to be stale at once."""
        return self._heard.get(task_id, 0)

    # --- subscribers ---------------------------------------------------------------------

    @contextmanager
    def subscribe(self, limit: int) -> Iterator[RemoteChanges]:
        sub = RemoteChanges(limit)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    # --- the actor -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the feed until cancelled; started once the feed is listening."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self._feed.run_change_feed, self)
            task_status.started()
            next_poll = trio.current_time() + self._poll_interval
            while True:
                with trio.move_on_at(next_poll):
                    await self._wakeup.wait()
                self._wakeup = trio.Event()
                changes, self._pending = self._pending, {}
                missed, self._resync = self._resync, False
                if missed or trio.current_time() >= next_poll:
                    next_poll = trio.current_time() + self._poll_interval
                    for change in await self._poll():
                        old = changes.get(change.task_id)
                        if old is None or change.version > old.version:
                            changes[change.task_id] = change
                await self._apply(list(changes.values()))
                for sub in self._subscribers:
                    sub._add(list(changes.values()), missed)

    async def _poll(self) -> list[TaskChange]:
        """The cached tasks whose stored version is above the committed one (newly found
        or known but not reloaded yet, e.g. because a reload failed)."""
        self.polls += 1
        ids = list(self._entries)
        found: list[TaskChange] = []
        for start in range(0, len(ids), POLL_CHUNK):
            try:
                stored = await self._feed.task_versions(ids[start:start + POLL_CHUNK])
            except Exception as exc:
                if not backend_down(exc):
                    raise
                log.warning("cannot compare cached tasks with the store; next try in %.1f s",
                            self._poll_interval, extra={"error": repr(exc)})
                return found
            for change in stored:
                entry = self._entries.get(change.task_id)
                if entry is None or change.version <= entry.committed.version:
                    continue
                found.append(change)
                if change.version > entry.known_version:
                    self.found_by_poll += 1
                    log.info("found a task changed by another process by polling", extra={
                        "task_id": change.task_id, "version": change.version,
                        "cached_version": entry.committed.version})
        return found

    async def _apply(self, changes: Sequence[TaskChange]) -> None:
        """Mark cached tasks stale; reload (and wake) the ones readers wait on."""
        waited: list[TaskEntry] = []
        for change in changes:
            entry = self._entries.get(change.task_id)
            if entry is None:
                continue
            entry.known_version = max(entry.known_version, change.version)
            if entry.stale and _waited_on(entry):
                waited.append(entry)
        if not waited:
            return
        try:
            await self._committer.reload(waited)
        except Exception as exc:
            if not backend_down(exc):
                raise
            # still marked stale: reloaded when next read, or found again by the poll
            log.warning("cannot reload tasks changed by other processes",
                        extra={"tasks": len(waited), "error": repr(exc)})
