"""The dispatcher's vocabulary: what goes in, what comes out, and what can go wrong.

Plain values and errors shared by the queue, the connected workers, the leases
and the `Dispatcher` facade (and by the worker link that carries them): a run
request, a worker's description, the pushes sent to it (offers, cancellations,
drain requests), a granted claim, a heartbeat reply and the statistics. Kept
apart so that each of those parts can name them without importing the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from actors.store_port import TaskRecord
from protocol.models import AgentSkill

__all__ = [
    "CancelPush",
    "Claim",
    "DispatcherStatistics",
    "DrainPush",
    "HeartbeatReply",
    "IllegalOutput",
    "NotClaimable",
    "Offer",
    "OutputLimitExceeded",
    "OutputOutOfOrder",
    "Push",
    "RunRequest",
    "StaleAttempt",
    "UnknownWorker",
    "WorkerInfo",
]


@attrs.frozen
class RunRequest:
    """A stored task to run, with what the request said about running it."""

    task_id: str
    metadata: dict[str, Any] = attrs.field(factory=dict)
    accepted_output_modes: Sequence[str] = ()
    principal: str = ""
    trace_parent: str | None = None
    """The W3C traceparent of the request (tracing on), for the worker's session."""


class StaleAttempt(Exception):
    """A worker wrote for an attempt that is no longer the task's current one."""


class OutputOutOfOrder(Exception):
    """A worker's output frame is not the next one for its attempt (a resend of
    one already applied, or one beyond a gap): nothing was written."""

    def __init__(self, task_id: str, attempt_id: str, seq: int, applied: int) -> None:
        super().__init__(f"output seq {seq} of attempt {attempt_id!r} of task {task_id!r} "
                         f"is not next (applied through {applied})")
        self.seq = seq
        self.applied = applied


class OutputLimitExceeded(Exception):
    """A worker's output would take its attempt past the per-task output cap. The
    dispatcher has failed the task with this reason and ended the lease (once: a
    retry would produce the same output); the frame was not applied."""

    def __init__(self, task_id: str, attempt_id: str, limit: int) -> None:
        super().__init__(f"the task's output exceeds the limit of {limit} bytes "
                         "(the server's --max-output-bytes)")
        self.task_id = task_id
        self.attempt_id = attempt_id
        self.limit = limit


class IllegalOutput(Exception):
    """A worker's output or release holds an event the task lifecycle does not allow
    (e.g. a `submitted` status while working). The dispatcher has ended the attempt
    with the task failed for this reason, which names the transition (once: the same
    agent would do the same again, so a retry after the lease expired would only
    hide the cause); nothing of the frame was applied."""

    def __init__(self, task_id: str, attempt_id: str, cause: Exception) -> None:
        super().__init__(f"the worker's output breaks the task lifecycle: {cause}")
        self.task_id = task_id
        self.attempt_id = attempt_id


class NotClaimable(Exception):
    """The task cannot be claimed by this worker (taken, ended, or not routed to it)."""


class UnknownWorker(Exception):
    """The worker is not registered (it must register again, e.g. after a restart)."""


@attrs.frozen
class WorkerInfo:
    worker_id: str
    name: str = ""
    capabilities: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    max_concurrent: int = 1
    in_process: bool = False
    """Runs inside the server process (an embedded worker): its leases say so."""
    skills: tuple[AgentSkill, ...] = ()
    """The skills of its agents, for the agent card while it is connected."""


@attrs.frozen
class Offer:
    task_id: str
    priority: int
    agent: str | None
    capabilities: tuple[str, ...]


@attrs.frozen
class CancelPush:
    task_id: str
    attempt_id: str
    reason: str


@attrs.frozen
class DrainPush:
    """Claim nothing more from this server: finish what runs."""

    reason: str


Push = Offer | CancelPush | DrainPush


@attrs.frozen
class Claim:
    """A granted claim: what the worker needs to run the task."""

    task_id: str
    attempt_id: str
    lease_expires_at: float
    record: TaskRecord

    def run_request(self) -> RunRequest:
        d = self.record.dispatch
        return RunRequest(task_id=self.task_id, metadata=dict(d.request_metadata or {}),
                          accepted_output_modes=d.accepted_output_modes,
                          principal=self.record.owner)


@attrs.frozen
class HeartbeatReply:
    renewed: tuple[tuple[str, str, float], ...]
    """(task id, attempt id, new expiry)."""
    lost: tuple[tuple[str, str, str], ...]
    """(task id, attempt id, reason): stop working on these."""
    cancel: tuple[tuple[str, str], ...]
    """(task id, attempt id): cancel these sessions."""
    unknown_worker: bool = False
    queued: int = 0
    """Tasks waiting that this worker may run: a worker that saw no offer for them
    claims without a task id (its pushes may be getting lost)."""
    drain: str | None = None
    """Why the worker should claim nothing more (None: carry on)."""


@attrs.frozen
class DispatcherStatistics:
    queued: int
    leased: int
    """Leases known: on a store other replicas share, theirs too."""
    workers: int
    claims: int
    expired: int
    stale_writes: int
    rescans: int = 0
    """Reconciliations of the queue and lease index with the store (the rebuild at
    start, then on a store other replicas share, the fallback rescans)."""
    retries: int = 0
    """Of the expired leases, those whose task was queued again."""
    queued_by_agent: Mapping[str, int] = attrs.field(factory=dict)
    """Queued tasks by the agent their route names ("" for any)."""
    worker_load: tuple[tuple[str, int, int], ...] = ()
    """(name, leases held, slots) of each connected worker."""
