"""The dispatcher on virtual time: claims, routing, fencing, leases, the reaper."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing

from actors.dispatcher import (
    CancelPush,
    Dispatcher,
    NotClaimable,
    Offer,
    RunRequest,
    StaleAttempt,
    WorkerInfo,
    WorkerSession,
    route_from_metadata,
)
from actors.store_port import DispatchState, Route
from actors.task_store import ServerTaskStore
from protocol.models import (
    Artifact,
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from runtime.store import open_memory_backend

T0 = 1_700_000_000.0
TTL = 30.0


@attrs.define
class Env:
    store: ServerTaskStore
    dispatcher: Dispatcher
    nursery: trio.Nursery
    n: int = 0

    async def task(self, route: Route = Route()) -> str:
        self.n += 1
        task_id = f"t{self.n}"
        msg = Message(
            message_id=f"m{self.n}",
            role=Role.USER,
            parts=[Part(text="hi")],
            task_id=task_id,
            context_id="c",
        )
        await self.store.create_task(
            Task(
                id=task_id,
                context_id="c",
                status=TaskStatus(state=TaskState.SUBMITTED),
                history=[msg],
            ),
            owner="",
            dispatch=DispatchState(route=route),
        )
        await self.dispatcher.submit(RunRequest(task_id=task_id))
        return task_id


@pytest.fixture
async def env(autojump_clock: trio.testing.MockClock) -> AsyncIterator[Env]:
    async with open_memory_backend() as backend, trio.open_nursery() as nursery:
        store = ServerTaskStore(backend, clock=lambda: T0 + trio.current_time())
        await nursery.start(store.run)
        ids = iter(f"a{i}" for i in range(1, 1000))
        dispatcher = Dispatcher(
            store, lease_ttl=TTL, reap_interval=1.0, max_attempts=2, new_id=lambda: next(ids)
        )
        await nursery.start(dispatcher.run)

        async def watchdog() -> None:  # bounds every test: the reaper ticks forever otherwise
            await trio.sleep(3600)
            raise TimeoutError("the test ran for an hour of virtual time")

        nursery.start_soon(watchdog)
        yield Env(store, dispatcher, nursery)
        nursery.cancel_scope.cancel()


def status(task_id: str, state: TaskState) -> StreamResponse:
    return StreamResponse(
        status_update=TaskStatusUpdateEvent(
            task_id=task_id, context_id="c", status=TaskStatus(state=state)
        )
    )


async def events_text(store: ServerTaskStore, task_id: str) -> list[str]:
    out = []
    for ev in await store.read_events(task_id, 0, 100):
        su = ev.event.status_update
        if su is not None:
            msg = su.status.message
            out.append(
                f"{su.status.state.value}" + (f": {msg.parts[0].text}" if msg is not None else "")
            )
    return out


async def test_exactly_one_worker_wins_a_claim(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    d = env.dispatcher
    d.register(WorkerInfo("w1", max_concurrent=2))
    d.register(WorkerInfo("w2", max_concurrent=2))
    task_id = await env.task()
    results: dict[str, object] = {}

    async def claim(worker: str) -> None:
        try:
            results[worker] = (await d.claim(worker, task_id)).attempt_id
        except NotClaimable as exc:
            results[worker] = exc

    async with trio.open_nursery() as n:
        n.start_soon(claim, "w1")
        n.start_soon(claim, "w2")
    winners = [w for w, r in results.items() if isinstance(r, str)]
    assert len(winners) == 1
    loser = ({"w1", "w2"} - set(winners)).pop()
    assert isinstance(results[loser], NotClaimable)
    # the claim is committed with the store's next batch (claims do not wait for it)
    record = await env.store.wait_record(task_id, lambda r: r.dispatch.lease is not None)
    assert record.dispatch.attempts == 1
    assert record.dispatch.lease is not None
    assert record.dispatch.lease.worker_id == winners[0]
    assert record.dispatch.lease.expires_at == pytest.approx(
        T0 + trio.current_time() + TTL, abs=1e-3
    )


async def test_routing_priority_capabilities_worker_and_agent(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    d = env.dispatcher
    low = await env.task(Route(priority=0))
    high = await env.task(Route(priority=5))
    gpu = await env.task(Route(priority=9, capabilities=("gpu",)))
    for_w2 = await env.task(Route(priority=9, worker="w2"))
    for_coder = await env.task(Route(priority=9, agent="coder"))
    d.register(WorkerInfo("w1", agents=frozenset({"echo"}), max_concurrent=10))
    order = [(await d.next_claim("w1")).task_id for _ in range(2)]
    assert order == [high, low]  # the others are not routed to w1
    with pytest.raises(NotClaimable, match="not routed"):
        await d.claim("w1", gpu)
    d.register(
        WorkerInfo(
            "w2",
            name="second",
            capabilities=frozenset({"gpu", "py"}),
            agents=frozenset({"coder"}),
            max_concurrent=10,
        )
    )
    got = {(await d.next_claim("w2")).task_id for _ in range(3)}
    assert got == {gpu, for_w2, for_coder}


def test_route_from_metadata() -> None:
    route = route_from_metadata(
        {"trio-a2a/agent": "coder"},
        {"trio-a2a/agent": "ignored", "trio-a2a/priority": "3", "trio-a2a/capabilities": "gpu"},
    )
    assert route == Route(priority=3, capabilities=("gpu",), agent="coder")
    with pytest.raises(ValueError, match="priority"):
        route_from_metadata({"trio-a2a/priority": "high"})
    assert route_from_metadata({"trio-a2a/priority": 2.0, "trio-a2a/capabilities": ["a", "b"]},
                               {"trio-a2a/worker": "w1"}) == Route(
        priority=2, capabilities=("a", "b"), worker="w1")
    names = ("params.message.metadata", "params.metadata")
    for bad, message in [
        ({"trio-a2a/capabilities": 5}, "params.metadata['trio-a2a/capabilities'] must be a "
                                       "string or a list of strings, not 5"),
        ({"trio-a2a/capabilities": {"a": 1}}, "a string or a list of strings"),
        ({"trio-a2a/capabilities": ["a", 2]}, "a string or a list of strings"),
        ({"trio-a2a/priority": 1.7}, "params.metadata['trio-a2a/priority'] must be an integer"),
        ({"trio-a2a/priority": True}, "must be an integer"),
        ({"trio-a2a/worker": 7}, "['trio-a2a/worker'] must be a worker id or name"),
        ({"trio-a2a/agent": ""}, "['trio-a2a/agent'] must be an agent name"),
    ]:
        with pytest.raises(ValueError) as info:
            route_from_metadata(None, bad, names=names)
        assert message in str(info.value)


async def test_capacity_limits_claims_and_next_claim_waits(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    d = env.dispatcher
    d.register(WorkerInfo("w1", max_concurrent=1))
    first = await env.task()
    second = await env.task()
    claim = await d.next_claim("w1")
    assert claim.task_id == first
    with pytest.raises(NotClaimable, match="already runs 1"):
        await d.claim("w1", second)
    got: list[str] = []

    async def waiter() -> None:
        got.append((await d.next_claim("w1")).task_id)

    env.nursery.start_soon(waiter)
    await trio.sleep(5)
    assert got == []  # still busy
    assert not await d.release(first, claim.attempt_id, (status(first, TaskState.COMPLETED),))
    await trio.lowlevel.checkpoint()
    await trio.testing.wait_all_tasks_blocked()
    assert got == [second]


async def test_fencing_and_idempotent_release(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    d = env.dispatcher
    d.register(WorkerInfo("w1"))
    task_id = await env.task()
    claim = await d.next_claim("w1")
    await d.write(task_id, claim.attempt_id, (status(task_id, TaskState.WORKING),), wait=True)
    with pytest.raises(StaleAttempt):
        await d.write(task_id, "not-the-attempt", (status(task_id, TaskState.WORKING),))
    assert not await d.release(task_id, claim.attempt_id, (status(task_id, TaskState.COMPLETED),))
    assert await d.release(task_id, claim.attempt_id, (status(task_id, TaskState.COMPLETED),))
    with pytest.raises(StaleAttempt):
        await d.write(task_id, claim.attempt_id, (status(task_id, TaskState.WORKING),))
    record = await env.store.get_task(task_id)
    assert record is not None and record.state is TaskState.COMPLETED
    assert record.dispatch.lease is None and record.seq == 3
    assert d.statistics().stale_writes == 2


async def test_expired_lease_requeues_once_then_fails(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    d = env.dispatcher
    d.register(WorkerInfo("dead"))
    task_id = await env.task()
    start = trio.current_time()
    first = await d.next_claim("dead")
    await d.write(task_id, first.attempt_id, (status(task_id, TaskState.WORKING),), wait=True)
    d.unregister("dead")  # it dies: no heartbeat, no release
    d.register(WorkerInfo("w2"))
    second = await d.next_claim("w2")  # waits for the reaper
    # the reaper runs every 1 s and acts on its first tick after the lease expired
    assert TTL < trio.current_time() - start <= TTL + 1.0
    assert second.attempt_id != first.attempt_id
    with pytest.raises(StaleAttempt):  # the dead worker's late write is refused
        await d.write(task_id, first.attempt_id, (status(task_id, TaskState.COMPLETED),))
    # the second attempt's lease expires too: max_attempts=2, so the task fails
    d.unregister("w2")
    with trio.fail_after(40):
        await env.store.wait_record(task_id, lambda r: r.state is TaskState.FAILED)
    assert await events_text(env.store, task_id) == [
        "TASK_STATE_WORKING",
        "TASK_STATE_WORKING: the lease of worker 'dead' expired; retrying (attempt 2 of 2)",
        "TASK_STATE_FAILED: gave up after 2 attempts: the lease of worker 'w2' expired",
    ]
    assert d.statistics().expired == 2


def chunk(task_id: str, artifact_id: str, text: str, *, append: bool) -> StreamResponse:
    return StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id=task_id, context_id="c", append=append or None,
        artifact=Artifact(artifact_id=artifact_id, parts=[Part(text=text)])))


def artifact_texts(task: Task) -> dict[str, list[str]]:
    return {a.artifact_id: [p.text or "" for p in a.parts] for a in task.artifacts or ()}


async def test_a_retry_starts_from_the_artifacts_before_the_lost_attempt(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    """The lost attempt's output is rolled back, so the retry's is the only copy."""
    d = env.dispatcher
    d.register(WorkerInfo("w1"))
    task_id = "t-art"
    # an artifact from an earlier turn of the task
    earlier = Artifact(artifact_id="earlier", parts=[Part(text="e1")])
    await env.store.create_task(
        Task(id=task_id, context_id="c", status=TaskStatus(state=TaskState.SUBMITTED),
             artifacts=[earlier], history=[Message(message_id="m", role=Role.USER,
                                                   parts=[Part(text="hi")])]),
        owner="")
    await d.submit(RunRequest(task_id=task_id))
    lost = await d.next_claim("w1")
    await d.write(task_id, lost.attempt_id, (
        chunk(task_id, "earlier", "e2", append=True),  # appended to the earlier artifact
        chunk(task_id, "partial", "hel", append=False),  # a new one, half streamed
    ), wait=True)
    d.unregister("w1")  # it dies: no heartbeat, no release
    d.register(WorkerInfo("w2"))
    retry = await d.next_claim("w2")  # after the reaper
    assert artifact_texts(retry.record.task) == {"earlier": ["e1"]}
    log = [e.event for e in await env.store.read_events(task_id, 0, 100)]
    assert log[-2].task is not None and artifact_texts(log[-2].task) == {"earlier": ["e1"]}
    assert log[-1].status_update is not None  # then the "retrying" status
    await d.write(task_id, retry.attempt_id, (chunk(task_id, "again", "hello", append=False),))
    await d.release(task_id, retry.attempt_id, (status(task_id, TaskState.COMPLETED),))
    record = await env.store.get_task(task_id)
    assert record is not None
    assert artifact_texts(record.task) == {"earlier": ["e1"], "again": ["hello"]}


async def test_a_lost_attempt_without_output_writes_no_snapshot(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    d = env.dispatcher
    d.register(WorkerInfo("w1"))
    task_id = await env.task()
    await d.next_claim("w1")
    d.unregister("w1")
    d.register(WorkerInfo("w2"))
    await d.next_claim("w2")
    kinds = [e.event.task is not None for e in await env.store.read_events(task_id, 0, 100)]
    assert kinds == [True, False]  # the created task, then only the "retrying" status


async def test_heartbeats_keep_a_lease(env: Env, autojump_clock: trio.testing.MockClock) -> None:
    d = env.dispatcher
    d.register(WorkerInfo("w1"))
    task_id = await env.task()
    claim = await d.next_claim("w1")
    for _ in range(10):  # 100 s, far past one TTL
        await trio.sleep(TTL / 3)
        reply = await d.heartbeat("w1", [(task_id, claim.attempt_id)])
        assert [r[:2] for r in reply.renewed] == [(task_id, claim.attempt_id)]
        assert reply.lost == () and reply.cancel == ()
    record = await env.store.head(task_id)
    assert record is not None and record.dispatch.lease is not None
    assert record.dispatch.lease.expires_at == pytest.approx(
        T0 + trio.current_time() + TTL, abs=1e-3
    )
    assert d.statistics().expired == 0
    stale = await d.heartbeat("w1", [(task_id, "old-attempt")])
    assert stale.lost == ((task_id, "old-attempt", "the task's lease moved on"),)
    assert (await d.heartbeat("nobody", [])).unknown_worker


async def test_cancel_reaches_the_holder_by_push_and_heartbeat(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    d = env.dispatcher
    session = d.register(WorkerInfo("w1", max_concurrent=5))
    queued_only = await env.task(Route(worker="elsewhere"))
    task_id = await env.task()
    claim = await d.next_claim("w1")
    assert await d.cancel(queued_only) is False  # not leased: out of the queue, the caller ends it
    assert d.statistics().queued == 0
    assert await d.cancel(task_id) is True
    pushes = []
    while True:
        try:
            pushes.append(session.receive_pushes.receive_nowait())
        except trio.WouldBlock:
            break
    assert CancelPush(task_id, claim.attempt_id, "canceled by request") in pushes
    assert all(isinstance(p, Offer | CancelPush) for p in pushes)
    reply = await d.heartbeat("w1", [(task_id, claim.attempt_id)])
    assert reply.cancel == ((task_id, claim.attempt_id),)
    await d.release(task_id, claim.attempt_id, (status(task_id, TaskState.CANCELED),))
    record = await env.store.get_task(task_id)
    assert record is not None and record.state is TaskState.CANCELED


async def test_a_new_dispatcher_rebuilds_queue_and_leases(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    d = env.dispatcher
    d.register(WorkerInfo("w1", max_concurrent=2))
    leased = await env.task()
    claim = await d.next_claim("w1")
    queued = await env.task()
    fresh = Dispatcher(env.store, lease_ttl=TTL, reap_interval=1.0, max_attempts=2)
    await env.nursery.start(fresh.run)
    stats = fresh.statistics()
    assert (stats.queued, stats.leased) == (1, 1)
    fresh.register(WorkerInfo("w1", max_concurrent=2))  # reconnects, keeps its lease
    reply = await fresh.heartbeat("w1", [(leased, claim.attempt_id)])
    assert [r[0] for r in reply.renewed] == [leased]
    assert (await fresh.next_claim("w1")).task_id == queued


async def test_a_restarted_dispatcher_ends_the_leases_of_embedded_workers_at_once(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    """An embedded worker stopped with the server process: its task is queued again
    as the next dispatcher starts; a remote worker keeps its lease to renew it."""
    d = env.dispatcher
    d.register(WorkerInfo("local-0", max_concurrent=1, in_process=True))
    embedded = await env.task()
    first = await d.next_claim("local-0")
    assert first.record.dispatch.lease is not None and first.record.dispatch.lease.in_process
    d.register(WorkerInfo("remote", max_concurrent=1))
    remote = await env.task()
    await d.next_claim("remote")
    for task_id in (embedded, remote):  # claims are committed with the store's next batch
        await env.store.wait_record(task_id, lambda r: r.dispatch.lease is not None)
    started = trio.current_time()
    fresh = Dispatcher(env.store, lease_ttl=TTL, reap_interval=1.0, max_attempts=2)
    await env.nursery.start(fresh.run)
    assert trio.current_time() == started  # no waiting for the lease to run out
    assert fresh.statistics().queued == 1 and fresh.statistics().leased == 1
    record = await env.store.get_task(embedded)
    assert record is not None and record.dispatch.lease is None
    assert (await events_text(env.store, embedded))[-1] == (
        "TASK_STATE_WORKING: worker 'local-0' stopped with the server; retrying (attempt 2 of 2)")
    kept = await env.store.get_task(remote)
    assert kept is not None and kept.dispatch.lease is not None
    fresh.register(WorkerInfo("local-1", max_concurrent=1, in_process=True))
    assert (await fresh.next_claim("local-1")).task_id == embedded


def drain_offers(session: WorkerSession) -> list[str]:
    out = []
    while True:
        try:
            push = session.receive_pushes.receive_nowait()
        except trio.WouldBlock:
            return out
        if isinstance(push, Offer):
            out.append(push.task_id)


async def test_each_task_is_offered_to_one_worker_until_its_offer_times_out(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    d = env.dispatcher
    w1 = d.register(WorkerInfo("w1", max_concurrent=2))
    w2 = d.register(WorkerInfo("w2", max_concurrent=2))
    tasks = [await env.task() for _ in range(5)]
    # spread by unpromised slots, one offer per task; the fifth waits for a slot
    got1, got2 = drain_offers(w1), drain_offers(w2)
    assert sorted(got1 + got2) == tasks[:4]
    assert (len(got1), len(got2)) == (2, 2)
    # heartbeats do not re-offer what another live worker holds an offer for
    await d.heartbeat("w1", [])
    await d.heartbeat("w2", [])
    assert drain_offers(w1) == drain_offers(w2) == []
    # w1 claims its two; its tasks end; the freed slots go to the waiting task
    for task_id in got1:
        claim = await d.claim("w1", task_id)
        await d.release(task_id, claim.attempt_id, (status(task_id, TaskState.COMPLETED),))
    assert drain_offers(w1) == [tasks[4]]
    # w2 let its offers pass: after the offer timeout (a heartbeat interval) w1 gets them
    await trio.sleep(TTL / 3)
    await d.heartbeat("w1", [])
    assert drain_offers(w1) == [got2[0]]  # one slot left: the other is promised to tasks[4]
    # a worker that leaves hands its outstanding offers on
    d.unregister("w2", w2)
    assert drain_offers(w1) == []  # w1 is full of promises; got2[1] waits in the queue
    assert d.statistics().queued == 3


async def test_a_worker_silent_for_a_lease_ttl_gets_no_offers(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    d = env.dispatcher
    quiet = d.register(WorkerInfo("quiet", max_concurrent=8))
    busy = d.register(WorkerInfo("busy", max_concurrent=1))
    await trio.sleep(TTL / 2)
    await d.heartbeat("busy", [])
    await trio.sleep(TTL / 2 + 1)  # "quiet" last heard from TTL + 1 s ago, "busy" TTL/2 + 1
    task_id = await env.task()
    assert drain_offers(quiet) == [] and drain_offers(busy) == [task_id]
    await d.heartbeat("quiet", [])  # heard from again: offers resume
    assert drain_offers(quiet) == []  # the task's offer to "busy" still holds
    second = await env.task()
    assert drain_offers(quiet) == [second]


async def test_a_claim_cut_off_while_reading_the_task_leaves_it_queued(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim whose first store read fails (or is cancelled) gives the task back: it
    is neither lost from the queue nor held by a lease that was never stored."""
    d = env.dispatcher
    d.register(WorkerInfo("w1", max_concurrent=1))
    task_id = await env.task()
    real_head = env.store.head

    async def failing_head(tid: str) -> object:
        raise RuntimeError("the store is gone for a moment")

    monkeypatch.setattr(env.store, "head", failing_head)
    with pytest.raises(RuntimeError, match="gone for a moment"):
        await d.claim("w1", task_id)
    monkeypatch.setattr(env.store, "head", real_head)
    claim = await d.claim("w1", task_id)  # still queued, and the worker's slot is free
    assert claim.task_id == task_id
