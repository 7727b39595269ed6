"""Fault injection on virtual time: CancelTask during a slow model stream.

The real server core (store on a memory backend, dispatcher, `WorkerLinkEndpoint`,
`A2AService`) and a real worker tree (`open_worker`) running the LLM agent
(`runtime.agents.llm`) over the in-process link. Only the provider is a fake, at its
port: a model that streams one text chunk every 10 s of virtual time for ten minutes
and records the `trio.Cancelled` it sees.

CancelTask reaches the worker two ways (docs/worker-link.md, `Dispatcher.cancel`): a
``cancel`` push at once, and the ``cancel`` list of every heartbeat reply until the
attempt is released. With the push delivered, the task ends canceled in the very tick
of the request (push, session cancel, release and commit take no time). With every
cancel push lost on the link, it ends at the next heartbeat: the heartbeat runs every
`heartbeatInterval` seconds from the registration, and the server says that interval
is a third of its lease TTL.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.store_port import StoredEvent
from actors.task_store import ServerTaskStore
from actors.worker import OutputConfig, Push
from protocol import worker_link as wl
from protocol.models import (
    CancelTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskState,
)
from runtime.agents.llm import LlmAgentConfig, llm_agent
from runtime.link.endpoint import WorkerLinkEndpoint
from runtime.link.local import open_in_process_link
from runtime.providers.base import ChatMessage, Done, ProviderEvent, TextDelta, ToolSpec, Usage
from runtime.worker import Connection, WorkerConfig, open_worker
from tests.sim import SimServer, connect_losing_pushes, open_sim_server

LEASE_TTL = 12.0
"""The server's lease TTL: heartbeats every 4 s."""
EVERY = 10.0
CHUNKS = 60  # ten minutes of stream
SEND_AT = 1.0
CANCEL_AT = 35.0
"""After the chunks at 11, 21 and 31 s; before the heartbeat at 36 s and the chunk at 41 s."""


class SlowProvider:
    """A model that streams `chunks` pieces of text, one every `every` seconds."""

    name = "slow"

    def __init__(self, *, every: float = EVERY, chunks: int = CHUNKS) -> None:
        self.every = every
        self.chunks = chunks
        self.streamed: list[tuple[float, str]] = []
        self.cancelled_at: list[float] = []

    async def list_models(self) -> list[str]:
        return ["slow"]

    async def aclose(self) -> None:
        return None

    async def stream_chat(self, *, model: str, messages: Sequence[ChatMessage],
                          tools: Sequence[ToolSpec] = (),
                          max_tokens: int | None = None) -> AsyncIterator[ProviderEvent]:
        try:
            for i in range(self.chunks):
                await trio.sleep(self.every)
                text = f"c{i} "
                self.streamed.append((trio.current_time(), text))
                yield TextDelta(text)
        except trio.Cancelled:
            self.cancelled_at.append(trio.current_time())
            raise
        yield Usage(1, self.chunks)
        yield Done("end_turn")


def connector(endpoint: WorkerLinkEndpoint, lost: list[tuple[float, Push]] | None
              ) -> Callable[[], AbstractAsyncContextManager[Connection]]:
    """Connect over the in-process link; with `lost`, losing (and noting) cancel pushes."""
    if lost is None:
        return lambda: open_in_process_link(endpoint, durable_acks=True)
    return connect_losing_pushes(endpoint, lambda push: isinstance(push, wl.CancelBody), lost)


def open_core() -> AbstractAsyncContextManager[SimServer]:
    return open_sim_server(lease_ttl=LEASE_TTL, reap_interval=1.0)


async def record_log(store: ServerTaskStore, task_id: str,
                     out: list[tuple[float, StoredEvent]]) -> None:
    """Every committed event of the task with the virtual time it was committed at."""
    cursor = 0
    while events := await store.wait_events(task_id, cursor):
        for ev in events:
            out.append((trio.current_time(), ev))
            cursor = ev.seq


def describe(ev: StoredEvent) -> str:
    e = ev.event
    if e.artifact_update is not None:
        return "chunk:" + "".join(p.text or "" for p in e.artifact_update.artifact.parts)
    if e.status_update is not None:
        return e.status_update.status.state.value
    if e.task is not None:
        return "task:" + e.task.status.state.value
    return "message"


@pytest.mark.parametrize("lose_cancel_pushes", [False, True], ids=["push", "push-lost"])
async def test_cancel_during_a_slow_model_stream_ends_the_task_canceled_within_the_bound(
        autojump_clock: trio.testing.MockClock, tmp_path: Path,
        lose_cancel_pushes: bool) -> None:
    provider = SlowProvider()
    agent = llm_agent(LlmAgentConfig(provider=provider, model="slow",
                                     workspace_dir=tmp_path / "work"))
    lost: list[tuple[float, Push]] | None = [] if lose_cancel_pushes else None
    log: list[tuple[float, StoredEvent]] = []
    with trio.fail_after(120):
        async with open_core() as core, trio.open_nursery() as nursery:
            async with open_worker("in-process", token=None, agent=agent, name="wrk-1",
                                   worker_id="wrk-1", connect=connector(core.endpoint, lost),
                                   config=WorkerConfig(seed=7)) as worker:
                await worker.wait_registered()
                registered_at = trio.current_time()
                registration = worker.slot.registration
                await trio.sleep(SEND_AT - trio.current_time())
                sent = await core.service.send_message(SendMessageRequest(
                    message=Message(message_id="m-1", role=Role.USER,
                                    parts=[Part(text="tell me a very long story")]),
                    configuration=SendMessageConfiguration(return_immediately=True)))
                task_id = sent.record.task_id
                nursery.start_soon(record_log, core.store, task_id, log)
                await core.store.wait_record(
                    task_id, lambda r: sum(len(a.parts) for a in r.task.artifacts or ()) == 3)
                three_chunks_at = trio.current_time()
                await trio.sleep(CANCEL_AT - trio.current_time())
                canceled = await core.service.cancel_task(CancelTaskRequest(id=task_id))
                returned_at = trio.current_time()
                while worker.sessions.active:
                    await worker.sessions.wait_changed()
                session_ended_at = trio.current_time()
                # Nothing more comes however long we wait: the stream was closed.
                await trio.sleep(60.0)
                stats = worker.statistics()
                record = await core.store.get_task(task_id)
                dispatcher_stats = core.dispatcher.statistics()

    assert registered_at == 0.0
    assert registration is not None
    interval = registration.heartbeat_interval
    assert (interval, registration.lease_ttl) == (LEASE_TTL / 3, LEASE_TTL) == (4.0, 12.0)
    if lose_cancel_pushes:
        # The push was lost at the moment of the request; the next heartbeat reply
        # (every 4 s from the registration at 0: at 36 s) carried the cancel.
        assert [(at, push.task_id) for at, push in lost or ()] == [(CANCEL_AT, task_id)]
        ended = registered_at + interval * math.ceil((CANCEL_AT - registered_at) / interval)
        assert ended == 36.0
    else:
        ended = CANCEL_AT  # the push: in the same tick
    # The model streamed from the claim at 1 s: chunks at 11, 21, 31 s, and was cancelled
    # (it saw trio.Cancelled) exactly when the cancel reached the worker.
    assert three_chunks_at == SEND_AT + 3 * EVERY == 31.0
    assert provider.streamed == [(11.0, "c0 "), (21.0, "c1 "), (31.0, "c2 ")]
    assert provider.cancelled_at == [ended]
    # CancelTask returned the canceled task at that same moment, and the session was over.
    assert canceled.status.state == TaskState.CANCELED
    assert returned_at == ended and session_ended_at == ended
    # The whole log, with commit times: every chunk once, when it was streamed, none
    # after the cancel; the canceled status last, committed when the cancel arrived.
    # (The first frame lingers 2 ms; it carries the session's working status: the LLM
    # agent's own working() says nothing new and adds no event.)
    first_frame = SEND_AT + OutputConfig().first_frame_linger
    assert [(t, describe(ev)) for t, ev in log] == [
        (SEND_AT, "task:TASK_STATE_SUBMITTED"),
        (first_frame, "TASK_STATE_WORKING"),
        (11.0, "chunk:c0 "), (21.0, "chunk:c1 "), (31.0, "chunk:c2 "),
        (ended, "TASK_STATE_CANCELED")]
    assert [ev.seq for _, ev in log] == list(range(1, len(log) + 1))  # no gap, no repeat
    assert record is not None and record.state == TaskState.CANCELED
    assert [(a.name, [p.text for p in a.parts]) for a in record.task.artifacts or ()] \
        == [("answer", ["c0 ", "c1 ", "c2 "])]
    assert record.dispatch.lease is None and record.dispatch.attempts == 1
    assert stats.outcomes == {"canceled": 1} and stats.registrations == 1
    assert (dispatcher_stats.leased, dispatcher_stats.expired) == (0, 0)
