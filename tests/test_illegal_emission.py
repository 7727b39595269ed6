"""An illegal transition is refused where it is made, and never leaves a task stuck.

The agent's emitter checks each status against the task lifecycle
(`protocol.states`): a `submitted` status while working raises `IllegalEmission`
(an `AgentProtocolError` and an `IllegalTransition`) in the agent and sends
nothing. A frame the server still finds illegal (a worker of another make, or
one that bypasses its emitter) ends the attempt failed at once, with a reason
naming the transition and the frame answered STALE_ATTEMPT: no wait for the
lease to expire, no retries, no traceback.

Real server on loopback; real workers over the WebSocket, or a bare one sending
frames by hand. The lease is the default 90 s: a task that waited for it would
run out the time limit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio_websocket

from actors.agent import AgentProtocolError, AgentSpec, Emitter, TaskContext
from actors.store_port import TaskRecord
from protocol import worker_link as wl
from protocol.models import (
    StreamResponse,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from protocol.states import IllegalTransition
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.worker import open_worker
from tests.link.test_endpoint import LinkClient, ws_url
from tests.link.test_large_output import finished, submit

TIMEOUT = 20
TRANSITION = "TASK_STATE_WORKING -> TASK_STATE_SUBMITTED"


@asynccontextmanager
async def remote(agent: AgentSpec) -> AsyncIterator[RunningServer]:
    async with open_server(ServerConfig(port=0, store="memory", local_workers=0)) as server, \
            open_worker(server.url, token=None, agent=agent, name="remote") as worker:
        await worker.wait_registered()
        yield server


def status_text(record: TaskRecord) -> str:
    message = record.task.status.message
    return "".join(p.text or "" for p in message.parts) if message is not None else ""


def no_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [(r.name, r.getMessage()) for r in errors]


async def test_the_agent_is_refused_a_submitted_status_and_can_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    refused: list[BaseException] = []

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        await emit.artifact_text("half")
        try:
            await emit.status(TaskState.SUBMITTED)
        except AgentProtocolError as exc:
            refused.append(exc)
        await emit.complete("done anyway")

    with trio.fail_after(TIMEOUT):
        async with remote(AgentSpec(name="confused", run=run)) as server:
            task_id = await submit(server.url)
            record = await finished(server, task_id)
            events = await server.store.read_events(task_id, 0, 100)
    (exc,) = refused
    assert isinstance(exc, IllegalTransition)  # both kinds, for either `except`
    assert (exc.old, exc.new) == (TaskState.WORKING, TaskState.SUBMITTED)
    assert TRANSITION in str(exc)
    assert record.state is TaskState.COMPLETED and record.dispatch.attempts == 1
    states = [e.event.status_update.status.state for e in events
              if e.event.status_update is not None]
    assert TaskState.SUBMITTED not in states  # nothing was sent
    no_errors(caplog)


async def test_an_agent_that_lets_the_refusal_raise_fails_the_task_at_once(
        caplog: pytest.LogCaptureFixture) -> None:
    async def run(ctx: TaskContext, emit: Emitter) -> None:
        await emit.status(TaskState.SUBMITTED, "back to the queue, please")
        await emit.complete("never")

    with trio.fail_after(TIMEOUT):
        async with remote(AgentSpec(name="confused", run=run)) as server:
            task_id = await submit(server.url)
            record = await finished(server, task_id)
    assert record.state is TaskState.FAILED and record.dispatch.attempts == 1
    assert TRANSITION in status_text(record), status_text(record)
    no_errors(caplog)


async def test_a_worker_that_bypasses_its_emitter_fails_the_task_at_once(
        caplog: pytest.LogCaptureFixture) -> None:
    async def run(ctx: TaskContext, emit: Emitter) -> None:
        # An emitter that does not know the task's state checks nothing on its first
        # status: the server is then the one to refuse it.
        rogue = Emitter(emit._sink, task_id=ctx.task_id, context_id=ctx.context_id)
        await rogue.status(TaskState.SUBMITTED)
        await trio.sleep(0.2)  # the frame goes out (not in the release)
        await emit.complete("never")

    with trio.fail_after(TIMEOUT):
        async with remote(AgentSpec(name="rogue", run=run)) as server:
            task_id = await submit(server.url)
            record = await finished(server, task_id)
    assert record.state is TaskState.FAILED and record.dispatch.attempts == 1
    assert record.dispatch.lease is None
    assert TRANSITION in status_text(record), status_text(record)
    no_errors(caplog)


def _status(grant: wl.ClaimReply, state: TaskState) -> StreamResponse:
    assert grant.task is not None
    return StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=grant.task.id, context_id=grant.task.context_id,
        status=TaskStatus(state=state)))


@pytest.mark.parametrize("frame", ["output", "release"])
async def test_the_server_ends_an_attempt_whose_frame_breaks_the_lifecycle(frame: str) -> None:
    """A bare worker sends `submitted` after `working`, in an output frame or in the
    last output frame its release carries."""
    with trio.fail_after(TIMEOUT):
        async with open_server(ServerConfig(port=0, store="memory", local_workers=0)) as server, \
                trio_websocket.open_websocket_url(ws_url(server)) as ws, \
                trio.open_nursery() as nursery:
            link = LinkClient(ws)
            nursery.start_soon(link.read)
            await link.register()
            task_id = await submit(server.url)
            grant = await link.ok("claim", wl.ClaimBody(worker_id="wrk-1", task_id=task_id))
            assert grant.granted and grant.attempt_id is not None
            out = wl.OutputBody(task_id=task_id, attempt_id=grant.attempt_id, seq=1,
                                events=[_status(grant, TaskState.WORKING),
                                        _status(grant, TaskState.SUBMITTED)])
            if frame == "output":
                refused = await link.refused("output", out)
            else:
                refused = await link.refused("release", wl.ReleaseBody(
                    task_id=task_id, attempt_id=grant.attempt_id, outcome="completed",
                    output=out))
            record = await server.store.get_task(task_id)
            nursery.cancel_scope.cancel()
    assert refused.code == wl.STALE_ATTEMPT, refused
    assert TRANSITION in refused.message, refused.message
    assert record is not None and record.state is TaskState.FAILED
    assert record.dispatch.lease is None and record.dispatch.attempts == 1
    assert TRANSITION in status_text(record), status_text(record)
