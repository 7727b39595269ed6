"""In-memory `TaskBackend`: plain dicts plus sorted indexes.

Used by tests and `--store memory`. Nothing survives the process, but the
semantics (atomic batches, optimistic concurrency, keyset pages) match the
SQLite backend exactly, so code tested against one runs against the other.
Records keep the version their write gave them (there is nothing to migrate:
nothing outlives the process).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import trio
from sortedcontainers import SortedList  # a dependency of trio itself

from actors.store_port import (
    ConflictError,
    PushClaim,
    PushConfigRecord,
    StoredEvent,
    TaskPage,
    TaskQuery,
    TaskRecord,
    TaskWrite,
)
from protocol.models import TaskState
from protocol.states import TERMINAL_STATES

__all__ = ["MemoryBackend", "check_write", "open_memory_backend"]

logger = logging.getLogger(__name__)

UNFINISHED_STATES = (TaskState.SUBMITTED, TaskState.WORKING)

_Key = tuple[float, str]
K = TypeVar("K")


def check_write(write: TaskWrite) -> None:
    """Reject a malformed write (a caller bug, not a conflict) before touching storage.

    Checking here keeps a broken batch from half-corrupting an event log whose
    sequence numbers are the SSE ids clients resume from.
    """
    task_id = write.record.task_id
    if (write.expected_seq is None) != (write.expected_version is None):
        raise ValueError(f"write for task {task_id!r}: expected_seq and expected_version are "
                         "both given (an update) or both None (a create)")
    floor = write.expected_version or 0
    if write.record.version <= floor:
        raise ValueError(f"write for task {task_id!r}: record.version={write.record.version} "
                         f"does not move on from the expected version {floor}")
    seq = 0 if write.expected_seq is None else write.expected_seq
    for event in write.events:
        seq += 1
        if event.seq != seq or event.task_id != task_id:
            raise ValueError(
                f"write for task {task_id!r}: event ({event.task_id!r}, {event.seq}) "
                f"out of place, expected ({task_id!r}, {seq})"
            )
    if write.record.seq != seq:
        raise ValueError(
            f"write for task {task_id!r}: record.seq={write.record.seq} but events end at {seq}"
        )
    for push in write.push_configs:
        if push.config.task_id != task_id or push.config.id is None:
            raise ValueError(f"write for task {task_id!r}: push config with wrong task id or no id")


def _put(table: dict[K, SortedList], value: K, key: _Key) -> None:
    index = table.get(value)
    if index is None:  # not setdefault(value, SortedList()): that builds one every time
        index = table[value] = SortedList()
    index.add(key)


def _drop(table: dict[K, SortedList], value: K, key: _Key) -> None:
    index = table[value]
    index.discard(key)
    if not index:
        del table[value]


class MemoryBackend:
    """`TaskBackend` in plain dicts.

    Every method runs to completion without yielding after its initial
    checkpoint (`commit`'s is a cancellation point only), so a batch is atomic
    with respect to other trio tasks.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, TaskRecord] = {}
        self._events: dict[str, list[StoredEvent]] = {}
        self._push: dict[str, dict[str, PushConfigRecord]] = {}
        self._claims: dict[tuple[str, str], PushClaim] = {}
        # (status_at, task_id) keys, ascending; pages read them backwards.
        self._all = SortedList()
        self._by_owner: dict[str, SortedList] = {}
        self._by_context: dict[str, SortedList] = {}
        self._by_state: dict[TaskState, SortedList] = {}
        self._event_count = 0
        self._closed = False

    # --- writes -------------------------------------------------------------------

    async def commit(self, writes: Sequence[TaskWrite]) -> None:
        """Persist a batch atomically; `ConflictError` if an expectation fails.

        A cancellation point but not a schedule point: the store's committer calls
        this once per batch, and yielding to the scheduler here would cost it a
        second task step per batch for nothing (there is no I/O to wait for)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        # Validate the whole batch against a local view first, then apply: no
        # partial batch is ever visible.
        view: dict[str, tuple[int, int] | None] = {}  # task id -> (version, seq)
        for write in writes:
            check_write(write)
            task_id = write.record.task_id
            if task_id in view:
                current = view[task_id]
            else:
                stored = self._tasks.get(task_id)
                current = None if stored is None else (stored.version, stored.seq)
            if write.expected_seq is None:
                if current is not None:
                    raise ConflictError(f"task {task_id!r} already exists")
            elif current != (write.expected_version, write.expected_seq):
                raise ConflictError(
                    f"task {task_id!r} is at (version, seq) {current}, write expected "
                    f"{(write.expected_version, write.expected_seq)}")
            view[task_id] = (write.record.version, write.record.seq)
        for write in writes:
            self._apply(write)

    def _apply(self, write: TaskWrite) -> None:
        record = write.record
        task_id = record.task_id
        old = self._tasks.get(task_id)
        self._tasks[task_id] = record
        if old is None:
            self._index(record)
        elif old.status_at != record.status_at or old.owner != record.owner or (
                old.task.context_id != record.task.context_id):
            self._unindex(old)
            self._index(record)
        elif old.state != record.state:  # same key, same owner and context: one index moves
            key = (record.status_at, task_id)
            _drop(self._by_state, old.state, key)
            _put(self._by_state, record.state, key)
        # else: every index already holds this record's key where it belongs
        log = self._events.setdefault(task_id, [])
        log.extend(write.events)
        self._event_count += len(write.events)
        for push in write.push_configs:
            self._push.setdefault(task_id, {})[push.config_id] = push

    def _index(self, record: TaskRecord) -> None:
        key = (record.status_at, record.task_id)
        self._all.add(key)
        _put(self._by_owner, record.owner, key)
        _put(self._by_context, record.task.context_id, key)
        _put(self._by_state, record.state, key)

    def _unindex(self, record: TaskRecord) -> None:
        key = (record.status_at, record.task_id)
        self._all.discard(key)
        _drop(self._by_owner, record.owner, key)
        _drop(self._by_context, record.task.context_id, key)
        _drop(self._by_state, record.state, key)

    # --- task reads ---------------------------------------------------------------

    async def get_task(self, task_id: str) -> TaskRecord | None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        return self._tasks.get(task_id)

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        """Tasks matching `query`, newest `status_at` first (ties: task id descending).

        `status_after` is inclusive (status_at >= it), as in the a2a-sdk stores.
        """
        await trio.lowlevel.checkpoint()
        self._check_open()
        if query.page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {query.page_size}")
        # Scan the smallest index that applies; the other filters are checked per row.
        candidates: list[tuple[str, SortedList]] = [("all", self._all)]
        empty = SortedList()
        if query.owner is not None:
            candidates.append(("owner", self._by_owner.get(query.owner, empty)))
        if query.context_id is not None:
            candidates.append(("context", self._by_context.get(query.context_id, empty)))
        if query.state is not None:
            candidates.append(("state", self._by_state.get(query.state, empty)))
        chosen, keys = min(candidates, key=lambda c: len(c[1]))

        def matches(key: _Key) -> bool:
            record = self._tasks[key[1]]
            return (
                (chosen == "owner" or query.owner is None or record.owner == query.owner)
                and (
                    chosen == "context"
                    or query.context_id is None
                    or record.task.context_id == query.context_id
                )
                and (chosen == "state" or query.state is None or record.state == query.state)
            )

        filters = sum(f is not None for f in (query.owner, query.context_id, query.state))
        residual = filters - (chosen != "all")
        # ("" sorts before every id, so this bound keeps status_at == status_after.)
        low = None if query.status_after is None else (query.status_after, "")
        high = None if query.cursor is None else tuple(query.cursor)

        records: list[TaskRecord] = []
        more = False
        for key in keys.irange(low, high, inclusive=(True, False), reverse=True):
            if residual and not matches(key):
                continue
            if len(records) == query.page_size:
                more = True
                break
            records.append(self._tasks[key[1]])
        if residual:
            total = sum(1 for key in keys.irange(low) if matches(key))
        else:
            total = len(keys) - (0 if low is None else keys.bisect_left(low))
        next_cursor = (records[-1].status_at, records[-1].task_id) if more else None
        return TaskPage(records=records, next_cursor=next_cursor, total_size=total)

    async def read_events(self, task_id: str, after_seq: int, limit: int) -> list[StoredEvent]:
        """Up to `limit` events with seq > after_seq, ascending."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        log = self._events.get(task_id)
        if not log or limit <= 0:
            return []
        start = bisect.bisect_right(log, after_seq, key=lambda e: e.seq)
        return log[start : start + limit]

    async def list_unfinished(self) -> list[TaskRecord]:
        """Submitted or working tasks, oldest status change first."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        keys: list[_Key] = []
        for state in UNFINISHED_STATES:
            keys.extend(self._by_state.get(state, ()))
        keys.sort()
        return [self._tasks[task_id] for _, task_id in keys]

    # --- push configs -------------------------------------------------------------

    async def put_push_config(self, record: PushConfigRecord) -> None:
        """Insert or replace; a replaced config keeps its place in creation order."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        self._push.setdefault(record.task_id, {})[record.config_id] = record

    async def get_push_config(self, task_id: str, config_id: str) -> PushConfigRecord | None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        return self._push.get(task_id, {}).get(config_id)

    async def list_push_configs(self, task_id: str) -> list[PushConfigRecord]:
        """Configs of one task, in creation order."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        return list(self._push.get(task_id, {}).values())

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        """True if it existed."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        configs = self._push.get(task_id)
        if configs is None or config_id not in configs:
            return False
        del configs[config_id]
        self._claims.pop((task_id, config_id), None)
        if not configs:
            del self._push[task_id]
        return True

    async def set_push_delivered(self, task_id: str, config_id: str, seq: int, *,
                                 token: str | None = None) -> bool:
        """Record delivery progress; never moves it backwards, ignores unknown configs;
        with `token`, only while that claim holds the config."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        configs = self._push.get(task_id)
        record = None if configs is None else configs.get(config_id)
        if record is None:
            logger.debug("delivery progress for unknown push config %s/%s", task_id, config_id)
            return False
        if token is not None and not self._holds(task_id, config_id, token):
            return False
        if seq > record.delivered_seq:
            configs[config_id] = PushConfigRecord(  # type: ignore[index]
                config=record.config, owner=record.owner, delivered_seq=seq
            )
        return True

    # --- push delivery claims -------------------------------------------------------

    def _holds(self, task_id: str, config_id: str, token: str) -> bool:
        claim = self._claims.get((task_id, config_id))
        return claim is not None and claim.token == token

    async def claim_push_config(self, task_id: str, config_id: str, *, owner: str,
                                token: str, now: float, expires_at: float
                                ) -> PushClaim | None:
        """Take the config if nobody holds it or its claim expired before `now`."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        if config_id not in self._push.get(task_id, {}):
            return None
        held = self._claims.get((task_id, config_id))
        if held is not None and held.expires_at >= now:
            return None
        claim = PushClaim(task_id=task_id, config_id=config_id, owner=owner, token=token,
                          expires_at=expires_at)
        self._claims[(task_id, config_id)] = claim
        return claim

    async def renew_push_claims(self, claims: Sequence[PushClaim], expires_at: float
                                ) -> list[PushClaim]:
        """Extend the claims whose token still holds their config; those, renewed."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        renewed = []
        for claim in claims:
            if self._holds(claim.task_id, claim.config_id, claim.token):
                fresh = PushClaim(task_id=claim.task_id, config_id=claim.config_id,
                                  owner=claim.owner, token=claim.token, expires_at=expires_at)
                self._claims[(claim.task_id, claim.config_id)] = fresh
                renewed.append(fresh)
        return renewed

    async def release_push_claims(self, claims: Sequence[PushClaim], *,
                                  hand_over: bool = False) -> None:
        """Give up the claims whose token still holds; idempotent (one process: nobody
        to hand them over to)."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        for claim in claims:
            if self._holds(claim.task_id, claim.config_id, claim.token):
                del self._claims[(claim.task_id, claim.config_id)]

    async def release_push_claims_of(self, owner: str | None) -> int:
        """Give up every claim of `owner` (None: every claim); how many."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        keys = [k for k, c in self._claims.items() if owner is None or c.owner == owner]
        for key in keys:
            del self._claims[key]
        return len(keys)

    async def get_push_claim(self, task_id: str, config_id: str) -> PushClaim | None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        return self._claims.get((task_id, config_id))

    async def list_claimable_push(self, now: float, *, task_ids: Sequence[str] | None = None,
                                  limit: int = 1000) -> list[PushConfigRecord]:
        """Unheld (or expired) configs that may have more to deliver, oldest first."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        found: list[PushConfigRecord] = []
        for task_id in self._push if task_ids is None else dict.fromkeys(task_ids):
            task = self._tasks.get(task_id)
            if task is None:
                continue
            for config_id, record in self._push.get(task_id, {}).items():
                held = self._claims.get((task_id, config_id))
                if held is not None and held.expires_at >= now:
                    continue
                if task.state not in TERMINAL_STATES or record.delivered_seq < task.seq:
                    found.append(record)
        return found[:limit]

    async def list_pending_push(self) -> list[PushConfigRecord]:
        """Configs whose delivered_seq is behind their task's seq."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        pending: list[PushConfigRecord] = []
        for task_id, configs in self._push.items():
            task = self._tasks.get(task_id)
            if task is None:
                continue
            pending.extend(c for c in configs.values() if c.delivered_seq < task.seq)
        return pending

    # --- lifecycle ----------------------------------------------------------------

    async def aclose(self) -> None:
        """Mark closed so late callers fail loudly instead of writing into the void."""
        await trio.lowlevel.checkpoint()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("task backend is closed")

    def statistics(self) -> dict[str, int]:
        """Sizes, for diagnostics."""
        return {
            "tasks": len(self._tasks),
            "events": self._event_count,
            "push_configs": sum(len(c) for c in self._push.values()),
        }


@asynccontextmanager
async def open_memory_backend() -> AsyncIterator[MemoryBackend]:
    """An empty in-memory backend, closed on exit (symmetry with the durable backends)."""
    backend = MemoryBackend()
    try:
        yield backend
    finally:
        await backend.aclose()
