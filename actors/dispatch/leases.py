"""Leases: the durable half of dispatch, and this process's index of them.

A task's attempts, current lease, last attempt id and output frame number live
in its `DispatchState` in the store, and every change made here is a store
write checked against that state: recording a claim, renewing a lease, a
worker's fenced writes (refused once the attempt moved on, and applied once
each with the link's frame numbers), its idempotent release, and ending a
lease whose worker is gone (a retry with the artifacts rolled back to what the
lost attempt found, a failure once the run's attempts are used up, or the
cancellation that was asked for). Output frames also count the bytes they add
(`DispatchState.output_bytes`, in the same write), and one that would pass the
per-task cap (`max_output_bytes`) is refused: the task then fails with that
reason, once; so is one whose events break the task lifecycle
(`IllegalOutput`). Beside that, `Leases` keeps per process the
index of leases the reaper and heartbeats read, rebuilt from the store at
start, and the cancellations asked of the workers holding them.

Several replicas may share the store: each then indexes every lease (its own
and, through `actors.dispatch.follow`, the others'), and any replica's reaper
may end an expired one. Ending one is a compare-and-set write built on the
exact record it judged, so when two reapers race, one stores it and the other,
rebuilt on the fresh record, finds the lease gone (or renewed) and drops it:
the task is queued again exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from actors.dispatch.types import (
    IllegalOutput,
    NotClaimable,
    OutputLimitExceeded,
    OutputOutOfOrder,
    StaleAttempt,
)
from actors.store_port import ConflictError, DispatchState, Lease, TaskRecord
from actors.task_store import ServerTaskStore
from protocol.agent_state import split_agent_state
from protocol.models import (
    Message,
    Part,
    Role,
    StreamResponse,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from protocol.states import IllegalTransition, ends_stream, is_terminal

__all__ = ["Leases"]


class _NotLeased(Exception):
    """No worker holds the task (or it has ended): nothing to ask of one."""


class _Moved(Exception):
    """The task's record moved on from the one a write was built on."""


def _unchanged(version: int) -> Callable[[TaskRecord], None]:
    """A write check: the record is still at `version` (a write whose events were
    computed from that record must not be rebuilt on another)."""
    def check(record: TaskRecord) -> None:
        if record.version != version:
            raise _Moved
    return check


def _status(record: TaskRecord, state: TaskState, text: str) -> StreamResponse:
    task = record.task
    msg = Message(message_id=str(uuid.uuid4()), role=Role.AGENT, parts=[Part(text=text)],
                  task_id=task.id, context_id=task.context_id)
    return StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=task.id, context_id=task.context_id, status=TaskStatus(state=state, message=msg)))


def _artifact_marks(record: TaskRecord) -> tuple[tuple[str, int], ...]:
    return tuple((a.artifact_id, len(a.parts)) for a in record.task.artifacts or ())


def _rollback(record: TaskRecord) -> tuple[StreamResponse, ...]:
    """Undo what a lost attempt added to the task's artifacts, before its retry.

    Without this a retry's artifact (agents pick fresh ids) would sit beside the
    dead attempt's partial copy of it. Artifacts the attempt created are dropped
    and parts it appended cut off. It is a `task` event, so the log, its replay
    and live subscribers all see the same snapshot the store keeps.
    """
    marks = record.dispatch.claim_artifacts
    artifacts = record.task.artifacts or []
    if marks is None:
        return ()
    kept = dict(marks)
    rolled = [a.model_copy(update={"parts": a.parts[:kept[a.artifact_id]]})
              for a in artifacts if a.artifact_id in kept]
    if rolled == artifacts:
        return ()
    return (StreamResponse(task=record.task.model_copy(update={"artifacts": rolled})),)


class Leases:
    """The leases of the tasks being run: written to the store, indexed here.

    `lease_ttl` is how long a lease holds without renewal; `max_attempts` how
    many claims each run of a task gets before a lost lease fails it;
    `max_output_bytes` the output an attempt may write (None: no cap); `new_id`
    makes attempt ids; `replica_id` is written into the leases of in-process
    workers. The counters (`claims`, `expired`, `stale_writes`) are this process's.
    """

    def __init__(self, store: ServerTaskStore, *, lease_ttl: float, max_attempts: int,
                 new_id: Callable[[], str], max_output_bytes: int | None = None,
                 replica_id: str | None = None) -> None:
        self._store = store
        self._replica_id = replica_id
        self._lease_ttl = lease_ttl
        self._max_attempts = max_attempts
        self.max_output_bytes = max_output_bytes
        self._new_id = new_id
        self._held: dict[str, Lease] = {}
        """task id -> its current lease, as this process last wrote or read it."""
        self._cancel_requested: set[str] = set()
        self.claims = 0
        self.expired = 0
        self.retries = 0
        """Expired leases whose task was queued again (a retry)."""
        self.stale_writes = 0

    # --- the index (per process) -----------------------------------------------------

    def __len__(self) -> int:
        return len(self._held)

    def get(self, task_id: str) -> Lease | None:
        return self._held.get(task_id)

    def held_by(self, worker_id: str) -> dict[str, str]:
        """task id -> attempt id of the leases the worker holds."""
        return {tid: lease.attempt_id for tid, lease in self._held.items()
                if lease.worker_id == worker_id}

    def restore(self, task_id: str, lease: Lease) -> None:
        """Index a lease read from the store (at start, or another replica's)."""
        self._held[task_id] = lease

    def follow(self, task_id: str, lease: Lease | None) -> Lease | None:
        """Index what the store says of the task's lease, keeping the later expiry of
        one attempt (a renewal may be on its way to the store); the lease this
        replacement ended (another attempt's, or one now gone), else None."""
        known = self._held.get(task_id)
        if known is not None and (lease is None or lease.attempt_id != known.attempt_id):
            self.ended(task_id)
        else:
            known = None
        if lease is not None:
            current = self._held.get(task_id)
            if current is None or lease.expires_at > current.expires_at:
                self._held[task_id] = lease
        return known

    def mine(self, lease: Lease) -> bool:
        """An in-process lease of this replica (a previous incarnation's, at start)."""
        return lease.in_process and lease.replica is not None and lease.replica == self._replica_id

    def all_mine(self) -> list[tuple[str, Lease]]:
        """The in-process leases of this replica: its embedded workers'."""
        return [(task_id, lease) for task_id, lease in self._held.items() if self.mine(lease)]

    def forget(self, task_id: str) -> None:
        """Drop the task's lease from the index (it was never, or is no longer, stored)."""
        self._held.pop(task_id, None)

    def ended(self, task_id: str) -> None:
        """The task's lease ended: forget it and any cancellation asked of its worker."""
        self._held.pop(task_id, None)
        self._cancel_requested.discard(task_id)

    def request_cancel(self, task_id: str) -> None:
        self._cancel_requested.add(task_id)

    def cancel_requested(self, task_id: str) -> bool:
        return task_id in self._cancel_requested

    def overdue(self) -> list[tuple[str, Lease]]:
        """The leases that ran out by the store's clock, for the reaper."""
        now = self._store.now()
        return [(tid, lease) for tid, lease in self._held.items() if lease.expires_at < now]

    def expiry(self) -> float:
        """When a lease granted or renewed now runs out (store time)."""
        return self._store.now() + self._lease_ttl

    # --- the store (durable) ---------------------------------------------------------

    def grant(self, task_id: str, worker_id: str, *, in_process: bool) -> Lease:
        """A new attempt's lease, indexed; `record_claim` stores it."""
        attempt_id = self._new_id()
        lease = Lease(worker_id=worker_id, attempt_id=attempt_id, expires_at=self.expiry(),
                      in_process=in_process, replica=self._replica_id if in_process else None)
        self._held[task_id] = lease
        return lease

    async def record_claim(self, task_id: str, lease: Lease, head: TaskRecord | None, *,
                           wait: bool = False) -> TaskRecord:
        """Store a granted lease on the queued task `head`: one more attempt (of the
        task and of its run), output frames and bytes counted from zero, the artifacts
        marked for a rollback, a cancellation asked of an earlier attempt cleared.
        `NotClaimable` if the task is gone, ended or leased meanwhile; with `wait` (a
        store other processes share) that is checked against what is stored, the
        write being built again on the fresh record if another process wrote the task
        first."""

        if head is None:
            raise NotClaimable(f"task {task_id!r} does not exist")
        found = [head]  # the record the write is built on (a fresher one if rebuilt)

        def queued(record: TaskRecord) -> None:
            if ends_stream(record.state) or record.dispatch.lease is not None:
                raise NotClaimable(f"task {task_id!r} is {record.state.value}")
            found[0] = record

        def claimed(d: DispatchState) -> DispatchState:
            return attrs.evolve(d, attempts=d.attempts + 1,
                                run_attempts=d.run_attempts + 1, lease=lease,
                                last_attempt_id=lease.attempt_id, output_seq=0,
                                output_bytes=0, claim_artifacts=_artifact_marks(found[0]),
                                cancel_requested=False)

        # One process: not waiting for the commit: nothing the worker does with the
        # grant is visible before a later write commits (and carries this one with
        # it), and if the server dies first the task is simply queued again on
        # restart; a worker still holding the lost attempt is then fenced out.
        # Several: another replica may be claiming it too, so the commit decides.
        try:
            record = await self._store.write(task_id, (), dispatch=claimed, check=queued,
                                             wait=wait)
        except ConflictError:  # still conflicting after the rebuilds: others write it
            raise NotClaimable(f"task {task_id!r} is being claimed elsewhere") from None
        self.claims += 1
        return record

    async def renew(self, task_id: str, attempt_id: str, expires: float) -> bool:
        """Extend the attempt's lease to `expires`; False if it holds none (by this
        process's index, or by the store: another replica may have ended it)."""
        lease = self._held.get(task_id)
        if lease is None or lease.attempt_id != attempt_id:
            return False
        head = await self._store.head(task_id)
        stored = None if head is None else head.dispatch.lease
        if stored is None or stored.attempt_id != attempt_id:
            return False
        self._held[task_id] = attrs.evolve(lease, expires_at=max(expires, lease.expires_at))

        def renewed(d: DispatchState) -> DispatchState:
            if d.lease is None or d.lease.attempt_id != attempt_id:
                return d
            return attrs.evolve(d, lease=attrs.evolve(d.lease, expires_at=expires))

        # Not waited for: a renewal another write beats is dropped, and the next
        # heartbeat's (a third of the TTL later) is built on the fresh record.
        await self._store.write(task_id, (), dispatch=renewed, wait=False)
        return True

    async def store_cancel(self, task_id: str) -> Lease | None:
        """Store that cancelling the task's current attempt was asked for, so that every
        replica learns of it; the lease it was asked of, or None (nothing written) if
        no worker holds the task or it has ended."""

        def leased(record: TaskRecord) -> None:
            if record.dispatch.lease is None or is_terminal(record.state):
                raise _NotLeased

        try:
            record = await self._store.write(
                task_id, (), check=leased,
                dispatch=lambda d: attrs.evolve(d, cancel_requested=True))
        except (_NotLeased, KeyError):
            return None
        self._cancel_requested.add(task_id)
        return record.dispatch.lease

    def _fence(self, task_id: str, attempt_id: str) -> Callable[[TaskRecord], None]:
        def check(record: TaskRecord) -> None:
            lease = record.dispatch.lease
            if lease is None or lease.attempt_id != attempt_id:
                self.stale_writes += 1
                raise StaleAttempt(
                    f"attempt {attempt_id!r} of task {task_id!r} is no longer current"
                )
        return check

    def _output_check(self, task_id: str, attempt_id: str, output_seq: int | None,
                      output_bytes: int) -> Callable[[TaskRecord], None]:
        """The checks of a worker's output write: fenced; the attempt's next frame
        (with `output_seq`); within the output cap (counting `output_bytes`)."""
        fence = self._fence(task_id, attempt_id)
        cap = self.max_output_bytes

        def check(record: TaskRecord) -> None:
            fence(record)
            if output_seq is not None:
                applied = record.dispatch.output_seq
                if output_seq != applied + 1:
                    raise OutputOutOfOrder(task_id, attempt_id, output_seq, applied)
            if cap is not None and output_bytes and (
                    record.dispatch.output_bytes + output_bytes > cap):
                raise OutputLimitExceeded(task_id, attempt_id, cap)

        return check

    @staticmethod
    def _counted(dispatch: DispatchState, output_seq: int | None,
                 output_bytes: int) -> DispatchState:
        if output_seq is None and not output_bytes:
            return dispatch
        return attrs.evolve(dispatch, output_bytes=dispatch.output_bytes + output_bytes,
                            output_seq=dispatch.output_seq if output_seq is None else output_seq)

    async def write(self, task_id: str, attempt_id: str, events: Sequence[StreamResponse], *,
                    wait: bool = False, output_seq: int | None = None,
                    output_bytes: int = 0) -> TaskRecord:
        """A worker's events for its attempt, fenced; see `Dispatcher.write`.
        `IllegalOutput` (nothing written) if they break the task lifecycle."""
        check = self._output_check(task_id, attempt_id, output_seq, output_bytes)
        events, saved = split_agent_state(events)
        try:
            if output_seq is None and not output_bytes and saved is None:
                return await self._store.write(task_id, events, check=check, wait=wait)
            return await self._store.write(
                task_id, events, check=check, wait=wait,
                dispatch=lambda d: _keep_state(self._counted(d, output_seq, output_bytes),
                                               saved))
        except IllegalTransition as exc:
            raise IllegalOutput(task_id, attempt_id, exc) from None

    async def release(self, task_id: str, attempt_id: str, events: Sequence[StreamResponse],
                      *, wait: bool, output_seq: int | None,
                      output_bytes: int = 0) -> Lease | None:
        """Store the attempt's end; see `Dispatcher.release`. Returns the lease that
        ended, or None if this attempt had already been released. `IllegalOutput`
        (nothing written) if its events break the lifecycle of a task not ended."""
        head = await self._store.head(task_id)
        if head is None:
            raise NotClaimable(f"task {task_id!r} does not exist")
        lease = head.dispatch.lease
        if lease is None or lease.attempt_id != attempt_id:
            if head.dispatch.last_attempt_id == attempt_id:
                return None
            self.stale_writes += 1
            raise StaleAttempt(f"attempt {attempt_id!r} of task {task_id!r} is no longer current")
        events, saved = split_agent_state(events)
        dispatch = _keep_state(self._counted(attrs.evolve(head.dispatch, lease=None),
                                             output_seq, output_bytes), saved)
        check = self._output_check(task_id, attempt_id, output_seq, output_bytes)
        try:
            await self._store.write(task_id, events, dispatch=dispatch, check=check, wait=wait)
        except IllegalTransition as exc:
            newest = await self._store.head(task_id)
            if newest is None or not is_terminal(newest.state):
                raise IllegalOutput(task_id, attempt_id, exc) from None
            # the task ended meanwhile (e.g. canceled by the service): just drop the lease
            await self._store.write(task_id, (), dispatch=dispatch, wait=wait)
        return lease

    async def fail(self, task_id: str, attempt_id: str, why: str) -> Lease | None:
        """End the attempt's lease with the task failed for `why` (the worker's output
        broke a limit or the task lifecycle): no retry. The lease that ended, or None
        if the attempt no longer holds one."""
        head = await self._store.head(task_id)
        if head is None or head.dispatch.lease is None \
                or head.dispatch.lease.attempt_id != attempt_id:
            return None
        lease = head.dispatch.lease
        dispatch = attrs.evolve(head.dispatch, lease=None)
        events = () if is_terminal(head.state) else (_status(head, TaskState.FAILED, why),)
        try:
            await self._store.write(task_id, events, dispatch=dispatch,
                                    check=self._fence(task_id, attempt_id), wait=True)
        except IllegalTransition:
            await self._store.write(task_id, (), dispatch=dispatch, wait=True)
        return lease

    async def end(self, task_id: str, lease: Lease, why: str, *,
                  refund: bool = False) -> TaskRecord | None:
        """Take a lease whose worker is gone: store the task ready to queue again
        (rolled back to what it was when the lost attempt was claimed), or failed
        once the run's attempts are used up, or canceled if that was asked for.
        `refund`: the attempt does not count against the run's (its worker gave
        the task back, or never heard of the grant). None if
        the store holds another lease by now, or this one renewed past `lease`'s
        expiry (another replica's reaper got there first, or its worker is alive):
        the index then follows the store."""
        for _ in range(3):
            head = await self._store.head(task_id)
            current = None if head is None else head.dispatch.lease
            if (head is None or current is None or current.attempt_id != lease.attempt_id
                    or current.expires_at > lease.expires_at):
                self.follow(task_id, current)
                return None
            try:
                record = await self._end(head, why, refund)
            except _Moved:
                continue  # written meanwhile (by another replica): judge the fresh record
            self.expired += 1
            return record
        return None  # kept changing: the next reaper tick looks again

    async def _end(self, head: TaskRecord, why: str, refund: bool) -> TaskRecord:
        """`end`'s write, built on `head` exactly (`_Moved` if the store has moved on)."""
        task_id = head.task_id
        unchanged = _unchanged(head.version)
        dispatch = attrs.evolve(head.dispatch, lease=None)
        if refund:
            dispatch = attrs.evolve(dispatch, run_attempts=max(0, dispatch.run_attempts - 1))
        if is_terminal(head.state):
            events: tuple[StreamResponse, ...] = ()
        elif task_id in self._cancel_requested or head.dispatch.cancel_requested:
            events = (_status(head, TaskState.CANCELED, f"canceled ({why})"),)
        elif (tried := dispatch.run_attempts) >= self._max_attempts:
            events = (_status(head, TaskState.FAILED, f"gave up after {tried} attempts: {why}"),)
        else:  # counted per run: a continuation's run has all of its attempts
            retry = f"{why}; retrying (attempt {tried + 1} of {self._max_attempts})"
            events = (*_rollback(head), _status(head, TaskState.WORKING, retry))
        try:
            record = await self._store.write(task_id, events, dispatch=dispatch, check=unchanged)
        except IllegalTransition:
            record = await self._store.write(task_id, (), dispatch=dispatch, check=unchanged)
        if not is_terminal(record.state):
            self.retries += 1
        return record


def _keep_state(dispatch: DispatchState, saved: dict[str, Any] | None) -> DispatchState:
    """The dispatch state holding the agent's newest private state, if it left one."""
    return dispatch if saved is None else attrs.evolve(dispatch, agent_state=saved)
