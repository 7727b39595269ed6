"""A retried attempt runs on the user's input, with the history the first attempt saw.

Real agents say what they are doing while they work (`emit.working("thinking...")`,
`emit.working(f"step {i}/{n}")`); each status that a newer one replaces moves into
the task's history, and so does the server's "retrying" note. A retry must still be
given the message that started the run (the one that created the task, or the
user's reply that continued it) and the history before it, not the last message
of the history.

On virtual time: the real server core (tests/sim.py) with real `open_worker`
workers; a worker is killed by making its link go dead (nothing it sends arrives)
and cancelling it, so its lease runs out and the reaper queues the task again.
Through a real server: an embedded worker cut off by stopping the server, which
restarts on the same SQLite file.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.store_port import DispatchState, TaskRecord
from actors.worker import Push
from protocol import worker_link as wl
from protocol.models import (
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from protocol.states import is_terminal
from runtime.link.grants import run_input
from runtime.link.local import InProcessLink, open_in_process_link
from runtime.server import ServerConfig, open_server
from runtime.worker import Connection, WorkerConfig, open_worker
from tests.conftest import Rpc, user_message, wait_state
from tests.sim import SimServer, open_sim_server

STEPS = 3
PAUSE = 7.0


@attrs.frozen
class Attempt:
    """What one attempt was given to run on."""

    text: str
    history: tuple[str, ...]


def _texts(messages: Any) -> tuple[str, ...]:
    return tuple("".join(p.text or "" for p in m.parts) for m in messages)


def stepping_agent(seen: list[Attempt], *, gate: trio.Event | None = None,
                   starts: list[float] | None = None) -> AgentSpec:
    """Works like a real agent: says "thinking..." and each step as a status, PAUSE
    virtual seconds per step (or, with `gate`, waits for it after the first step),
    then answers with an artifact naming the text it ran on. "ask me" first asks
    for a name (input-required); the reply continues the task. `starts` gets the
    time each attempt started."""

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        seen.append(Attempt(ctx.text, _texts(ctx.history)))
        if starts is not None:
            starts.append(trio.current_time())
        await emit.working("thinking...")
        if ctx.text == "ask me":
            await emit.input_required("what is your name?")
            return
        for i in range(1, STEPS + 1):
            await emit.working(f"step {i}/{STEPS}")
            if gate is not None:
                await gate.wait()
            else:
                await trio.sleep(PAUSE)
        await emit.artifact_text(f"done: {ctx.text}")
        await emit.complete()

    return AgentSpec("stepper", run)


def status_text(record: TaskRecord) -> str:
    message = record.task.status.message
    return _texts([message])[0] if message is not None else ""


def artifact_texts(task: Task) -> list[str]:
    return ["".join(p.text or "" for p in a.parts) for a in task.artifacts or ()]


# --- on virtual time: workers killed mid-run -------------------------------------------


class _DeadableLink:
    """An in-process link that dies with its worker: once dead, nothing the worker
    sends arrives and no reply comes back (its requests hang until cancelled)."""

    def __init__(self, inner: InProcessLink, dead: trio.Event) -> None:
        self._inner = inner
        self._dead = dead

    @property
    def pushes(self) -> trio.MemoryReceiveChannel[Push]:
        return self._inner.pushes

    async def request(self, op: str, body: wl.LinkModel) -> wl.LinkModel:
        if self._dead.is_set():
            await trio.sleep_forever()
        return await self._inner.request(op, body)

    async def serve(self) -> None:
        await self._inner.serve()


@attrs.define
class Fleet:
    """Workers started one at a time, each killable."""

    server: SimServer
    nursery: trio.Nursery
    agent: AgentSpec
    _kills: dict[str, Callable[[], None]] = attrs.field(factory=dict)
    _seeds: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))

    async def start(self, name: str) -> None:
        await self.nursery.start(self._run, name)

    def kill(self, name: str) -> None:
        self._kills.pop(name)()

    def _connect(self, dead: trio.Event) -> Callable[[], AbstractAsyncContextManager[Connection]]:
        @contextlib.asynccontextmanager
        async def connect() -> AsyncIterator[Connection]:
            # durable acks: treated as a remote worker, whose lease outlives its link
            async with open_in_process_link(self.server.endpoint, durable_acks=True) as link:
                yield _DeadableLink(link, dead)

        return connect

    async def _run(self, name: str, *, task_status: trio.TaskStatus[None]) -> None:
        dead = trio.Event()
        with trio.CancelScope() as scope:

            def kill() -> None:
                dead.set()
                scope.cancel()

            async with open_worker("in-process", token=None, agent=self.agent, name=name,
                                   worker_id=name, connect=self._connect(dead),
                                   config=WorkerConfig(seed=next(self._seeds))) as worker:
                await worker.wait_registered()
                self._kills[name] = kill
                task_status.started()
                await trio.sleep_forever()


@contextlib.asynccontextmanager
async def open_fleet(agent: AgentSpec, *, max_attempts: int = 3) -> AsyncIterator[Fleet]:
    async with open_sim_server(max_attempts=max_attempts) as server, \
            trio.open_nursery() as nursery:
        yield Fleet(server, nursery, agent)
        nursery.cancel_scope.cancel()


async def send(server: SimServer, text: str, task_id: str | None = None) -> str:
    sent = await server.service.send_message(SendMessageRequest(
        message=Message(message_id=f"user-{text}", role=Role.USER, parts=[Part(text=text)],
                        task_id=task_id),
        configuration=SendMessageConfiguration(return_immediately=True)))
    return sent.record.task_id


async def wait_step(server: SimServer, task_id: str, attempt: int, step: int) -> TaskRecord:
    """Until the task's `attempt`-th claim has reported `step`."""
    return await server.store.wait_record(
        task_id, lambda r: r.dispatch.attempts == attempt
        and status_text(r) == f"step {step}/{STEPS}")


async def test_a_task_retried_twice_runs_each_attempt_on_the_users_message(
        autojump_clock: trio.testing.MockClock) -> None:
    seen: list[Attempt] = []
    starts: list[float] = []
    with trio.fail_after(600):
        async with open_fleet(stepping_agent(seen, starts=starts)) as fleet:
            server = fleet.server
            await fleet.start("wrk-a")
            task_id = await send(server, "count to three")
            # Killed after two steps: "thinking..." and "step 1/3" are history by then.
            await wait_step(server, task_id, attempt=1, step=2)
            fleet.kill("wrk-a")
            await fleet.start("wrk-b")
            await wait_step(server, task_id, attempt=2, step=2)
            fleet.kill("wrk-b")
            await fleet.start("wrk-c")
            task = await server.wait_done(task_id)
    history = _texts(task.history or ())
    # The history holds every status of the dead attempts and both retry notes ...
    assert history[:4] == ("count to three", "thinking...", "step 1/3", "step 2/3")
    assert sum("retrying (attempt" in h for h in history) == 2
    # ... yet every attempt ran on the user's message, with the history before it.
    assert seen == [Attempt("count to three", ())] * 3
    assert artifact_texts(task) == ["done: count to three"]
    # Each kill came at a step (t=7, t=42), between heartbeats: the lease ran to its
    # last renewal + 30 s (t=30; t=67 after a heartbeat at t=37) and the reaper's
    # next tick (every 5 s) queued the task again for the worker started meanwhile.
    assert starts == [0.0, 35.0, 70.0]


async def test_a_continued_task_retried_runs_on_the_users_reply(
        autojump_clock: trio.testing.MockClock) -> None:
    seen: list[Attempt] = []
    starts: list[float] = []
    with trio.fail_after(600):
        # (`dispatch.attempts` counts claims over the task's life: the reply's run
        # starts at attempt 2; its retry limit counts its own, see below)
        async with open_fleet(stepping_agent(seen, starts=starts), max_attempts=5) as fleet:
            server = fleet.server
            await fleet.start("wrk-a")
            task_id = await send(server, "ask me")
            await server.store.wait_record(task_id,
                                           lambda r: r.state == TaskState.INPUT_REQUIRED)
            await send(server, "Grace", task_id=task_id)
            await wait_step(server, task_id, attempt=2, step=2)
            fleet.kill("wrk-a")
            await fleet.start("wrk-b")
            await wait_step(server, task_id, attempt=3, step=1)
            fleet.kill("wrk-b")
            await fleet.start("wrk-c")
            task = await server.wait_done(task_id)
    before_reply = ("ask me", "thinking...", "what is your name?")
    assert seen == [Attempt("ask me", ()), *[Attempt("Grace", before_reply)] * 3]
    assert artifact_texts(task) == ["done: Grace"]
    # the reply's run started at once; killed at t=7 and t=35, requeued at the
    # reaper's tick after each lease ran out (t=30, t=65)
    assert starts == [0.0, 0.0, 35.0, 70.0]


async def test_each_run_of_a_continued_task_gets_the_full_attempts(
        autojump_clock: trio.testing.MockClock) -> None:
    """The default three attempts: the first run used one; the run the reply starts
    gets three again (killed twice, done on its third), its notes counting them."""
    seen: list[Attempt] = []
    with trio.fail_after(600):
        async with open_fleet(stepping_agent(seen)) as fleet:
            server = fleet.server
            await fleet.start("wrk-a")
            task_id = await send(server, "ask me")
            await server.store.wait_record(task_id,
                                           lambda r: r.state == TaskState.INPUT_REQUIRED)
            await send(server, "Grace", task_id=task_id)
            await wait_step(server, task_id, attempt=2, step=2)
            fleet.kill("wrk-a")
            await fleet.start("wrk-b")
            await wait_step(server, task_id, attempt=3, step=1)
            fleet.kill("wrk-b")
            await fleet.start("wrk-c")
            record = await server.store.wait_record(task_id, lambda r: is_terminal(r.state))
    notes = [h for h in _texts(record.task.history or ()) if "expired" in h]
    assert notes == [
        "the lease of worker 'wrk-a' expired; retrying (attempt 2 of 3)",
        "the lease of worker 'wrk-b' expired; retrying (attempt 3 of 3)"]
    assert record.state == TaskState.COMPLETED, status_text(record)
    assert artifact_texts(record.task) == ["done: Grace"]
    assert (record.dispatch.attempts, record.dispatch.run_attempts) == (4, 3)
    assert len(seen) == 4


async def test_a_run_that_uses_up_its_attempts_still_fails_saying_so(
        autojump_clock: trio.testing.MockClock) -> None:
    seen: list[Attempt] = []
    with trio.fail_after(600):
        async with open_fleet(stepping_agent(seen), max_attempts=2) as fleet:
            server = fleet.server
            await fleet.start("wrk-a")
            task_id = await send(server, "ask me")
            await server.store.wait_record(task_id,
                                           lambda r: r.state == TaskState.INPUT_REQUIRED)
            await send(server, "Grace", task_id=task_id)
            for attempt, (name, then) in ((2, ("wrk-a", "wrk-b")), (3, ("wrk-b", "wrk-c"))):
                await wait_step(server, task_id, attempt=attempt, step=1)
                fleet.kill(name)
                await fleet.start(then)
            record = await server.store.wait_record(task_id, lambda r: is_terminal(r.state))
    assert record.state == TaskState.FAILED
    assert status_text(record) == (
        "gave up after 2 attempts: the lease of worker 'wrk-b' expired")


# --- a real server restarted on its SQLite file ----------------------------------------


def restart_config(data_dir: Path, agent: AgentSpec) -> ServerConfig:
    # the default (long) lease: a task its embedded worker was running when the server
    # stopped is queued again as the server starts
    return ServerConfig(port=0, store="sqlite", data_dir=data_dir, agent=agent)


async def test_a_task_cut_by_two_server_restarts_runs_each_attempt_on_the_users_message(
        tmp_path: Path) -> None:
    seen: list[Attempt] = []
    gates = [trio.Event() for _ in range(3)]
    with trio.fail_after(60):
        for run, gate in enumerate(gates, start=1):
            agent = stepping_agent(seen, gate=gate)
            async with open_server(restart_config(tmp_path, agent)) as srv, \
                    httpx.AsyncClient(base_url=srv.url) as c:
                rpc = Rpc(c, "1.0")
                if run == 1:
                    task_id = (await rpc.call("SendMessage", {
                        "message": user_message("count to three"),
                        "configuration": {"returnImmediately": True}}))["task"]["id"]
                # each run stops at its first step: "thinking..." is history by then
                await srv.store.wait_record(
                    task_id, lambda r, n=run: r.dispatch.attempts == n
                    and status_text(r) == f"step 1/{STEPS}")
                if run == len(gates):
                    gate.set()
                    await wait_state(srv, task_id, "TASK_STATE_COMPLETED")
                    task = await rpc.call("GetTask", {"id": task_id})
    notes = [h["parts"][0]["text"] for h in task["history"]]
    assert notes[:3] == ["count to three", "thinking...", "step 1/3"]
    assert sum("stopped with the server; retrying" in n for n in notes) == 2
    assert seen == [Attempt("count to three", ())] * 3
    assert [a["parts"][0]["text"] for a in task["artifacts"]] == ["done: count to three"]


# --- where the run's input is recorded, and how a grant finds it ------------------------


def _msg(message_id: str, text: str, role: Role = Role.AGENT) -> Message:
    return Message(message_id=message_id, role=role, parts=[Part(text=text)])


async def test_the_store_records_the_message_that_starts_each_run() -> None:
    with trio.fail_after(10):
        async with open_sim_server() as server:
            task_id = await send(server, "ask me")
            created = await server.store.head(task_id)
            await server.store.write(task_id, (StreamResponse(status_update=TaskStatusUpdateEvent(
                task_id=task_id, context_id=created.task.context_id,  # type: ignore[union-attr]
                status=TaskStatus(state=TaskState.INPUT_REQUIRED,
                                  message=_msg("a1", "what is your name?"))),),))
            await send(server, "Grace", task_id=task_id)
            continued = await server.store.get_task(task_id)
    assert created is not None and created.dispatch.run_input == (0, "user-ask me")
    assert continued is not None and continued.dispatch.run_input == (2, "user-Grace")
    assert _texts(continued.task.history or ()) == ("ask me", "what is your name?", "Grace")
    assert DispatchState.from_json(continued.dispatch.to_json()) == continued.dispatch


def test_the_runs_attempts_are_stored_and_an_older_row_reads_the_tasks() -> None:
    state = DispatchState(attempts=4, run_attempts=1, run_input=(2, "user-Grace"))
    assert DispatchState.from_json(state.to_json()) == state
    older = state.to_json()
    del older["run_attempts"]  # a row from before the per-run count: the old rule
    assert DispatchState.from_json(older).run_attempts == 4


def _task(*history: Message) -> Task:
    return Task(id="t", context_id="c", status=TaskStatus(state=TaskState.WORKING),
                history=list(history))


@pytest.mark.parametrize(("mark", "why"), [
    ((1, "u2"), "recorded"),
    ((9, "u2"), "recorded, the history written over since: found by id"),
    (None, "not recorded (a row from before the mark): the last user message"),
])
def test_a_grant_runs_on_the_runs_input_not_the_last_message(
        mark: tuple[int, str] | None, why: str) -> None:
    history = [_msg("u1", "hi", Role.USER), _msg("u2", "count", Role.USER),
               _msg("s1", "thinking..."), _msg("s2", "retrying (attempt 2 of 3)")]
    message, before = run_input(_task(*history), DispatchState(run_input=mark))
    assert message is not None and message.message_id == "u2", why
    assert [m.message_id for m in before] == ["u1"], why


def test_a_grant_of_a_task_without_history_carries_no_message() -> None:
    assert run_input(_task(), DispatchState()) == (None, [])
    assert run_input(_task(_msg("s", "agent only")), DispatchState()) == (
        _msg("s", "agent only"), [])
