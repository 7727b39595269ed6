"""The port between the ServerTaskStore actor and a storage backend.

A task is a record (the folded snapshot) plus an append-only event log with a
per-task sequence number. Backends only persist and query; the actor owns
ordering, state-machine checks, batching and wake-ups.

The shape is chosen so that a backend shared by several server processes
(PostgreSQL) fits without changing callers:

* every write names the version of the task's row it was built on
  (`TaskWrite.expected_version`; every write bumps it, one without events too)
  and a backend refuses a write whose expectation does not hold with
  `ConflictError` instead of overwriting (compare-and-set): two processes that
  both read version 4 cannot both store version 5, so a claim (a lease, no
  event) is never lost to another replica's claim;
* pages are addressed by an opaque cursor, never by offset;
* push delivery progress is stored per config, so any replica can resume it,
  and each config is delivered by one replica at a time: the one holding its
  ownership claim (`PushClaim`), whose token fences the progress it records;
* a backend several processes share may also be a `ChangeFeed`: it tells each
  process of the writes the others commit (PostgreSQL: LISTEN/NOTIFY), so a
  process's cache of a task can follow them at once instead of by polling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import trio

from protocol.models import StreamResponse, Task, TaskPushNotificationConfig, TaskState

__all__ = [
    "BackendUnavailableError",
    "ChangeFeed",
    "ChangeListener",
    "ConflictError",
    "DispatchState",
    "Lease",
    "Route",
    "PushClaim",
    "PushConfigRecord",
    "StoredEvent",
    "TaskBackend",
    "TaskChange",
    "TaskPage",
    "TaskQuery",
    "TaskRecord",
    "TaskWrite",
]


class ConflictError(Exception):
    """A write's expected version (or sequence number) did not match the stored one:
    another writer changed the task first, or a create found the task existing."""


class BackendUnavailableError(Exception):
    """The backend cannot store anything right now (its file is locked, its disk full
    or failing): no write of the batch is at fault.

    Any other error from `commit` may be caused by one write (data that cannot be
    serialised, a conflict), and the store then commits the batch's writes in smaller
    batches to find it. Raising this instead (as OSError and
    `trio.ClosedResourceError` do) spares a backend that is down that search.
    """


@attrs.frozen
class Route:
    """Where a task may run: read from the sent message's metadata."""

    priority: int = 0
    """Higher runs first."""
    capabilities: tuple[str, ...] = ()
    """Every one of these must be among the worker's capabilities."""
    worker: str | None = None
    """Only this worker (by id or name) may claim the task."""
    agent: str | None = None
    """Only a worker serving this agent may claim the task."""


@attrs.frozen
class Lease:
    """A worker's claim on a task, valid until `expires_at` unless renewed."""

    worker_id: str
    attempt_id: str
    expires_at: float
    """Epoch seconds (the store's clock)."""
    in_process: bool = False
    """Held by a worker inside the server process: it ends with that process, so a
    restarted server queues the task again at once instead of waiting out the lease."""
    replica: str | None = None
    """Which server replica that process was (`ServerConfig.replica_id`), for an
    in-process lease: with several replicas on one store, a restarted replica ends at
    once only its own previous incarnation's leases, and leaves the other replicas'
    (still running, or to expire) alone. None: not recorded (older rows)."""


@attrs.frozen
class DispatchState:
    """How a task is routed and who, if anyone, holds it."""

    route: Route = Route()
    attempts: int = 0
    """How many times the task has been claimed, over its whole life."""
    lease: Lease | None = None
    last_attempt_id: str | None = None
    """The latest attempt, kept after its lease ends so a repeated release is recognised."""
    request_metadata: dict[str, Any] | None = attrs.field(default=None, eq=True, hash=False)
    """The `metadata` of the SendMessage that (re)started the task, for the agent."""
    accepted_output_modes: tuple[str, ...] = ()
    output_seq: int = 0
    """The highest worker-link output frame applied for the current attempt: kept
    in the same write as that frame's events, so a frame resent after a server
    restart is recognised and not applied twice. Reset by each claim."""
    output_bytes: int = 0
    """The output the current attempt's frames added (`protocol.output_size.
    output_bytes`), written with them: what the per-task output cap is checked
    against, across restarts. Reset by each claim."""
    claim_artifacts: tuple[tuple[str, int], ...] | None = None
    """(artifact id, part count) of each artifact the task had when the current
    attempt was claimed. If that attempt's lease expires, its partial output is
    rolled back to this before the task is queued again, so the retry's output
    replaces it instead of landing beside it. None: not recorded (older rows)."""
    run_input: tuple[int, str] | None = None
    """(index in the task's history, message id) of the message that started the
    current run: the one that created the task, or the last one a client sent to
    continue it. Every attempt of the run, a retry too, runs on that message with
    the history before it, not on the statuses earlier attempts pushed into the
    history. Set by the ServerTaskStore; None: not recorded (older rows)."""
    run_attempts: int = 0
    """How many times the current run has been claimed: what the retry limit
    (`max_attempts`) counts, so that each run (the one the creating message
    started, and each one a client's continuation starts) gets all of its
    attempts. Reset with `run_input` by the ServerTaskStore; counted with
    `attempts` by each claim. A row from before it was kept reads `attempts`."""
    agent_state: dict[str, Any] | None = attrs.field(default=None, eq=True, hash=False)
    """The state the agent left when it paused, taken out of its client-visible status
    message (`protocol.agent_state`): ``{"messageId", "state"}``; given back to the
    worker of the next run only."""
    cancel_requested: bool = False
    """A client asked to cancel the current attempt (CancelTask, on any replica): the
    replica its worker is connected to pushes the request to it, heartbeat replies
    repeat it, and a lease that runs out ends the task canceled rather than queued
    again. Stored with the task so that it reaches every replica and survives a
    restart. Reset by each claim."""
    trace_parent: str | None = attrs.field(default=None, eq=False)
    """The W3C `traceparent` of the request that (re)started the run (tracing on):
    the grant carries it to the worker, whose session continues that trace."""

    def to_json(self) -> dict[str, object]:
        return attrs.asdict(self, recurse=True)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> DispatchState:
        route = data.get("route") or {}
        lease = data.get("lease")
        assert isinstance(route, dict)
        return cls(
            route=Route(
                priority=int(route.get("priority", 0)),
                capabilities=tuple(route.get("capabilities", ())),
                worker=route.get("worker"),
                agent=route.get("agent"),
            ),
            attempts=int(data.get("attempts", 0)),  # type: ignore[call-overload]
            lease=Lease(**lease) if isinstance(lease, dict) else None,
            last_attempt_id=data.get("last_attempt_id"),  # type: ignore[arg-type]
            request_metadata=data.get("request_metadata"),  # type: ignore[arg-type]
            accepted_output_modes=tuple(data.get("accepted_output_modes") or ()),  # type: ignore[arg-type]
            output_seq=int(data.get("output_seq", 0)),  # type: ignore[call-overload]
            output_bytes=int(data.get("output_bytes", 0)),  # type: ignore[call-overload]
            claim_artifacts=_claim_artifacts(data.get("claim_artifacts")),
            run_input=_run_input(data.get("run_input")),
            run_attempts=int(data.get("run_attempts",  # type: ignore[call-overload]
                                      data.get("attempts", 0))),
            cancel_requested=bool(data.get("cancel_requested", False)),
            agent_state=data.get("agent_state"),  # type: ignore[arg-type]
            trace_parent=data.get("trace_parent"),  # type: ignore[arg-type]
        )


def _run_input(value: object) -> tuple[int, str] | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    return int(value[0]), str(value[1])


def _claim_artifacts(value: object) -> tuple[tuple[str, int], ...] | None:
    if not isinstance(value, list | tuple):
        return None
    return tuple((str(pair[0]), int(pair[1])) for pair in value)


@attrs.frozen
class TaskRecord:
    """The current snapshot of one task and where its log stands."""

    task: Task
    owner: str
    """Principal that created the task; "" when auth is off."""
    seq: int
    """Sequence number of the newest event in the task's log (the first event is 1)."""
    created_at: float
    """Epoch seconds when the task was created."""
    status_at: float
    """Epoch seconds of the latest status change: ListTasks order and filter key."""
    dispatch: DispatchState = DispatchState()
    """Routing, attempts and the current lease (see actors.dispatcher)."""
    version: int = 1
    """The row's version: 1 as created, one more for every write since, whether it
    carried events or only dispatch state. Writes compare-and-set on it; `seq`
    counts only events (SSE ids) and so cannot tell two event-less writes apart."""

    @property
    def task_id(self) -> str:
        return self.task.id

    @property
    def state(self) -> TaskState:
        return self.task.status.state


@attrs.frozen
class StoredEvent:
    """One entry of a task's log."""

    task_id: str
    seq: int
    event: StreamResponse


@attrs.frozen
class PushConfigRecord:
    """A push notification config and how far delivery has got."""

    config: TaskPushNotificationConfig
    """Has `id` and `task_id` set."""
    owner: str
    delivered_seq: int = 0
    """Events up to and including this sequence number were acknowledged by the receiver."""

    @property
    def task_id(self) -> str:
        assert self.config.task_id is not None
        return self.config.task_id

    @property
    def config_id(self) -> str:
        assert self.config.id is not None
        return self.config.id


@attrs.frozen
class PushClaim:
    """A replica's ownership of one push config's delivery, valid until `expires_at`
    unless renewed (`actors.push_claims`). Each claim has a new unique `token`: the
    fence that refuses a replica which lost the config its progress and renewals."""

    task_id: str
    config_id: str
    owner: str
    """The replica that delivers (`ServerConfig.replica_id`)."""
    token: str
    expires_at: float
    """Epoch seconds (the store's clock), as `Lease.expires_at`."""


@attrs.frozen
class TaskWrite:
    """One atomic change to one task: the new record and the events that led to it.

    The backend stores it only if the task's row is still at `expected_version`
    and `expected_seq` (compare-and-set), else raises `ConflictError`; the stored
    row then takes `record.version`, which is above `expected_version` (by one, or
    by the number of writes `merge_writes` folded into this one). `events` carry
    consecutive sequence numbers `expected_seq + 1 .. record.seq`. Both
    expectations None create the task (it must not exist yet).
    """

    record: TaskRecord
    events: tuple[StoredEvent, ...]
    expected_seq: int | None
    expected_version: int | None = None
    """Required for an update (a backend refuses one without it as malformed)."""
    push_configs: tuple[PushConfigRecord, ...] = ()
    """Configs to insert or replace in the same transaction (e.g. from SendMessage)."""


@attrs.frozen
class TaskQuery:
    """Filters of ListTasks. None means no filter."""

    owner: str | None = None
    context_id: str | None = None
    state: TaskState | None = None
    status_after: float | None = None
    page_size: int = 50
    cursor: tuple[float, str] | None = None
    """(status_at, task_id) of the last task on the previous page; order is newest first."""


@attrs.frozen
class TaskPage:
    records: list[TaskRecord]
    next_cursor: tuple[float, str] | None
    """None on the last page."""
    total_size: int
    """How many tasks match the filters, over all pages."""


@runtime_checkable
class TaskBackend(Protocol):
    """Persistence for tasks, their event logs and push configs.

    Every method may be called concurrently from several trio tasks. `commit` is
    atomic for the whole batch: either every write is stored or none is.
    """

    async def commit(self, writes: Sequence[TaskWrite]) -> None:
        """Persist a batch atomically; `ConflictError` if an expectation fails."""
        ...

    async def get_task(self, task_id: str) -> TaskRecord | None: ...

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        """Tasks matching `query`, newest `status_at` first (ties: task id descending)."""
        ...

    async def read_events(self, task_id: str, after_seq: int, limit: int) -> list[StoredEvent]:
        """Up to `limit` events with seq > after_seq, ascending."""
        ...

    async def list_unfinished(self) -> list[TaskRecord]:
        """Tasks in the submitted or working state (recovery after a restart)."""
        ...

    async def put_push_config(self, record: PushConfigRecord) -> None:
        """Insert or replace a config (keyed by task id and config id)."""
        ...

    async def get_push_config(self, task_id: str, config_id: str) -> PushConfigRecord | None: ...

    async def list_push_configs(self, task_id: str) -> list[PushConfigRecord]:
        """Configs of one task, in creation order."""
        ...

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        """True if it existed."""
        ...

    async def set_push_delivered(self, task_id: str, config_id: str, seq: int, *,
                                 token: str | None = None) -> bool:
        """Record delivery progress; never moves it backwards. With `token`, only while
        that claim holds the config. False if refused, or for an unknown config."""
        ...

    async def claim_push_config(self, task_id: str, config_id: str, *, owner: str,
                                token: str, now: float, expires_at: float
                                ) -> PushClaim | None:
        """Take the config under the new `token` if nobody holds it or its claim expired
        before `now` (one conditional update); None if held or unknown."""
        ...

    async def renew_push_claims(self, claims: Sequence[PushClaim], expires_at: float
                                ) -> list[PushClaim]:
        """Extend the claims whose token still holds their config; those (renewed)."""
        ...

    async def release_push_claims(self, claims: Sequence[PushClaim], *,
                                  hand_over: bool = False) -> None:
        """Give up those whose token still holds; idempotent. With `hand_over`, a shared
        backend tells the other processes (as a change of the tasks), to take them over."""
        ...

    async def release_push_claims_of(self, owner: str | None) -> int:
        """Give up every claim of `owner` (None: all) at a restart; how many."""
        ...

    async def get_push_claim(self, task_id: str, config_id: str) -> PushClaim | None:
        """Who holds the config (expired or not), or None."""
        ...

    async def list_claimable_push(self, now: float, *, task_ids: Sequence[str] | None = None,
                                  limit: int = 1000) -> list[PushConfigRecord]:
        """Configs nobody holds (or whose claim expired before `now`) that may have more
        to deliver (their task is unfinished, or ahead of them); of `task_ids` if given;
        at most `limit`, oldest first."""
        ...

    async def list_pending_push(self) -> list[PushConfigRecord]:
        """Configs whose delivered_seq is behind their task's seq."""
        ...

    async def aclose(self) -> None: ...


@attrs.frozen
class TaskChange:
    """A write to a task that some process committed, as a change feed reports it."""

    task_id: str
    version: int
    """The row's version after the write (`TaskRecord.version`)."""
    seq: int
    """The newest event's sequence number after the write."""


class ChangeListener(Protocol):
    """What a `ChangeFeed` reports to. Both methods are called from the feed's own
    trio task and must not block: a listener that has work to do notes it and does it
    in a task of its own, so a slow listener never holds up the feed's connection."""

    def changed(self, change: TaskChange) -> None:
        """Another process committed this write (only after its transaction committed)."""
        ...

    def resync(self) -> None:
        """The feed (re)connected, or could not say which task changed: writes may have
        gone unreported, so compare what is cached with `task_versions`."""
        ...


@runtime_checkable
class ChangeFeed(Protocol):
    """Optional port of a backend that several processes share (PostgreSQL): the writes
    other processes commit, as they commit them. Memory and SQLite have none (one
    process owns their data). A feed may lose notifications while its connection is
    down; it then says `resync` once it is back, and `task_versions` lets the listener
    find what it missed (and a periodic poll catch anything else)."""

    async def run_change_feed(
        self,
        listener: ChangeListener,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Report other processes' commits to `listener` until cancelled, reconnecting
        when the feed's connection is lost; `resync` after every (re)connect. Started
        once it listens (or has failed to connect once: it keeps trying)."""
        ...

    async def task_versions(self, task_ids: Sequence[str]) -> list[TaskChange]:
        """Where each of these tasks stands now (tasks that do not exist are left out)."""
        ...
