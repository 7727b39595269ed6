"""The worker actors at the Link port, on virtual time, with a scripted fake server.

`FakeServer` plays the server's side of the link by the contract in
docs/worker-link.md (output deduplicated by seq, idempotent release, atomic
claims) and records every frame that reached it with its virtual time.
`FakeLink` is one connection to it that can drop (pending and later requests
raise `LinkDown`), stall frames before the server sees them or hold their acks
after it applied them, and fail the next N requests of an op. Tests sequence
with virtual time only: agents act at half-second offsets so that nothing they
do shares a tick with the link's own work.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing
import trio_websocket

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.worker import (
    Backoff,
    Heartbeat,
    LinkDown,
    LinkSlot,
    OutputConfig,
    Registrar,
    RegistrationRefused,
    SessionConfig,
    Sessions,
    TaskClaimer,
    WorkerIdentity,
    coalesce_text,
)
from protocol.models import (
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
)
from protocol.worker_link import (
    INTERNAL,
    STALE_ATTEMPT,
    UNAUTHORIZED,
    CancelBody,
    ClaimBody,
    ClaimReply,
    DrainBody,
    EmptyReply,
    HeartbeatBody,
    HeartbeatReply,
    LeaseRef,
    LinkError,
    LinkModel,
    LinkRefusedError,
    LostLease,
    OfferBody,
    OutputBody,
    OutputReply,
    RegisterBody,
    RegisterReply,
    ReleaseBody,
    ReleaseReply,
    RenewedLease,
    StatusBody,
    ack,
    decode_frame,
    encode_frame,
)
from runtime.server import ServerConfig, open_server
from runtime.worker import RunningWorker, WorkerConfig, WorkerRejected, link_url, open_worker
from tests.agents import Controls, scripted_agent
from tests.conftest import Rpc, results, user_message

TIMEOUT = 600  # virtual seconds
CTX = "ctx-1"


# --- the fake server and its links -------------------------------------------------------


def refusal(code: str, message: str = "refused") -> LinkRefusedError:
    return LinkRefusedError(LinkError(code=code, message=message))


class FakeServer:
    """The server's side of the link, by the contract; records what reached it."""

    def __init__(self, *, heartbeat_interval: float = 30.0) -> None:
        self.frames: list[tuple[float, str, Any]] = []
        """(time, op, body) of every frame that reached the server."""
        self.applied: dict[str, list[StreamResponse]] = {}
        """attempt id -> output events applied, in order."""
        self.acked: dict[str, int] = {}
        self.released: dict[str, ReleaseBody] = {}
        self.tasks: dict[str, ClaimReply] = {}
        """Claimable tasks: task id -> the grant a claim gets."""
        self.stale: set[str] = set()
        self.heartbeat_replies: deque[HeartbeatReply] = deque()
        self.refuse: dict[str, deque[LinkRefusedError]] = {}
        self.heartbeat_interval = heartbeat_interval
        self.links: list[FakeLink] = []
        self.connects: list[float] = []
        self.unreachable = 0  # refuse that many connections
        self._changed = trio.Event()

    def ops(self, op: str) -> list[tuple[float, Any]]:
        return [(t, body) for t, o, body in self.frames if o == op]

    def status_reports(self) -> list[tuple[float, StatusBody]]:
        """Status reports as they reached the server: alone, on output, on release."""
        out = []
        for t, op, body in self.frames:
            status = body if op == "status" else getattr(body, "status", None)
            if op in ("status", "output", "release") and status is not None:
                out.append((t, status))
        return out

    def statuses(self) -> list[tuple[float, str]]:
        return [(t, body.state) for t, body in self.status_reports()]

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    def handle(self, op: str, body: LinkModel) -> LinkModel:
        if isinstance(body, ReleaseBody) and body.output is not None:
            self.handle("output", body.output)  # recorded as sent alone, just before
        now = trio.current_time()
        self.frames.append((now, op, body))
        self._changed.set()
        self._changed = trio.Event()
        script = self.refuse.get(op)
        if script:
            raise script.popleft()
        if isinstance(body, RegisterBody):
            return RegisterReply(worker_id=body.worker_id,
                                 heartbeat_interval=self.heartbeat_interval,
                                 lease_ttl=3 * self.heartbeat_interval, server_version="test")
        if isinstance(body, HeartbeatBody):
            if self.heartbeat_replies:
                return self.heartbeat_replies.popleft()
            return HeartbeatReply(renewed=[
                RenewedLease(task_id=lease.task_id, attempt_id=lease.attempt_id,
                             lease_expires_at=now + 90) for lease in body.leases])
        if isinstance(body, ClaimBody):
            grant = self.tasks.pop(body.task_id, None)
            return grant or ClaimReply(granted=False, reason="NOT_CLAIMABLE")
        if isinstance(body, OutputBody | StatusBody | ReleaseBody):
            if body.attempt_id in self.stale:
                raise refusal(STALE_ATTEMPT, f"attempt {body.attempt_id} is stale")
        if isinstance(body, OutputBody):
            acked = self.acked.get(body.attempt_id, 0)
            if body.seq == acked + 1:
                self.applied.setdefault(body.attempt_id, []).extend(body.events)
                acked = body.seq
            self.acked[body.attempt_id] = acked
            return OutputReply(acked_through=acked)
        if isinstance(body, ReleaseBody):
            already = body.attempt_id in self.released
            self.released.setdefault(body.attempt_id, body)
            return ReleaseReply(already_released=already)
        return EmptyReply()

    def connector(self) -> Callable[[], Any]:
        @asynccontextmanager
        async def connect() -> AsyncIterator[FakeLink]:
            self.connects.append(trio.current_time())
            if self.unreachable > 0:
                self.unreachable -= 1
                raise LinkDown("connection refused")
            link = FakeLink(self)
            yield link
        return connect


class FakeLink:
    """One connection to a FakeServer, with faults on demand."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        server.links.append(self)
        self._push_send, self._push_receive = trio.open_memory_channel[Any](16)
        self.dropped = False
        self._dropped = trio.Event()
        self.fail: dict[str, list[BaseException]] = {}
        """op -> what its next requests raise, before the server sees them."""
        self.stall_until: dict[str, float] = {}
        """op -> frames sent earlier reach the server only then."""
        self.ack_until: dict[str, float] = {}
        """op -> frames are applied at once, their acks arrive only then."""
        self.drop_after: Callable[[str, Any], bool] | None = None
        """Drop the connection right after the server applied a matching frame."""

    @property
    def pushes(self) -> trio.MemoryReceiveChannel[Any]:
        return self._push_receive

    def push(self, body: Any) -> None:
        self._push_send.send_nowait(body)

    def drop(self) -> None:
        self.dropped = True
        self._dropped.set()
        self._push_send.close()

    def _check(self) -> None:
        if self.dropped:
            raise LinkDown("the fake connection dropped")

    async def _until(self, deadline: float | None) -> None:
        if deadline is not None and trio.current_time() < deadline:
            with trio.move_on_at(deadline):
                await self._dropped.wait()
        self._check()

    async def request(self, op: str, body: LinkModel) -> LinkModel:
        await trio.lowlevel.checkpoint()
        self._check()
        if self.fail.get(op):
            raise self.fail[op].pop(0)
        await self._until(self.stall_until.get(op))
        reply = self.server.handle(op, body)
        if self.drop_after is not None and self.drop_after(op, body):
            self.drop_after = None
            self.drop()
        await self._until(self.ack_until.get(op))
        return reply

    async def serve(self) -> None:
        await self._dropped.wait()
        raise LinkDown("the fake connection dropped")


# --- tasks and agents --------------------------------------------------------------------


def grant(task_id: str = "task-1", attempt_id: str = "att-1", text: str = "hello") -> ClaimReply:
    msg = Message(message_id=f"m-{task_id}", role=Role.USER, parts=[Part(text=text)],
                  task_id=task_id, context_id=CTX)
    task = Task(id=task_id, context_id=CTX, status=TaskStatus(state=TaskState.SUBMITTED))
    return ClaimReply(granted=True, attempt_id=attempt_id, lease_expires_at=1000.0, task=task,
                      message=msg, history=[], metadata={})


@attrs.define
class Script:
    """What the test agents saw, on virtual time."""

    started: list[tuple[float, str]] = attrs.Factory(list)
    emitted: list[float] = attrs.Factory(list)
    canceled: list[float] = attrs.Factory(list)


def chunk_agent(script: Script, n: int, *, first: float = 0.5, gap: float = 1.0) -> AgentSpec:
    """Emits text chunks "c0 ", "c1 ", ... of one artifact at first, first + gap, ..."""

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        script.started.append((trio.current_time(), ctx.task_id))
        artifact_id = "a-1"
        await trio.sleep(first)
        for i in range(n):
            await emit.artifact_text(f"c{i} ", artifact_id=artifact_id, append=i > 0,
                                     last_chunk=i == n - 1)
            script.emitted.append(trio.current_time())
            if i < n - 1:
                await trio.sleep(gap)

    return AgentSpec(name="chunks", run=run)


def sleepy_agent(script: Script, seconds: float = 1000.0) -> AgentSpec:
    """A long tool call: sleeps, then completes."""

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        script.started.append((trio.current_time(), ctx.task_id))
        await trio.sleep(0.5)
        await emit.artifact_text("thinking...", artifact_id="a-1")
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            script.canceled.append(trio.current_time())
            raise

    return AgentSpec(name="sleepy", run=run)


def texts(events: list[StreamResponse]) -> list[str]:
    out = []
    for ev in events:
        if ev.artifact_update is not None:
            out.append("".join(p.text or "" for p in ev.artifact_update.artifact.parts))
        elif ev.status_update is not None:
            out.append(f"<{ev.status_update.status.state.value}>")
        else:
            out.append("<message>")
    return out


@attrs.define
class World:
    server: FakeServer
    link: FakeLink
    slot: LinkSlot
    sessions: Sessions
    nursery: trio.Nursery


NO_LINGER = SessionConfig(output=OutputConfig(first_frame_linger=0))
"""Send the first frame at once (the default lingers 2 ms for a short session to end),
so that scripts see every frame at the time it was made."""

FOLD_AT_ONCE = SessionConfig(output=OutputConfig(fold_after=1, first_frame_linger=0))
"""Fold a chunk into the one before it as soon as two wait (the default waits for
a backlog of 16), so that short scripts show the folding."""


@asynccontextmanager
async def session_world(*agents: AgentSpec, concurrency: int = 1,
                        config: SessionConfig = NO_LINGER) -> AsyncIterator[World]:
    server = FakeServer()
    link = FakeLink(server)
    slot = LinkSlot()
    slot.attach(link, RegisterReply(worker_id="wrk-1", heartbeat_interval=30, lease_ttl=90,
                                    server_version="test"))
    sessions = Sessions(slot, list(agents), concurrency=concurrency, config=config,
                        rng=random.Random(0))
    async with trio.open_nursery() as nursery:
        await nursery.start(sessions.run)
        yield World(server, link, slot, sessions, nursery)
        nursery.cancel_scope.cancel()


# --- coalescing --------------------------------------------------------------------------


def chunk(text: str, *, append: bool = True, last: bool = False, artifact_id: str = "a-1",
          **part: Any) -> StreamResponse:
    return StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id="task-1", context_id=CTX, append=append or None, last_chunk=last or None,
        artifact={"artifactId": artifact_id, "parts": [{"text": text, **part}]}))


def test_coalesce_joins_text_appended_to_the_same_artifact() -> None:
    merged = coalesce_text(chunk("ab", append=False), chunk("cd", last=True), max_chars=100)
    assert merged is not None and merged.artifact_update is not None
    assert texts([merged]) == ["abcd"]
    assert merged.artifact_update.append is None  # still the artifact's first chunk
    assert merged.artifact_update.last_chunk is True


@pytest.mark.parametrize("first, then", [
    (chunk("ab", last=True), chunk("cd")),  # the artifact was closed
    (chunk("ab"), chunk("cd", append=False)),  # replaces, does not append
    (chunk("ab"), chunk("cd", artifact_id="a-2")),  # another artifact
    (chunk("ab"), chunk("cd", mediaType="text/markdown")),  # another kind of text
    (chunk("ab", append=False), chunk("c" * 99)),  # would exceed max_chars
])
def test_coalesce_leaves_what_it_cannot_join(first: StreamResponse,
                                             then: StreamResponse) -> None:
    assert coalesce_text(first, then, max_chars=100) is None


# --- sessions: output, status, release ----------------------------------------------------


async def test_session_streams_output_reports_status_and_releases(
        autojump_clock: trio.testing.MockClock) -> None:
    script = Script()
    with trio.fail_after(TIMEOUT):
        async with session_world(chunk_agent(script, 3)) as w:
            assert w.sessions.start(grant())
            assert w.sessions.leases() == [LeaseRef(task_id="task-1", attempt_id="att-1")]
            await w.server.wait_for(lambda: "att-1" in w.server.released)
            while w.sessions.active:
                await w.sessions.wait_changed()
    assert texts(w.server.applied["att-1"]) == ["<TASK_STATE_WORKING>", "c0 ", "c1 ", "c2 "]
    assert [body.seq for _, body in w.server.ops("output")] == [1, 2, 3, 4]
    # Reports are states, latest wins: "claimed" rides on the first output frame
    # unless "working" replaced it first (trio may run the two in either order).
    assert w.server.statuses() in ([(0.0, "claimed"), (0.0, "working"), (2.5, "completed")],
                                   [(0.0, "working"), (2.5, "completed")])
    (t, release), = w.server.ops("release")
    assert t == 2.5  # right after the last chunk
    assert release.outcome == "completed" and release.error is None
    assert release.artifacts is None  # never again: the output frames carried them
    assert w.sessions.statistics().outcomes == {"completed": 1}


async def test_the_first_frame_lingers_so_a_short_attempt_ends_in_one_round_trip(
        autojump_clock: trio.testing.MockClock) -> None:
    default = SessionConfig()  # first_frame_linger: 2 ms
    with trio.fail_after(TIMEOUT):
        async with session_world(chunk_agent(Script(), 3, first=0.0, gap=0.0),
                                 config=default) as w:
            w.sessions.start(grant())
            await w.server.wait_for(lambda: "att-1" in w.server.released)
        short = [(t, op) for t, op, _ in w.server.frames if op in ("output", "status", "release")]
        async with session_world(chunk_agent(Script(), 2, first=1.0), config=default) as w2:
            w2.sessions.start(grant())
            await w2.server.wait_for(lambda: "att-1" in w2.server.released)
    # All of the short attempt's output rode in its release (recorded as the output
    # frame just before it), sent as soon as the session ended: no separate round trip.
    assert short == [(0.0, "output"), (0.0, "release")]
    assert w.server.released["att-1"].output is not None
    assert texts(w.server.applied["att-1"]) == ["<TASK_STATE_WORKING>", "c0 ", "c1 ", "c2 "]
    # A longer one shows working 2 ms in, then streams as usual.
    sent = [(t, texts(body.events)) for t, body in w2.server.ops("output")]
    assert sent[0] == (pytest.approx(0.002), ["<TASK_STATE_WORKING>"])
    assert sent[1] == (1.0, ["c0 "])  # (the last chunk goes alone or in the release)
    assert texts(w2.server.applied["att-1"]) == ["<TASK_STATE_WORKING>", "c0 ", "c1 "]


async def test_text_chunks_coalesce_while_the_link_stalls(
        autojump_clock: trio.testing.MockClock) -> None:
    script = Script()
    with trio.fail_after(TIMEOUT):
        async with session_world(chunk_agent(script, 5), config=FOLD_AT_ONCE) as w:
            w.link.stall_until["output"] = 10.0
            w.sessions.start(grant())
            await w.server.wait_for(lambda: "att-1" in w.server.released)
    # The agent never waited on the network: its chunks went out on its own schedule.
    assert script.emitted == [0.5, 1.5, 2.5, 3.5, 4.5]
    outputs = [(t, body.seq, texts(body.events)) for t, body in w.server.ops("output")]
    assert outputs == [
        (10.0, 1, ["<TASK_STATE_WORKING>"]),
        (10.0, 2, ["c0 c1 c2 c3 c4 "]),  # five chunks, one event
    ]
    event = w.server.applied["att-1"][1].artifact_update
    assert event is not None and event.append is None and event.last_chunk is True


async def test_release_only_after_all_output_is_acked(
        autojump_clock: trio.testing.MockClock) -> None:
    script = Script()
    with trio.fail_after(TIMEOUT):
        async with session_world(chunk_agent(script, 2), config=FOLD_AT_ONCE) as w:
            w.link.ack_until["output"] = 20.0
            w.sessions.start(grant())
            await w.server.wait_for(lambda: "att-1" in w.server.released)
    ops = [(t, op) for t, op, _ in w.server.frames if op in ("output", "release")]
    # seq 1 reached the server at once, its ack only at t=20; meanwhile both chunks
    # folded into seq 2, and the release waited for its ack.
    assert ops == [(0.0, "output"), (20.0, "output"), (20.0, "release")]
    assert texts(w.server.applied["att-1"]) == ["<TASK_STATE_WORKING>", "c0 c1 "]
    # The outcome travels in the release, which waited for the acks.
    assert w.server.statuses()[-1] == (20.0, "completed")


async def test_dropped_connection_resends_with_no_loss_and_no_duplicate(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="actors.worker")
    script = Script()
    with trio.fail_after(TIMEOUT):
        async with session_world(chunk_agent(script, 10), config=FOLD_AT_ONCE) as w:
            # The server applies seq 3 ("c1 "), then the connection drops before the ack.
            w.link.drop_after = lambda op, body: op == "output" and body.seq == 3
            w.sessions.start(grant())
            await trio.sleep(6.0)
            assert not w.slot.is_up
            link2 = FakeLink(w.server)  # the connection subtree reconnected and registered
            w.slot.attach(link2, RegisterReply(worker_id="wrk-1", heartbeat_interval=30,
                                               lease_ttl=90, server_version="test"))
            await w.server.wait_for(lambda: "att-1" in w.server.released)
    assert script.emitted == [0.5 + i for i in range(10)]  # the agent never stopped
    sent = [(t, body.seq, texts(body.events)) for t, body in w.server.ops("output")]
    assert sent == [
        (0.0, 1, ["<TASK_STATE_WORKING>"]),
        (0.5, 2, ["c0 "]),
        (1.5, 3, ["c1 "]),  # applied; the ack was lost with the connection
        (6.0, 3, ["c1 "]),  # the same frame again: the server drops it
        (6.0, 4, ["c2 c3 c4 c5 "]),  # what gathered during the outage, folded
        (6.5, 5, ["c6 "]),
        (7.5, 6, ["c7 "]),
        (8.5, 7, ["c8 "]),
        (9.5, 8, ["c9 "]),
    ]
    assert texts(w.server.applied["att-1"]) == [
        "<TASK_STATE_WORKING>", "c0 ", "c1 ", "c2 c3 c4 c5 ", "c6 ", "c7 ", "c8 ", "c9 "]
    assert "".join(texts(w.server.applied["att-1"])[1:]) == "".join(f"c{i} " for i in range(10))
    assert w.server.released["att-1"].outcome == "completed"
    warnings = [r.getMessage() for r in caplog.records if r.name == "actors.worker.link_port"]
    assert warnings == ["link down (the fake connection dropped); holding the output frame "
                        "until it is back"]


async def test_output_buffer_is_bounded_while_the_link_is_down(
        autojump_clock: trio.testing.MockClock) -> None:
    emitted: list[float] = []

    async def steps(ctx: TaskContext, emit: Emitter) -> None:
        await trio.sleep(0.5)
        for i in range(6):
            await emit.working(f"step {i}")  # status updates never fold
            emitted.append(trio.current_time())

    config = SessionConfig(output_channel=1, output=OutputConfig(max_buffered=2))
    with trio.fail_after(TIMEOUT):
        async with session_world(AgentSpec("steps", steps), config=config) as w:
            w.link.drop()
            w.sessions.start(grant())
            await trio.sleep(10.0)
            # one in a frame (it carries the "claimed" report), two buffered, one in
            # the channel: the fifth emit blocks
            assert emitted == [0.5, 0.5, 0.5, 0.5]
            w.slot.attach(FakeLink(w.server), w.server.handle("register", RegisterBody(
                worker_id="wrk-1", name="n", hostname="h", max_concurrent_tasks=1,
                agents=["steps"])))
            await w.server.wait_for(lambda: "att-1" in w.server.released)
    assert emitted == [0.5] * 4 + [10.0] * 2
    assert len(w.server.applied["att-1"]) == 7  # working + six steps, none lost


async def test_cancel_ends_a_long_running_agent_canceled_and_releases_it(
        autojump_clock: trio.testing.MockClock) -> None:
    script = Script()
    with trio.fail_after(TIMEOUT):
        async with session_world(sleepy_agent(script)) as w:
            claimer = TaskClaimer(w.link, w.sessions, worker_id="wrk-1")
            w.server.tasks["task-1"] = grant()
            await w.nursery.start(claimer.run)
            w.link.push(OfferBody(task_id="task-1"))
            await trio.sleep(5.0)
            w.link.push(CancelBody(task_id="task-1", attempt_id="att-1",
                                   reason="canceled by the client"))
            await w.server.wait_for(lambda: "att-1" in w.server.released)
            release_time = trio.current_time()
    assert script.started == [(0.0, "task-1")]
    assert script.canceled == [5.0]
    assert release_time == 5.0  # within the bound: at once
    assert w.server.released["att-1"].outcome == "canceled"
    assert texts(w.server.applied["att-1"]) == ["<TASK_STATE_WORKING>", "thinking..."]
    assert w.server.statuses()[-1] == (5.0, "canceled")


async def test_failure_reports_error_and_partial_output(
        autojump_clock: trio.testing.MockClock) -> None:
    async def broken(ctx: TaskContext, emit: Emitter) -> None:
        await emit.artifact_text("half an ans", artifact_id="a-1")
        raise RuntimeError("provider timed out")

    with trio.fail_after(TIMEOUT):
        async with session_world(AgentSpec("broken", broken)) as w:
            w.sessions.start(grant())
            await w.server.wait_for(lambda: "att-1" in w.server.released)
    (_, status), = [(t, b) for t, b in w.server.status_reports() if b.state == "failed"]
    assert status.error == "agent error: provider timed out"
    assert status.partial_output == "half an ans"
    release = w.server.released["att-1"]
    assert release.outcome == "failed" and release.error == "agent error: provider timed out"


async def test_completion_reports_provider_model_tool_calls_and_tokens(
        autojump_clock: trio.testing.MockClock) -> None:
    async def llm(ctx: TaskContext, emit: Emitter) -> None:
        await emit.working()
        for name in ("search", "read"):
            await emit.status(TaskState.WORKING, metadata={
                "trio-a2a/toolCall": {"name": name, "phase": "start"}})
        await emit.artifact_text("answer", metadata={"trio-a2a/usage": {
            "provider": "ollama", "model": "llama3.1:8b", "input": 812, "output": 95}})
        await emit.complete("done")

    config = SessionConfig(provider="ollama")
    with trio.fail_after(TIMEOUT):
        async with session_world(AgentSpec("llm", llm), config=config) as w:
            w.sessions.start(grant())
            await w.server.wait_for(lambda: "att-1" in w.server.released)
    final = w.server.status_reports()[-1][1]
    assert final.model_dump(by_alias=True, exclude_none=True) == {
        "taskId": "task-1", "attemptId": "att-1", "state": "completed", "provider": "ollama",
        "model": "llama3.1:8b", "toolCallsCount": 2, "tokensUsed": {"input": 812, "output": 95}}
    release = w.server.released["att-1"]
    assert release.outcome == "completed" and release.message is not None
    assert release.message.parts[0].text == "done"
    # The completion itself travels in the release, not in the output.
    assert "<TASK_STATE_COMPLETED>" not in texts(w.server.applied["att-1"])


async def test_input_required_is_released_with_the_question(
        autojump_clock: trio.testing.MockClock) -> None:
    async def asking(ctx: TaskContext, emit: Emitter) -> None:
        await emit.input_required("which branch?")

    with trio.fail_after(TIMEOUT):
        async with session_world(AgentSpec("ask", asking)) as w:
            w.sessions.start(grant())
            await w.server.wait_for(lambda: "att-1" in w.server.released)
    release = w.server.released["att-1"]
    assert release.outcome == "input-required"
    assert release.message is not None and release.message.parts[0].text == "which branch?"
    assert w.server.statuses()[-1][1] == "input-required"


async def test_stale_attempt_stops_the_session_without_release(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    script = Script()
    with trio.fail_after(TIMEOUT):
        async with session_world(sleepy_agent(script)) as w:
            w.server.stale.add("att-1")
            w.sessions.start(grant())
            while w.sessions.active:
                await w.sessions.wait_changed()
            assert trio.current_time() == 0.0
    assert w.server.released == {}
    assert w.sessions.statistics().outcomes == {"lost": 1}
    assert any("attempt lost" in r.getMessage() for r in caplog.records)


async def test_a_grant_without_a_message_fails_the_attempt(
        autojump_clock: trio.testing.MockClock) -> None:
    bad = grant().model_copy(update={"message": None, "history": []})
    with trio.fail_after(TIMEOUT):
        async with session_world(sleepy_agent(Script())) as w:
            w.sessions.start(bad)
            await w.server.wait_for(lambda: "att-1" in w.server.released)
    assert w.server.released["att-1"].error == \
        "agent error: claim of task task-1 carries no message to answer"


# --- registrar ---------------------------------------------------------------------------


IDENTITY = WorkerIdentity(worker_id="wrk-1", name="box", hostname="box.lan", agents=("echo",),
                          max_concurrent_tasks=4, capabilities=("gpu",))


async def test_registration_is_retried_with_seeded_backoff_while_unreachable(
        autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer()
    link = FakeLink(server)
    link.fail["register"] = [LinkDown("connection refused")] * 4
    slot = LinkSlot()
    registrar = Registrar(link, slot, IDENTITY, rng=random.Random(7),
                          retry=Backoff(base=1.0, factor=2.0, max=30.0, jitter=0.5))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(registrar.run)
            assert slot.is_up and slot.link is link
            nursery.cancel_scope.cancel()
    # 1, 2, 4, 8 s, each scaled by 1 + 0.5 * uniform(-1, 1) from Random(7)
    assert registrar.attempts == pytest.approx(
        [0.0, 0.8238328, 2.1255311, 6.7292690, 11.3087593], abs=1e-6)
    assert [t for t, _ in server.ops("register")] == [registrar.attempts[-1]]
    assert not slot.is_up  # detached when the registrar stopped


async def test_fifty_workers_do_not_retry_in_lock_step(
        autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer()
    registrars = []
    for i in range(50):
        link = FakeLink(server)
        link.fail["register"] = [LinkDown("connection refused")] * 2
        registrars.append(Registrar(link, LinkSlot(), attrs.evolve(IDENTITY, worker_id=f"w{i}"),
                                    rng=random.Random(1000 + i)))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for r in registrars:
                nursery.start_soon(r.register)
    second = [r.attempts[1] for r in registrars]
    assert len(set(second)) == 50  # no two retry at the same moment
    assert all(0.4 <= t <= 0.6 for t in second)  # 0.5 s +- 20 %
    assert max(second) - min(second) > 0.15


async def test_registration_carries_models_by_provider_or_none_if_listing_fails(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    async def models() -> dict[str, list[str]]:
        return {"openai": ["gpt-4o", "gpt-4o-mini"], "ollama": ["llama3.1:8b"]}

    async def broken() -> dict[str, list[str]]:
        raise ConnectionError("ollama is not running")

    server = FakeServer()
    with trio.fail_after(TIMEOUT):
        await Registrar(FakeLink(server), LinkSlot(), IDENTITY, list_models=models).register()
        await Registrar(FakeLink(server), LinkSlot(), IDENTITY, list_models=broken).register()
    first, second = (body for _, body in server.ops("register"))
    assert first.model_dump(by_alias=True, exclude_none=True) == {
        "workerId": "wrk-1", "name": "box", "hostname": "box.lan", "capabilities": ["gpu"],
        "maxConcurrentTasks": 4, "agents": ["echo"],
        "models": {"openai": ["gpt-4o", "gpt-4o-mini"], "ollama": ["llama3.1:8b"]}}
    assert second.models == {}
    assert [r.levelno for r in caplog.records if "could not list models" in r.getMessage()] \
        == [logging.WARNING]


async def test_a_bad_token_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer()
    server.refuse["register"] = deque([refusal(UNAUTHORIZED, "bad worker token")])
    with trio.fail_after(TIMEOUT), pytest.raises(RegistrationRefused) as info:
        await Registrar(FakeLink(server), LinkSlot(), IDENTITY).register()
    assert info.value.code == UNAUTHORIZED


# --- heartbeat ---------------------------------------------------------------------------


async def test_three_heartbeat_failures_log_an_error_and_the_worker_carries_on(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="actors.worker")
    script = Script()
    with trio.fail_after(TIMEOUT):
        async with session_world(chunk_agent(script, 30, gap=2.0)) as w:
            registrar = Registrar(w.link, w.slot, IDENTITY)
            beat = Heartbeat(w.link, registrar, w.sessions, agent="chunks", interval=10.0)
            w.link.fail["heartbeat"] = [LinkDown("gone"), refusal(INTERNAL, "db busy")]
            w.link.stall_until["heartbeat"] = 45.0  # the third one gets no ack in time
            w.sessions.start(grant())
            await w.nursery.start(beat.run)
            await trio.sleep(39.9)
            assert beat.failures == 2
            await trio.sleep(0.2)
            assert beat.failures == 3
            await w.server.wait_for(lambda: len(w.server.ops("heartbeat")) == 2)
            assert beat.failures == 0
            await w.server.wait_for(lambda: "att-1" in w.server.released)
    heartbeats = w.server.ops("heartbeat")
    assert [t for t, _ in heartbeats] == [50.0, 60.0]  # it kept beating
    assert heartbeats[0][1].model_dump(by_alias=True) == {
        "workerId": "wrk-1", "agent": "chunks", "status": "processing", "activeTasks": 1,
        "leases": [{"taskId": "task-1", "attemptId": "att-1"}]}
    logged = [(r.levelname, r.getMessage()) for r in caplog.records
              if r.name == "actors.worker.heartbeat"]
    assert logged == [
        ("WARNING", "heartbeat failed: gone"),
        ("WARNING", "heartbeat failed: INTERNAL: db busy"),
        ("ERROR", "3 consecutive heartbeats failed (last: no ack within the interval); "
                  "the worker carries on"),
    ]
    # the session never noticed
    assert script.emitted == [0.5 + 2 * i for i in range(30)]
    assert w.server.released["att-1"].outcome == "completed"


async def test_heartbeat_reply_cancels_stops_lost_leases_and_drains(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    script = Script()
    drained: list[str] = []
    with trio.fail_after(TIMEOUT):
        async with session_world(sleepy_agent(script), concurrency=2) as w:
            registrar = Registrar(w.link, w.slot, IDENTITY)
            beat = Heartbeat(w.link, registrar, w.sessions, agent="sleepy", interval=10.0,
                             on_drain=drained.append)
            w.server.heartbeat_replies.append(HeartbeatReply(
                cancel=[LeaseRef(task_id="task-1", attempt_id="att-1")],
                lost=[LostLease(task_id="task-2", attempt_id="att-2",
                                reason="lease expired; task re-queued")],
                drain=True))
            w.sessions.start(grant("task-1", "att-1"))
            w.sessions.start(grant("task-2", "att-2"))
            await w.nursery.start(beat.run)
            await w.server.wait_for(lambda: "att-1" in w.server.released)
            while w.sessions.active:
                await w.sessions.wait_changed()
            assert trio.current_time() == 10.0
    assert script.canceled == [10.0, 10.0]
    assert w.server.released["att-1"].outcome == "canceled"
    assert "att-2" not in w.server.released  # lost: another attempt owns it
    assert drained == ["heartbeat reply"]
    assert w.sessions.statistics().outcomes == {"canceled": 1, "lost": 1}


async def test_unknown_worker_in_a_heartbeat_reply_registers_again(
        autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(TIMEOUT):
        async with session_world(sleepy_agent(Script())) as w:
            w.slot.detach()
            registrar = Registrar(w.link, w.slot, IDENTITY)
            beat = Heartbeat(w.link, registrar, w.sessions, agent="sleepy", interval=10.0)
            w.server.heartbeat_replies.append(HeartbeatReply(unknown_worker=True))
            await w.nursery.start(registrar.run)
            await w.nursery.start(beat.run)
            await w.server.wait_for(lambda: len(w.server.ops("register")) == 2)
            assert w.slot.is_up
    assert [t for t, _ in w.server.ops("register")] == [0.0, 10.0]
    assert registrar.registrations == 2 and w.slot.attaches == 3


# --- task claimer ------------------------------------------------------------------------


async def test_claims_up_to_the_limit_and_the_rest_by_priority_when_a_slot_frees(
        autojump_clock: trio.testing.MockClock) -> None:
    script = Script()

    async def work(ctx: TaskContext, emit: Emitter) -> None:
        script.started.append((trio.current_time(), ctx.task_id))
        await trio.sleep(10.0 if ctx.task_id == "task-1" else 20.0)

    with trio.fail_after(TIMEOUT):
        async with session_world(AgentSpec("work", work), concurrency=2) as w:
            claimer = TaskClaimer(w.link, w.sessions, worker_id="wrk-1")
            for i in (1, 2, 3):
                w.server.tasks[f"task-{i}"] = grant(f"task-{i}", f"att-{i}")
            await w.nursery.start(claimer.run)
            # task-4 is offered too, but another worker wins it before this one is free
            for i, priority in ((1, 0), (2, 0), (4, 0), (3, 5)):
                w.link.push(OfferBody(task_id=f"task-{i}", priority=priority))
                await trio.sleep(1.0)
            assert claimer.known == ["task-3", "task-4"]  # full: kept, best first
            await w.server.wait_for(lambda: len(w.server.released) == 3)
    claims = [(t, body.task_id) for t, body in w.server.ops("claim")]
    assert claims == [(0.0, "task-1"), (1.0, "task-2"), (10.0, "task-3"), (21.0, "task-4")]
    assert script.started == [(0.0, "task-1"), (1.0, "task-2"), (10.0, "task-3")]
    assert claimer.granted == 3 and claimer.not_granted == 1 and claimer.known == []


async def test_a_failed_claim_is_polled_again_and_drain_stops_claiming(
        autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(TIMEOUT):
        async with session_world(sleepy_agent(Script(), 1.0), concurrency=4) as w:
            claimer = TaskClaimer(w.link, w.sessions, worker_id="wrk-1", poll_interval=5.0)
            w.server.tasks["task-1"] = grant("task-1", "att-1")
            w.server.tasks["task-2"] = grant("task-2", "att-2")
            w.server.refuse["claim"] = deque([refusal(INTERNAL, "db busy")])
            await w.nursery.start(claimer.run)
            w.link.push(OfferBody(task_id="task-1"))
            await w.server.wait_for(lambda: "att-1" in w.server.released)
            w.link.push(DrainBody(reason="server shutting down"))
            w.link.push(OfferBody(task_id="task-2"))
            await trio.sleep(30.0)
    assert [(t, b.task_id) for t, b in w.server.ops("claim")] == [(0.0, "task-1"),
                                                                   (5.0, "task-1")]
    assert claimer.draining and "task-2" in w.server.tasks  # never claimed


# --- the worker tree ---------------------------------------------------------------------


async def test_worker_reconnects_with_seeded_backoff_and_sessions_survive(
        autojump_clock: trio.testing.MockClock) -> None:
    script = Script()
    server = FakeServer(heartbeat_interval=30.0)
    server.unreachable = 3
    server.tasks["task-1"] = grant()
    config = WorkerConfig(seed=11)
    with trio.fail_after(TIMEOUT):
        async with open_worker("http://server.test", token="t", agent=chunk_agent(script, 20),
                               worker_id="wrk-1", name="box", hostname="box.lan",
                               connect=server.connector(), config=config) as worker:
            await worker.wait_registered()
            # 0.5 s, 1 s, 2 s, each scaled by 1 + 0.2 * uniform(-1, 1) from the seed
            assert server.connects == pytest.approx([0.0, 0.4904759, 1.5143849, 3.8537533],
                                                    abs=1e-6)
            t0 = server.connects[-1]
            server.links[-1].push(OfferBody(task_id="task-1"))
            await trio.sleep(5.0)
            server.links[-1].drop()  # mid-task
            await server.wait_for(lambda: "att-1" in server.released)
            while worker.sessions.active:
                await worker.sessions.wait_changed()
            stats = worker.statistics()
    assert len(server.connects) == 5 and server.connects[-1] > server.connects[-2]
    assert [body.worker_id for _, body in server.ops("register")] == ["wrk-1", "wrk-1"]
    assert script.started == [(pytest.approx(t0), "task-1")]  # one session, never restarted
    applied = texts(server.applied["att-1"])
    assert applied[0] == "<TASK_STATE_WORKING>"
    assert "".join(applied[1:]) == "".join(f"c{i} " for i in range(20))  # nothing lost or doubled
    assert server.released["att-1"].outcome == "completed"
    assert stats.registrations == 2 and stats.outcomes == {"completed": 1}


async def test_worker_stops_when_the_server_refuses_its_token(
        autojump_clock: trio.testing.MockClock) -> None:
    server = FakeServer()
    server.refuse["register"] = deque([refusal(UNAUTHORIZED, "bad worker token")])
    with trio.fail_after(TIMEOUT), pytest.raises(WorkerRejected, match="bad worker token"):
        async with open_worker("http://server.test", token="nope",
                               connect=server.connector()) as worker:
            await worker.wait_registered()


def test_link_url() -> None:
    assert link_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/worker/ws"
    assert link_url("https://a2a.example/base/") == "wss://a2a.example/base/worker/ws"
    assert link_url("ws://h:1/worker/ws") == "ws://h:1/worker/ws"
    with pytest.raises(ValueError):
        link_url("ftp://h")


# --- one real WebSocket ------------------------------------------------------------------


async def test_websocket_worker_runs_a_task_end_to_end() -> None:
    """A minimal link server on loopback (trio-websocket): the real client, echo agent."""
    got: dict[str, Any] = {"outputs": []}
    done = trio.Event()

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        auth = dict(request.headers).get(b"authorization")
        if auth != b"Bearer s3cret":
            await request.reject(401)
            return
        ws = await request.accept()
        pending = {"s-1": "offer"}
        while True:
            try:
                frame = decode_frame(await ws.get_message(), pending=pending)
            except trio_websocket.ConnectionClosed:
                return
            if frame.is_ack:
                if frame.ok:
                    got.setdefault("acked_pushes", []).append(frame.id)
                else:
                    assert frame.error is not None
                    got.setdefault("refused", []).append((frame.id, frame.error.code))
                continue
            body = frame.body
            if isinstance(body, RegisterBody):
                got["register"] = body
                await ws.send_message(ack(frame.id, RegisterReply(
                    worker_id=body.worker_id, heartbeat_interval=60, lease_ttl=180,
                    server_version="smoke")))
                # a worker op pushed to the worker, then noise: answered, the link stays up
                await ws.send_message(encode_frame("claim", ClaimBody(worker_id="w",
                                                                      task_id="t"), "s-0"))
                await ws.send_message("not json")
                await ws.send_message(encode_frame("offer", OfferBody(task_id="task-1"), "s-1"))
            elif isinstance(body, ClaimBody):
                await ws.send_message(ack(frame.id, grant(text="hello websocket world")))
            elif isinstance(body, OutputBody):
                got["outputs"].extend(body.events)
                await ws.send_message(ack(frame.id, OutputReply(acked_through=body.seq)))
            elif isinstance(body, ReleaseBody):
                got["release"] = body
                if body.output is not None:  # the last output frame rides on the release
                    got["outputs"].extend(body.output.events)
                await ws.send_message(ack(frame.id, ReleaseReply()))
                done.set()
            else:
                await ws.send_message(ack(frame.id))

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(trio_websocket.serve_websocket, handler,
                                         "127.0.0.1", 0, None)
            url = f"http://127.0.0.1:{server.port}"
            async with open_worker(url, token="s3cret", name="smoke") as worker:
                await worker.wait_registered()
                await done.wait()
            with pytest.raises(WorkerRejected, match="HTTP 401"):
                async with open_worker(url, token="wrong") as worker:
                    await worker.wait_registered()
            nursery.cancel_scope.cancel()
    assert got["register"].name == "smoke" and got["register"].agents == ["echo"]
    assert got["acked_pushes"] == ["s-1"]  # the offer was acked, then acted on
    assert sorted(got["refused"], key=str) == [("s-0", "UNKNOWN_OP"), (None, "INVALID_FRAME")]
    assert got["release"].outcome == "completed"
    assert "".join(texts(got["outputs"])[1:]) == "hello websocket world"


# --- against the real server (its /worker/ws endpoint), on loopback ------------------------


@asynccontextmanager
async def remote_only(controls: Controls, *, concurrency: int = 2,
                      lease_ttl: float = 30.0) -> AsyncIterator[tuple[Rpc, RunningWorker]]:
    """A server with no local worker and one remote worker running the scripted agent."""
    config = ServerConfig(port=0, store="memory", local_workers=0, lease_ttl=lease_ttl,
                          worker_tokens={"worker-secret": "worker-1"})
    async with open_server(config) as srv, \
            open_worker(srv.url, token="worker-secret", agent=scripted_agent(controls),
                        concurrency=concurrency, name="remote-1") as worker, \
            httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
        await worker.wait_registered()
        yield Rpc(client, "1.0"), worker


def send(text: str, **config: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"message": user_message(text)}
    if config:
        params["configuration"] = config
    return params


async def test_remote_worker_serves_blocking_and_streaming_sends() -> None:
    controls = Controls()
    with trio.fail_after(20):
        async with remote_only(controls) as (rpc, worker):
            task = (await rpc.call("SendMessage", send("echo hello remote world")))["task"]
            events = results(await rpc.stream("SendStreamingMessage", send("chunks 3")))
            stats = worker.statistics()
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    # the echo agent's chunks as streamed (a slow link may fold them into fewer
    # parts); the release does not write the artifact a second time
    assert "".join(p["text"] for p in task["artifacts"][0]["parts"]) == "echo hello remote world"
    assert len(task["artifacts"]) == 1
    chunks = "".join(p["text"] for ev in events if "artifactUpdate" in ev
                     for p in ev["artifactUpdate"]["artifact"]["parts"])
    assert chunks.startswith("c0") and "c2" in chunks
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert stats.connects == 1 and stats.registrations == 1 and stats.started == 2


async def test_cancel_task_reaches_the_remote_session() -> None:
    controls = Controls()
    with trio.fail_after(20):
        async with remote_only(controls) as (rpc, _):
            task = (await rpc.call("SendMessage", send("wait", returnImmediately=True)))["task"]
            await controls.wait_started(task["id"])
            canceled = await rpc.call("CancelTask", {"id": task["id"]})
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    assert controls.cancelled == [task["id"]]


async def test_input_required_then_resumed_on_the_remote_worker() -> None:
    controls = Controls()
    with trio.fail_after(20):
        async with remote_only(controls) as (rpc, _):
            asked = (await rpc.call("SendMessage", send("ask")))["task"]
            answer = user_message("ask Ada", taskId=asked["id"], contextId=asked["contextId"])
            done = (await rpc.call("SendMessage", {"message": answer}))["task"]
    assert asked["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    assert asked["status"]["message"]["parts"][0]["text"] == "what is your name?"
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert done["artifacts"][0]["parts"][0]["text"] == "answer: ask Ada"


async def test_a_task_queued_while_the_remote_worker_is_busy_runs_when_it_frees() -> None:
    controls = Controls()
    with trio.fail_after(20):
        async with remote_only(controls, concurrency=1) as (rpc, _):
            first = (await rpc.call("SendMessage", send("wait", returnImmediately=True)))["task"]
            await controls.wait_started(first["id"])
            second = (await rpc.call("SendMessage", send("echo later",
                                                         returnImmediately=True)))["task"]
            controls.gate.set()
            with trio.move_on_after(3):
                await controls.wait_started(second["id"])
    assert second["id"] in controls.started
