"""AgentRunner: runs in-process agents for queued tasks, each in its own cancel scope.

Tasks arrive as `RunRequest`s on a bounded channel (`submit` waits when it is
full: backpressure instead of an unbounded queue). Each run holds a slot of a
capacity limiter, re-reads the task from the store (a task canceled while queued
is skipped), reports WORKING, calls the agent and ends the task the way the agent
API promises: returned -> completed, raised -> failed, cancelled -> canceled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.task_store import ServerTaskStore
from protocol.models import StreamResponse, TaskState
from protocol.states import IllegalTransition

__all__ = ["AgentRunner", "RunRequest", "RunnerStatistics"]

log = logging.getLogger(__name__)


@attrs.frozen
class RunRequest:
    task_id: str
    metadata: dict[str, Any] = attrs.field(factory=dict)
    accepted_output_modes: Sequence[str] = ()
    principal: str = ""


@attrs.frozen
class RunnerStatistics:
    queued: int
    running: int
    max_concurrent: int


class _StoreSink:
    """Writes an agent's events into the store; waits for the commit only at the end."""

    def __init__(self, store: ServerTaskStore, task_id: str) -> None:
        self._store = store
        self._task_id = task_id

    async def emit(self, event: StreamResponse, *, final: bool) -> None:
        await self._store.write(self._task_id, (event,), wait=final)


class AgentRunner:
    """Runs one agent for the server's tasks. `max_concurrent` bounds parallel runs;
    `queue_size` bounds tasks accepted but not yet started."""

    def __init__(
        self,
        store: ServerTaskStore,
        agent: AgentSpec,
        *,
        max_concurrent: int = 256,
        queue_size: int = 1024,
    ) -> None:
        self._store = store
        self._agent = agent
        self._limiter = trio.CapacityLimiter(max_concurrent)
        self._send, self._recv = trio.open_memory_channel[RunRequest](queue_size)
        self._scopes: dict[str, trio.CancelScope] = {}
        self._cancel_requested: set[str] = set()

    @property
    def agent(self) -> AgentSpec:
        return self._agent

    def statistics(self) -> RunnerStatistics:
        return RunnerStatistics(
            queued=self._send.statistics().current_buffer_used,
            running=len(self._scopes),
            max_concurrent=int(self._limiter.total_tokens),
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            async for req in self._recv:
                token = object()
                await self._limiter.acquire_on_behalf_of(token)
                nursery.start_soon(self._run_one, req, token)

    async def submit(self, req: RunRequest) -> None:
        """Queue a task to run; waits while the queue is full."""
        try:
            self._send.send_nowait(req)
        except trio.WouldBlock:
            await self._send.send(req)

    def cancel(self, task_id: str) -> bool:
        """Cancel a running task's agent; False if it is not running here."""
        scope = self._scopes.get(task_id)
        if scope is None:
            return False
        self._cancel_requested.add(task_id)
        scope.cancel()
        return True

    def is_running(self, task_id: str) -> bool:
        return task_id in self._scopes

    async def _run_one(self, req: RunRequest, token: object) -> None:
        try:
            await self._run_agent(req)
        finally:
            self._limiter.release_on_behalf_of(token)

    async def _run_agent(self, req: RunRequest) -> None:
        task_id = req.task_id
        record = await self._store.get_task(task_id)
        if record is None or record.state is not TaskState.SUBMITTED:
            return  # canceled (or otherwise ended) while it waited in the queue
        task = record.task
        history = list(task.history or [])
        if not history:
            log.error("task has no message to act on", extra={"task_id": task_id})
            return
        ctx = TaskContext(
            task_id=task_id,
            context_id=task.context_id,
            message=history[-1],
            history=history[:-1],
            task=task,
            metadata=dict(req.metadata),
            accepted_output_modes=tuple(req.accepted_output_modes),
            principal=req.principal,
        )
        emit = Emitter(
            _StoreSink(self._store, task_id), task_id=task_id, context_id=task.context_id
        )
        scope = trio.CancelScope()
        self._scopes[task_id] = scope
        error: BaseException | None = None
        try:
            with scope:
                try:
                    await emit.working()
                    await self._agent.run(ctx, emit)
                    if not emit.ended:
                        await emit.complete()
                except IllegalTransition as exc:
                    error = exc
                    log.warning(
                        "agent broke the task lifecycle",
                        extra={"task_id": task_id, "error": str(exc)},
                    )
                except Exception as exc:  # the agent's failure is the task's, not ours
                    error = exc
                    log.info("agent failed", extra={"task_id": task_id, "error": repr(exc)})
        finally:
            del self._scopes[task_id]
            canceled = task_id in self._cancel_requested
            self._cancel_requested.discard(task_id)
        if emit.ended:
            return
        with trio.CancelScope(shield=True):
            try:
                if canceled:
                    await emit.status(TaskState.CANCELED, "canceled by request")
                elif error is not None:
                    await emit.fail(f"agent error: {error}")
            except IllegalTransition:
                pass  # it ended meanwhile (e.g. canceled by the service while interrupted)
