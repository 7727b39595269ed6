"""SessionActor: one claimed task run by its agent; Sessions: all of them.

The SessionActor runs the agent through the agent API (`actors.agent`), the
same `TaskContext` / `Emitter` the server uses in-process. Its emitter's sink is
the actor itself: every event goes on a bounded channel to the session's
OutputStreamer, except the event that ends the task when the release can say it
(completed, failed, canceled, input-required): the server writes that one when
it gets the release. The agent runs in the actor's cancel scope; `cancel()`
(CancelTask) cancels it and the session ends canceled; `give_back()` (the
worker is stopping) cancels it and the session ends "requeue": released
unfinished, for the server to queue again at once. Returning without ending
the task completes it; raising fails it. The actor then reports a
`SessionResult` to the StatusReporter and closes both channels.

Emitting is a cancellation point but not a schedule point while the output
channel has room: an agent's burst of events (an echo, a tool result, a final
answer) reaches the OutputStreamer in one piece, so a short task travels in its
release alone, and an agent that never awaits anything else still yields once
the channel is full.

Every event passes the session's `OutputGuard` first: large artifact chunks are
cut to fit the link's frames, and output past the cap (or an event that cannot
fit) stops the agent and ends the session failed with the reason, released
once. Usage and tool calls are read from event metadata (`SessionStats`).

`Sessions` is the sessions nursery and the lease table. It lives outside the
connection subtree, so sessions survive reconnects. Each granted claim becomes
one session subtree: SessionActor, OutputStreamer and StatusReporter in one
nursery. `cancel(..., release=True)` cancels the agent (it still flushes and
releases canceled); `release=False` (lease lost) stops the whole subtree.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.trace_port import CurrentTraceparent, SessionSpan, traced_session
from actors.worker.grant_context import claim_context
from actors.worker.link_port import AttemptLost, LinkSlot
from actors.worker.output_guard import OutputGuard, OutputRefused
from actors.worker.output_streamer import OutputConfig, OutputStreamer
from actors.worker.session_stats import SessionStats
from actors.worker.status_reporter import (
    Outcome,
    SessionReport,
    SessionResult,
    StatusConfig,
    StatusReporter,
    Working,
)
from protocol.models import Message, Role, StreamResponse, TaskState
from protocol.worker_link import ClaimReply, LeaseRef

__all__ = [
    "SessionActor",
    "SessionConfig",
    "Sessions",
    "SessionsStatistics",
    "claim_context",
]

log = logging.getLogger(__name__)

AGENT_KEY = "trio-a2a/agent"
_RELEASED: dict[TaskState, Outcome] = {
    TaskState.COMPLETED: "completed", TaskState.FAILED: "failed",
    TaskState.CANCELED: "canceled", TaskState.INPUT_REQUIRED: "input-required",
    TaskState.AUTH_REQUIRED: "auth-required",
}


def _text(message: Message | None) -> str:
    if message is None:
        return ""
    return "\n".join(p.text for p in message.parts if p.text is not None)


class SessionActor:
    """Runs one agent call; see the module docstring. It is the emitter's EventSink."""

    def __init__(
        self,
        agent: AgentSpec,
        ctx: TaskContext,
        output: trio.MemorySendChannel[StreamResponse],
        reports: trio.MemorySendChannel[SessionReport],
        *,
        provider: str | None = None,
        model: str | None = None,
        guard: OutputGuard | None = None,
    ) -> None:
        self._agent = agent
        self.ctx = ctx
        self._output = output
        self._reports = reports
        self._guard = guard
        self.refused: str | None = None
        """Why the output could not go on (`OutputRefused`): the session fails with it."""
        self.stats = SessionStats(provider=provider, model=model)
        self.cancel_scope = trio.CancelScope()
        self.canceled = False
        self.given_back = False
        self._ending: StreamResponse | None = None
        self.result: SessionResult | None = None

    def cancel(self) -> None:
        """CancelTask: stop the agent; the session ends canceled (unless it ended first)."""
        self.canceled = True
        self.cancel_scope.cancel()

    def give_back(self) -> None:
        """The worker is stopping: stop the agent, end "requeue" (unless ended first)."""
        self.given_back = True
        self.cancel_scope.cancel()

    async def emit(self, event: StreamResponse, *, final: bool) -> None:
        # A cancellation point, but no yield while the channel has room: a burst of
        # events then reaches the OutputStreamer together (fewer, fuller frames), and
        # an agent that emits without awaiting anything else still yields once the
        # channel is full.
        await trio.lowlevel.checkpoint_if_cancelled()
        events = [event]
        if self._guard is not None:
            try:
                events = self._guard.admit(event)
            except OutputRefused as exc:  # the agent stops here; the session fails
                self.refused = str(exc)
                self.cancel_scope.cancel()
                await trio.lowlevel.checkpoint()
                return
        self.stats.observe(event)
        if final:
            self._ending = event
            assert event.status_update is not None
            if event.status_update.status.state in _RELEASED:
                return  # the release says it
        for piece in events:
            try:
                self._output.send_nowait(piece)
            except trio.WouldBlock:
                await self._output.send(piece)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        # Plain `with`: closing a memory channel needs no schedule point, and the
        # streamer then sees the end of the output in the same step as its last events.
        with self._reports:
            with self._output:
                result = await self._run_agent()
            self.result = result
            try:
                self._reports.send_nowait(result)  # room for it: Working and the result
            except trio.WouldBlock:
                await self._reports.send(result)

    async def _run_agent(self) -> SessionResult:
        ctx = self.ctx
        emit = Emitter(self, task_id=ctx.task_id, context_id=ctx.context_id,
                       state=ctx.task.status.state)
        error: Exception | None = None
        with self.cancel_scope:
            try:
                await emit.working()
                self._reports.send_nowait(Working())  # room for it: the first report
                await self._agent.run(ctx, emit)
                if not emit.ended:
                    await emit.complete()
            except Exception as exc:  # the agent's failure is the task's, not the worker's
                error = exc
                log.info("agent failed", extra={"task_id": ctx.task_id, "error": repr(exc)})
        return self._result(error)

    def _result(self, error: Exception | None) -> SessionResult:
        s = self.stats
        base: dict[str, Any] = dict(
            provider=s.provider, model=s.model,
            tool_calls_count=s.tool_calls, tokens_used=s.tokens_used,
            partial_output=s.partial_output)
        if self.refused is not None:
            return SessionResult("failed", error=self.refused, **base)
        if self._ending is not None:
            assert self._ending.status_update is not None
            status = self._ending.status_update.status
            if status.state == TaskState.REJECTED:
                why = _text(status.message) or "no reason given"
                return SessionResult("failed", error=f"rejected by the agent: {why}", **base)
            outcome = _RELEASED[status.state]
            failed = outcome == "failed"
            return SessionResult(outcome, message=status.message,
                                 error=(_text(status.message) or "the agent failed")
                                 if failed else None, **base)
        if self.given_back and not self.canceled:
            return SessionResult("requeue", **base)
        if self.canceled or self.cancel_scope.cancelled_caught:
            return SessionResult("canceled", **base)
        return SessionResult("failed", error=f"agent error: {error}", **base)


@attrs.frozen
class SessionConfig:
    output_channel: int = 16
    """Events between an agent and its OutputStreamer. Small: the streamer drains it
    at once into its own (coalescing, bounded) buffer."""
    output: OutputConfig = OutputConfig()
    status: StatusConfig = StatusConfig()
    provider: str | None = None
    """Provider and model reported until the agent's usage metadata names them."""
    model: str | None = None
    max_output_bytes: int | None = None
    """This worker's cap on one attempt's output; the server's (learned when
    registering) applies too, the smaller wins. None: the server's alone."""
    max_event_bytes: int = 1 << 20
    """Artifact chunks larger than this (JSON bytes) are cut into several."""
    span: SessionSpan | None = None  # tracing on: each session's span, under the grant's
    traceparent: CurrentTraceparent | None = None  # tracing on: stamped on its frames


@attrs.frozen
class SessionsStatistics:
    running: int
    concurrency: int
    started: int
    outcomes: Mapping[str, int]
    """Finished sessions by outcome; "lost" for those stopped without a release."""
    coalesced: int = 0  # text chunks the output streamers folded into the one before


@attrs.define(eq=False)
class _Running:
    task_id: str
    attempt_id: str
    actor: SessionActor
    streamer: OutputStreamer
    reporter: StatusReporter
    traceparent: str | None = None
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)


class Sessions:
    """The sessions nursery and the leases the worker holds; see the module docstring."""

    def __init__(
        self,
        link: LinkSlot,
        agents: Sequence[AgentSpec],
        *,
        concurrency: int,
        config: SessionConfig = SessionConfig(),
        rng: random.Random | None = None,
    ) -> None:
        if not agents:
            raise ValueError("a worker needs at least one agent")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._link = link
        self._agents = {a.name: a for a in agents}
        self._default = agents[0]
        self.concurrency = concurrency
        self._config = config
        self._rng = rng if rng is not None else random.Random()
        self._running: dict[str, _Running] = {}
        self._nursery: trio.Nursery | None = None
        self._changed = trio.Event()
        self._started = 0
        self._outcomes: dict[str, int] = {}
        self._coalesced = 0

    @property
    def agent_names(self) -> list[str]:
        return list(self._agents)

    @property
    def active(self) -> int:
        return len(self._running)

    @property
    def free(self) -> int:
        return self.concurrency - len(self._running)

    def leases(self) -> list[LeaseRef]:
        return [LeaseRef(task_id=r.task_id, attempt_id=r.attempt_id)
                for r in self._running.values()]

    def get(self, task_id: str) -> SessionActor | None:
        run = self._running.get(task_id)
        return None if run is None else run.actor

    def statistics(self) -> SessionsStatistics:
        return SessionsStatistics(running=len(self._running), concurrency=self.concurrency,
                                  started=self._started, outcomes=dict(self._outcomes),
                                  coalesced=self._coalesced + sum(
                                      r.streamer.statistics().coalesced
                                      for r in self._running.values()))

    async def wait_changed(self) -> None:
        """Until a session starts or ends."""
        await self._changed.wait()

    async def wait_idle(self) -> None:
        """Until no session runs."""
        while self._running:
            await self._changed.wait()

    def give_back_all(self) -> int:
        """Stop every agent and release its task unfinished ("requeue"), for the
        server to queue again at once; how many."""
        for run in self._running.values():
            run.actor.give_back()
        return len(self._running)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def start(self, grant: ClaimReply, *, agent: str | None = None) -> bool:
        """Run a granted claim; False if that attempt already runs (a resent claim)."""
        if self._nursery is None:
            raise RuntimeError("the sessions nursery is not running")
        if not grant.granted or grant.task is None or grant.attempt_id is None:
            raise ValueError("only a granted claim starts a session")
        task_id, attempt_id = grant.task.id, grant.attempt_id
        if task_id in self._running:
            return False
        name = agent or (grant.metadata or {}).get(AGENT_KEY)
        spec = self._agents.get(name, self._default) if isinstance(name, str) else self._default
        try:
            ctx = claim_context(grant)
        except ValueError as exc:  # a grant the agent cannot run: the attempt fails
            ctx = TaskContext(task_id=task_id, context_id=grant.task.context_id,
                              message=Message(message_id="-", role=Role.USER, parts=[]),
                              history=(), task=grant.task)
            spec = _unrunnable(str(exc))
        cfg = self._config
        out_send, out_receive = trio.open_memory_channel[StreamResponse](cfg.output_channel)
        rep_send, rep_receive = trio.open_memory_channel[SessionReport](2)
        actor = SessionActor(spec, ctx, out_send, rep_send,
                             provider=cfg.provider, model=cfg.model, guard=self._guard())
        streamer = OutputStreamer(self._link, task_id=task_id, attempt_id=attempt_id,
                                  events=out_receive, config=cfg.output, rng=self._rng)
        reporter = StatusReporter(self._link, task_id=task_id, attempt_id=attempt_id,
                                  reports=rep_receive, output=streamer, provider=cfg.provider,
                                  model=cfg.model, config=cfg.status, rng=self._rng)
        run = _Running(task_id, attempt_id, actor, streamer, reporter, grant.traceparent)
        self._running[task_id] = run
        self._started += 1
        log.info("session started", extra={"task_id": task_id, "attempt_id": attempt_id,
                                           "agent": spec.name})
        self._nursery.start_soon(self._run, run, name=f"session {task_id}")
        self._wake()
        return True

    def _guard(self) -> OutputGuard:
        """The output guard of a new session: the smaller of this worker's cap and
        the one the server gave at registration."""
        cfg = self._config
        registration = self._link.registration
        server_cap = registration.max_output_bytes if registration is not None else None
        caps = [(c, src) for c, src in ((server_cap, "the server's --max-output-bytes"),
                                        (cfg.max_output_bytes, "the worker's max_output_bytes"))
                if c is not None]
        cap, source = min(caps) if caps else (None, "")
        return OutputGuard(cap=cap, cap_source=source, max_event_bytes=cfg.max_event_bytes,
                           max_frame_bytes=cfg.output.max_frame_bytes)

    def cancel(self, task_id: str, attempt_id: str, *, release: bool, reason: str) -> bool:
        """Cancel the session of that attempt; False if it does not run here.

        `release`: CancelTask (the agent stops; output is flushed and the attempt
        released canceled). Otherwise the lease is lost: everything stops at once.
        """
        run = self._running.get(task_id)
        if run is None or run.attempt_id != attempt_id:
            return False
        extra = {"task_id": task_id, "attempt_id": attempt_id, "reason": reason}
        if release:
            log.info("canceling session", extra=extra)
            run.actor.cancel()
        else:
            log.warning("lease lost; stopping session without release", extra=extra)
            run.scope.cancel()
        return True

    async def _run(self, run: _Running) -> None:
        outcome = "lost"
        try:
            with run.scope, traced_session(self._config.span, run):
                async with trio.open_nursery() as nursery:
                    # No start() handshakes: the reporter's "claimed" is a report the
                    # streamer takes whenever it comes, and the session's events wait in
                    # the bounded channel until the streamer reads them.
                    nursery.start_soon(run.reporter.run)
                    nursery.start_soon(run.streamer.run)
                    await run.actor.run()  # in this task: one spawn less per session
            if run.reporter.release_reply is not None and run.reporter.result is not None:
                outcome = run.reporter.result.outcome
        except Exception as exc:  # one session's failure never takes the others down
            extra = {"task_id": run.task_id, "attempt_id": run.attempt_id}
            if _only(exc, AttemptLost):
                log.warning("attempt lost; session stopped without release: %s", exc,
                            extra=extra)
            else:
                log.error("session failed", extra=extra, exc_info=exc)
        finally:
            del self._running[run.task_id]
            self._coalesced += run.streamer.statistics().coalesced
            self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
            self._wake()


def _unrunnable(why: str) -> AgentSpec:
    async def refuse(ctx: TaskContext, emit: Emitter) -> None:
        raise ValueError(why)

    return AgentSpec(name="unrunnable", run=refuse)


def _only(exc: BaseException, kind: type[Exception]) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only(e, kind) for e in exc.exceptions)
    return isinstance(exc, kind)
