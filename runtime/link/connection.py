"""One worker's connection to the server, transport aside: its registration and
the serving of each frame it sends (heartbeat, claim, output, status, release),
and the forwarding of the dispatcher's pushes to it.

Apart from the endpoint (runtime.link.endpoint) so that every transport, the
WebSocket, the HTTP binding and the in-process link, serves frames with this one
class; it sees the endpoint only as `LinkState`, so it does not import it.
The output dedup and resent-claim rules are described in runtime.link.endpoint.
Output counts against the per-task cap (`Dispatcher.max_output_bytes`, told to
workers when they register): a frame that would pass it is not applied, the
task fails with the reason, once, and the frame is answered ``STALE_ATTEMPT``
(the attempt is over). So does a frame whose events break the task lifecycle
(`IllegalOutput`): the task fails at once with the transition named. A
``requeue`` release (the worker is stopping) has the task queued again at once.
Each heartbeat also ends the leases the worker holds but does not run, except
those granted on this connection (`granted`): grants lost with another one.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from actors.dispatcher import (
    CancelPush,
    Claim,
    Dispatcher,
    DrainPush,
    IllegalOutput,
    NotClaimable,
    Offer,
    OutputLimitExceeded,
    OutputOutOfOrder,
    Push,
    StaleAttempt,
    UnknownWorker,
    WorkerInfo,
    WorkerSession,
)
from actors.store_port import TaskRecord
from actors.task_store import ServerTaskStore
from actors.trace_port import SessionSpan
from protocol import worker_link as wl
from protocol.models import StreamResponse
from protocol.output_size import output_bytes
from protocol.states import is_terminal
from runtime.link.frames import (
    Refused,
    check_carried_status,
    check_task_id,
    event_task_id,
    release_events,
)
from runtime.link.grants import build_grant, context_messages

__all__ = ["SERVER_VERSION", "LinkConnection", "LinkState", "PushSink"]

log = logging.getLogger(__name__)

try:
    SERVER_VERSION = importlib.metadata.version("trio-a2a")
except importlib.metadata.PackageNotFoundError:
    SERVER_VERSION = "0.1.0"


class LinkState(Protocol):
    """What a connection uses of the endpoint (`WorkerLinkEndpoint`): shared by all
    connections of one server."""

    dispatcher: Dispatcher
    store: ServerTaskStore
    grants: dict[tuple[str, str], wl.ClaimReply]
    """(worker id, task id) -> the grant, answered again to a resent claim."""
    frame_span: SessionSpan | None
    """Tracing on: a span (op, task id, the task's stored traceparent) around each
    output, status and release frame, in the trace of the request that queued it."""

    def forget(self, task_id: str, attempt_id: str) -> None:
        """The attempt is over (released or stale): drop its grant."""
        ...


_TRACED_OPS = frozenset({"output", "status", "release"})

PushSink = Callable[[str, wl.LinkModel], Awaitable[None]]
"""Hands one push (op, body) to the worker's transport."""


class LinkConnection:
    """One worker connection, transport aside: its registration, its ops, its pushes.

    `handle(op, body)` answers one frame the worker sent (a reply model, or
    `LinkRefusedError`); pushes go out through `push`. The WebSocket and HTTP
    bindings wrap it in frames (runtime.link.endpoint); a worker inside the server
    process calls it directly (runtime.link.local), so every worker, local or
    remote, goes through the same code. Push forwarding runs in `nursery`, which
    the owner sets before the first frame.

    With `durable_acks` an output or release is acked once committed, so a worker
    never forgets output the server could still lose. A worker in the server's
    own process shares its fate and passes False: acked once applied (readers
    still see only what is committed).
    """

    def __init__(self, endpoint: LinkState, push: PushSink, principal: str, *,
                 durable_acks: bool = True, in_process: bool = False) -> None:
        self.ep = endpoint
        self.durable_acks = durable_acks
        self.in_process = in_process
        """The worker runs inside the server process: its leases end with it."""
        self.principal = principal
        self.worker_id: str | None = None
        self.session: WorkerSession | None = None
        self.nursery: trio.Nursery | None = None
        self.context_history = False
        self.granted: set[str] = set()
        """Attempt ids granted on this connection (their answers went out on it)."""
        self._push = push
        self._handlers: dict[str, Callable[[Any], Awaitable[wl.LinkModel | None]]] = {
            "heartbeat": self.heartbeat, "claim": self.claim, "output": self.output,
            "status": self.status, "release": self.release,
        }

    def _forget(self, task_id: str, attempt_id: str) -> None:
        """The attempt is over: drop its grant (and its mark as granted here)."""
        self.granted.discard(attempt_id)
        self.ep.forget(task_id, attempt_id)

    def disconnect(self) -> None:
        if self.worker_id is not None:
            self.ep.dispatcher.unregister(self.worker_id, self.session)

    async def handle(self, op: str, body: Any) -> wl.LinkModel | None:
        """The reply to one frame; `LinkRefusedError` with the link's error code."""
        try:
            if op == "register":
                return self.register(body)
            handler = self._handlers.get(op)
            if handler is None:
                raise Refused(wl.UNKNOWN_OP, f"op: {op!r} is not sent to a server")
            if self.worker_id is None:
                raise Refused(wl.UNKNOWN_WORKER, "register first: no worker on this connection")
            worker_id = getattr(body, "worker_id", self.worker_id)
            if worker_id != self.worker_id:
                raise Refused(wl.UNKNOWN_WORKER, f"this connection is registered as worker "
                                                  f"{self.worker_id!r}, not {worker_id!r}")
            if self.ep.frame_span is None or op not in _TRACED_OPS:
                return await handler(body)
            traceparent = body.traceparent  # the worker's session's; else the request's
            if traceparent is None and (head := self.ep.store.cached_head(body.task_id)):
                traceparent = head.dispatch.trace_parent
            with self.ep.frame_span(op, body.task_id, traceparent):
                return await handler(body)
        except Refused as exc:
            code, message = exc.code, exc.message
        except (StaleAttempt, OutputLimitExceeded, IllegalOutput) as exc:
            code, message = wl.STALE_ATTEMPT, str(exc)
            self._forget(getattr(body, "task_id", ""), getattr(body, "attempt_id", ""))
        except UnknownWorker as exc:
            code, message = wl.UNKNOWN_WORKER, str(exc)
        except Exception as exc:
            log.exception("worker-link frame failed", extra={"worker_id": self.worker_id,
                                                             "op": op})
            code, message = wl.INTERNAL, f"the server failed: {type(exc).__name__}"
        log.info("worker-link frame refused", extra={"worker_id": self.worker_id,
                                                     "op": op, "code": code,
                                                     "error": message})
        raise wl.LinkRefusedError(wl.LinkError(code=code, message=message))

    # --- ops --------------------------------------------------------------------

    def register(self, body: wl.RegisterBody) -> wl.RegisterReply:
        dispatcher = self.ep.dispatcher
        if self.worker_id is not None and self.worker_id != body.worker_id:
            dispatcher.unregister(self.worker_id, self.session)
        info = WorkerInfo(worker_id=body.worker_id, name=body.name,
                          capabilities=frozenset(body.capabilities),
                          agents=frozenset(body.agents), max_concurrent=body.max_concurrent_tasks,
                          in_process=self.in_process, skills=tuple(body.skills or ()))
        session = dispatcher.register(info)  # closes the pushes of an older session
        self.worker_id, self.session = body.worker_id, session
        self.context_history = bool(body.context_history)
        assert self.nursery is not None
        self.nursery.start_soon(self._forward_pushes, session)
        log.info("worker link registered", extra={
            "worker_id": body.worker_id, "worker_name": body.name, "hostname": body.hostname,
            "principal": self.principal, "agents": sorted(body.agents),
            "max_concurrent": body.max_concurrent_tasks,
            "models": {p: len(m) for p, m in body.models.items()}})
        ttl = dispatcher.lease_ttl
        return wl.RegisterReply(worker_id=body.worker_id, heartbeat_interval=ttl / 3,
                                lease_ttl=ttl, server_version=SERVER_VERSION,
                                max_output_bytes=dispatcher.max_output_bytes)

    @property
    def pushes_pending(self) -> bool:
        """Pushes queued for this worker or being sent to it."""
        return self.session is not None and self.session.unsent > 0

    async def _forward_pushes(self, session: WorkerSession) -> None:
        async for push in session.receive_pushes:
            try:
                await self._forward(push)
            finally:
                session.sent()

    async def _forward(self, push: Push) -> None:
        if isinstance(push, Offer):
            await self._push("offer", wl.OfferBody(
                task_id=push.task_id, priority=push.priority, agent=push.agent,
                required_capabilities=list(push.capabilities)))
        elif isinstance(push, CancelPush):
            await self._push("cancel", wl.CancelBody(
                task_id=push.task_id, attempt_id=push.attempt_id, reason=push.reason))
        else:
            assert isinstance(push, DrainPush)
            await self._push("drain", wl.DrainBody(reason=push.reason))

    async def heartbeat(self, body: wl.HeartbeatBody) -> wl.HeartbeatReply:
        assert self.worker_id is not None
        reply = await self.ep.dispatcher.heartbeat(
            self.worker_id, [(lease.task_id, lease.attempt_id) for lease in body.leases],
            granted_here=self.granted)
        for task_id, attempt_id, _ in reply.lost:
            self._forget(task_id, attempt_id)
        return wl.HeartbeatReply(
            renewed=[wl.RenewedLease(task_id=t, attempt_id=a, lease_expires_at=e)
                     for t, a, e in reply.renewed],
            lost=[wl.LostLease(task_id=t, attempt_id=a, reason=r) for t, a, r in reply.lost],
            cancel=[wl.LeaseRef(task_id=t, attempt_id=a) for t, a in reply.cancel],
            unknown_worker=reply.unknown_worker, queued=reply.queued,
            drain=reply.drain is not None)

    async def claim(self, body: wl.ClaimBody) -> wl.ClaimReply:
        if body.task_id is None:  # a poll: whatever waits for this worker
            try:
                claim = await self.ep.dispatcher.claim_next(body.worker_id)
            except NotClaimable:
                return wl.ClaimReply(granted=False, reason=wl.NOTHING_QUEUED)
            return await self._grant(body.worker_id, claim)
        key = (body.worker_id, body.task_id)
        try:
            claim = await self.ep.dispatcher.claim(body.worker_id, body.task_id)
        except NotClaimable as exc:
            grant = self.ep.grants.get(key)
            if (grant is not None and self.session is not None
                    and self.session.active.get(body.task_id) == grant.attempt_id):
                return grant  # a resent claim of the winner: the same grant
            log.debug("claim not granted", extra={"worker_id": body.worker_id,
                                                  "task_id": body.task_id, "error": str(exc)})
            return wl.ClaimReply(granted=False, reason=wl.NOT_CLAIMABLE)
        return await self._grant(body.worker_id, claim)

    async def _grant(self, worker_id: str, claim: Claim) -> wl.ClaimReply:
        # Before any await: the claim is no longer "being claimed", and a heartbeat
        # served meanwhile (an in-process link's) must not take its lease for lost.
        self.granted.add(claim.attempt_id)
        context = (await context_messages(self.ep.store, claim.record)
                   if self.context_history else None)
        grant = build_grant(claim, context)
        self.ep.grants[(worker_id, claim.task_id)] = grant
        log.debug("task claimed over the link", extra={"worker_id": worker_id,
                                                      "task_id": claim.task_id,
                                                      "attempt_id": claim.attempt_id})
        return grant

    async def output(self, body: wl.OutputBody) -> wl.OutputReply:
        for i, ev in enumerate(body.events):
            check_task_id(event_task_id(ev), body.task_id, f"body.events[{i}]")
        check_carried_status(body)
        try:
            # Shielded: once queued the write lands, so its ack must say so.
            with trio.CancelScope(shield=True):
                await self.ep.dispatcher.write(body.task_id, body.attempt_id, body.events,
                                               wait=self.durable_acks, output_seq=body.seq,
                                               output_bytes=output_bytes(body.events))
        except OutputOutOfOrder as exc:
            if body.seq > exc.applied + 1:
                log.info("output gap: not applied", extra={"task_id": body.task_id,
                                                           "attempt_id": body.attempt_id,
                                                           "seq": body.seq, "acked": exc.applied})
            return wl.OutputReply(acked_through=exc.applied)  # a resend, or beyond a gap
        except KeyError:
            raise Refused(wl.UNKNOWN_TASK, f"no task {body.task_id!r}") from None
        except ValueError as exc:  # not IllegalTransition: the dispatcher ends the attempt
            raise Refused(wl.INVALID_FRAME, f"body.events: {exc}") from None
        if body.status is not None:
            self._log_status(body.status)
        return wl.OutputReply(acked_through=body.seq)

    async def status(self, body: wl.StatusBody) -> None:
        head = await self.ep.store.head(body.task_id)
        if head is None:
            raise Refused(wl.UNKNOWN_TASK, f"no task {body.task_id!r}")
        lease = head.dispatch.lease
        current = lease.attempt_id if lease is not None else head.dispatch.last_attempt_id
        if current != body.attempt_id:
            raise StaleAttempt(f"attempt {body.attempt_id!r} of task {body.task_id!r} "
                               f"is no longer current")
        self._log_status(body)
        return None

    def _log_status(self, body: wl.StatusBody) -> None:
        """Reports along the way at DEBUG; the outcome is logged with the release."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        tokens = body.tokens_used
        log.debug("worker status", extra={
            "worker_id": self.worker_id, "task_id": body.task_id, "attempt_id": body.attempt_id,
            "state": body.state, "provider": body.provider, "model": body.model,
            "tool_calls_count": body.tool_calls_count,
            "tokens_input": tokens.input if tokens else None,
            "tokens_output": tokens.output if tokens else None,
            "error": body.error, "partial_output_chars": len(body.partial_output or "")})

    async def release(self, body: wl.ReleaseBody) -> wl.ReleaseReply:
        check_carried_status(body)
        head = await self.ep.store.head(body.task_id)
        if head is None:
            raise Refused(wl.UNKNOWN_TASK, f"no task {body.task_id!r}")
        released = (head.dispatch.lease is None
                    and head.dispatch.last_attempt_id == body.attempt_id)
        out = body.output
        if body.outcome == "requeue":  # given back unfinished: its output is moot
            assert self.worker_id is not None
            try:
                already = await self.ep.dispatcher.give_back(self.worker_id, body.task_id,
                                                             body.attempt_id)
            except NotClaimable as exc:
                raise Refused(wl.UNKNOWN_TASK, str(exc)) from None
        elif out is not None and not released:  # the last output rides on the release
            if (out.task_id, out.attempt_id) != (body.task_id, body.attempt_id):
                raise Refused(wl.INVALID_FRAME, "body.output: belongs to attempt "
                               f"{out.attempt_id!r} of task {out.task_id!r}, not this one")
            already = await self._release_with_output(body, out, head)
            if already is None:  # not as one write: the frame first, then the release
                reply = await self.output(out)
                if reply.acked_through < out.seq:
                    raise Refused(wl.INVALID_FRAME, f"body.output: seq {out.seq} follows a "
                                   f"gap (output is held through seq {reply.acked_through})")
                head = await self.ep.store.head(body.task_id) or head
                already = await self._release(body, head)
        else:
            already = await self._release(body, head)
        self._forget(body.task_id, body.attempt_id)
        status = body.status
        tokens = status.tokens_used if status is not None else None
        log.info("task released over the link", extra={
            "worker_id": self.worker_id, "task_id": body.task_id,
            "attempt_id": body.attempt_id, "outcome": body.outcome,
            "already_released": already, "error": body.error,
            "provider": status.provider if status else None,
            "model": status.model if status else None,
            "tool_calls_count": status.tool_calls_count if status else None,
            "tokens_input": tokens.input if tokens else None,
            "tokens_output": tokens.output if tokens else None,
            "partial_output_chars": len(status.partial_output or "") if status else None})
        return wl.ReleaseReply(already_released=already)

    async def _release(self, body: wl.ReleaseBody, head: TaskRecord) -> bool:
        events: list[StreamResponse] = []
        if is_terminal(head.state):
            log.info("release of an ended task: only the lease is dropped",
                     extra={"task_id": body.task_id, "state": head.state.value})
        else:
            events = release_events(body, head.task)
        try:
            return await self.ep.dispatcher.release(body.task_id, body.attempt_id, events,
                                                    wait=self.durable_acks,
                                                    output_bytes=_release_bytes(body, events))
        except NotClaimable as exc:
            raise Refused(wl.UNKNOWN_TASK, str(exc)) from None
        except ValueError as exc:  # not IllegalTransition: the dispatcher ends the attempt
            raise Refused(wl.INVALID_FRAME, f"body: {exc}") from None

    async def _release_with_output(self, body: wl.ReleaseBody, out: wl.OutputBody,
                                   head: TaskRecord) -> bool | None:
        """The release and the output frame it carries as one write (the common end
        of an attempt: one store write, not two). None when that cannot be: the frame
        was already applied or follows a gap, or the task or the frame ends the task
        otherwise; the caller then takes the two steps."""
        lease = head.dispatch.lease
        if (lease is None or lease.attempt_id != body.attempt_id
                or out.seq != head.dispatch.output_seq + 1 or is_terminal(head.state)):
            return None
        streamed: set[str] = set()
        for i, ev in enumerate(out.events):
            check_task_id(event_task_id(ev), body.task_id, f"body.output.events[{i}]")
            if ev.artifact_update is not None:
                streamed.add(ev.artifact_update.artifact.artifact_id)
            elif ev.status_update is not None and is_terminal(ev.status_update.status.state):
                return None
        check_carried_status(out)
        ending = release_events(body, head.task, streamed)
        events = [*out.events, *ending]
        try:
            with trio.CancelScope(shield=True):  # once queued the write lands: ack it
                already = await self.ep.dispatcher.release(
                    body.task_id, body.attempt_id, events, wait=self.durable_acks,
                    output_seq=out.seq,
                    output_bytes=output_bytes(out.events) + _release_bytes(body, ending))
        except OutputOutOfOrder:
            return None  # moved on meanwhile
        except NotClaimable as exc:
            raise Refused(wl.UNKNOWN_TASK, str(exc)) from None
        except ValueError as exc:
            raise Refused(wl.INVALID_FRAME, f"body: {exc}") from None
        if out.status is not None:
            self._log_status(out.status)
        return already


def _release_bytes(body: wl.ReleaseBody, events: list[StreamResponse]) -> int:
    """The output a release's own events add, for the output cap: its artifacts and
    final message; not a failure's error, which is the worker's report, not output."""
    failed = body.outcome == "failed"
    return output_bytes(ev for ev in events if not (failed and ev.status_update is not None))
