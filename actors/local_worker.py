"""LocalWorker: a worker inside the server process, running one agent.

It is a worker like any remote one — it registers with the dispatcher, claims
queued tasks under leases, renews them with heartbeats, writes its events fenced
by its attempt id and releases each task at the end — only without a network
link in between. Each claimed task runs in its own cancel scope; a cancellation
from the dispatcher (CancelTask) cancels that scope and the task ends canceled.
The agent API promises hold: returned -> completed, raised -> failed.
"""

from __future__ import annotations

import logging
import uuid

import attrs
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.dispatcher import (
    CancelPush,
    Claim,
    Dispatcher,
    StaleAttempt,
    WorkerInfo,
    WorkerSession,
)
from protocol.models import StreamResponse, TaskState
from protocol.states import IllegalTransition, ends_stream

__all__ = ["LocalWorker", "LocalWorkerStatistics"]

log = logging.getLogger(__name__)


@attrs.frozen
class LocalWorkerStatistics:
    running: int
    max_concurrent: int
    completed_runs: int


class _AttemptSink:
    """An agent's events, written under its attempt; the final one releases the task."""

    def __init__(self, dispatcher: Dispatcher, claim: Claim) -> None:
        self._dispatcher = dispatcher
        self._claim = claim

    async def emit(self, event: StreamResponse, *, final: bool) -> None:
        if final:
            await self._dispatcher.release(self._claim.task_id, self._claim.attempt_id, (event,))
        else:
            await self._dispatcher.write(self._claim.task_id, self._claim.attempt_id, (event,))


class LocalWorker:
    """Runs `agent` for tasks claimed from `dispatcher`, up to `max_concurrent` at once."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        agent: AgentSpec,
        *,
        worker_id: str | None = None,
        max_concurrent: int = 256,
        capabilities: frozenset[str] = frozenset(),
    ) -> None:
        self._dispatcher = dispatcher
        self._agent = agent
        self.worker_id = worker_id or f"local-{uuid.uuid4().hex[:12]}"
        self._info = WorkerInfo(worker_id=self.worker_id, name="local",
                                capabilities=capabilities, agents=frozenset({agent.name}),
                                max_concurrent=max_concurrent)
        self._scopes: dict[str, trio.CancelScope] = {}
        self._attempt_ids: dict[str, str] = {}
        self._canceled: set[str] = set()
        self._runs = 0

    def statistics(self) -> LocalWorkerStatistics:
        return LocalWorkerStatistics(running=len(self._scopes),
                                     max_concurrent=self._info.max_concurrent,
                                     completed_runs=self._runs)

    def is_running(self, task_id: str) -> bool:
        return task_id in self._scopes

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        session = self._dispatcher.register(self._info)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._follow_pushes, session)
                nursery.start_soon(self._heartbeats)
                task_status.started()
                while True:
                    claim = await self._dispatcher.next_claim(self.worker_id)
                    nursery.start_soon(self._run_claim, claim)
        finally:
            self._dispatcher.unregister(self.worker_id, session)

    async def _follow_pushes(self, session: WorkerSession) -> None:
        async for push in session.receive_pushes:
            if isinstance(push, CancelPush):
                self._cancel(push.task_id, canceled=True)

    async def _heartbeats(self) -> None:
        interval = self._dispatcher.lease_ttl / 3
        while True:
            await trio.sleep(interval)
            leases = list(self._attempt_ids.items())
            reply = await self._dispatcher.heartbeat(self.worker_id, leases)
            for task_id, _, reason in reply.lost:
                log.warning("lease lost", extra={"task_id": task_id, "reason": reason})
                self._cancel(task_id, canceled=False)
            for task_id, _ in reply.cancel:
                self._cancel(task_id, canceled=True)

    def _cancel(self, task_id: str, *, canceled: bool) -> None:
        scope = self._scopes.get(task_id)
        if scope is not None:
            if canceled:
                self._canceled.add(task_id)
            scope.cancel()

    async def _run_claim(self, claim: Claim) -> None:
        task_id = claim.task_id
        task = claim.record.task
        history = list(task.history or [])
        req = claim.run_request()
        ctx = TaskContext(
            task_id=task_id, context_id=task.context_id, message=history[-1],
            history=history[:-1], task=task, metadata=dict(req.metadata),
            accepted_output_modes=tuple(req.accepted_output_modes), principal=req.principal,
        )
        emit = Emitter(_AttemptSink(self._dispatcher, claim), task_id=task_id,
                       context_id=task.context_id)
        scope = trio.CancelScope()
        self._scopes[task_id] = scope
        self._attempt_ids[task_id] = claim.attempt_id
        error: BaseException | None = None
        stale = False
        try:
            with scope:
                try:
                    await emit.working()
                    await self._agent.run(ctx, emit)
                    if not emit.ended:
                        await emit.complete()
                except StaleAttempt:
                    stale = True
                except IllegalTransition as exc:
                    error = exc
                    log.warning("agent broke the task lifecycle",
                                extra={"task_id": task_id, "error": str(exc)})
                except Exception as exc:  # the agent's failure is the task's, not the worker's
                    error = exc
                    log.info("agent failed", extra={"task_id": task_id, "error": repr(exc)})
        finally:
            del self._scopes[task_id]
            del self._attempt_ids[task_id]
            canceled = task_id in self._canceled
            self._canceled.discard(task_id)
            self._runs += 1
        if stale or (emit.state is not None and ends_stream(emit.state)):
            return
        if not canceled and error is None:
            return  # lease lost (heartbeat said so): another attempt owns the task now
        with trio.CancelScope(shield=True):
            try:
                if canceled:
                    await emit.status(TaskState.CANCELED, "canceled by request")
                else:
                    await emit.fail(f"agent error: {error}")
            except (StaleAttempt, IllegalTransition):
                pass  # the task moved on meanwhile
