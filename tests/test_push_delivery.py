"""PushDelivery against a fake PushSender (the port) and a real ServerTaskStore.

Everything runs on virtual time (`autojump_clock`), so retry and backoff times
are asserted exactly; jitter comes from a seeded `random.Random`.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from actors.push_delivery import PushDelivery, PushReply, PushSendError
from actors.store_port import PushConfigRecord, TaskBackend
from actors.task_store import ServerTaskStore
from protocol.models import (
    Artifact,
    AuthenticationInfo,
    Part,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
    dump,
)
from runtime.store import open_memory_backend

T0 = 1_700_000_000.0
TIMEOUT = 600  # virtual seconds
URL = "https://hooks.example/a2a"


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


# --- the fake receiver ------------------------------------------------------------------


@attrs.frozen
class Call:
    at: float
    url: str
    body: dict[str, Any]
    headers: dict[str, str]


Responder = Callable[[Call], Awaitable[PushReply]]


async def ok(call: Call) -> PushReply:
    return PushReply(200)


class FakeSender:
    """Records every POST with its virtual time; `responder` decides the answer."""

    def __init__(self, responder: Responder = ok) -> None:
        self.responder = responder
        self.calls: list[Call] = []
        self.closed = False
        self._posted = trio.Event()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PushReply:
        call = Call(trio.current_time(), url, json.loads(body), dict(headers))
        self.calls.append(call)
        self._posted.set()
        self._posted = trio.Event()
        return await self.responder(call)

    async def wait_calls(self, n: int) -> None:
        """Wait until at least `n` POSTs were made."""
        while len(self.calls) < n:
            await self._posted.wait()

    async def aclose(self) -> None:
        self.closed = True


def script(*answers: PushReply | Exception) -> Responder:
    """Answer with `answers` in turn, then 200 forever."""
    queue = list(answers)

    async def respond(call: Call) -> PushReply:
        answer = queue.pop(0) if queue else PushReply(200)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return respond


# --- tasks and events -----------------------------------------------------------------


def config(task_id: str = "t1", config_id: str = "c1", url: str = URL) -> PushConfigRecord:
    return PushConfigRecord(
        config=TaskPushNotificationConfig(
            id=config_id, task_id=task_id, url=url, token="tok-1",
            authentication=AuthenticationInfo(scheme="Bearer", credentials="xyz")),
        owner="")


def status(task_id: str, state: TaskState) -> StreamResponse:
    return StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=task_id, context_id="ctx", status=TaskStatus(state=state)))


def artifact(task_id: str, i: int) -> StreamResponse:
    return StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id=task_id, context_id="ctx",
        artifact=Artifact(artifact_id=f"a{i}", parts=[Part(text=f"chunk {i}")])))


async def create(store: ServerTaskStore, task_id: str = "t1",
                 configs: tuple[PushConfigRecord, ...] = ()) -> None:
    task = Task(id=task_id, context_id="ctx", status=TaskStatus(state=TaskState.SUBMITTED))
    await store.create_task(task, owner="", push_configs=configs)


async def run_task(store: ServerTaskStore, task_id: str = "t1", artifacts: int = 3) -> None:
    """working, `artifacts` artifact updates, completed: seq 2 .. artifacts + 3."""
    await store.write(task_id, [status(task_id, TaskState.WORKING)])
    for i in range(artifacts):
        await store.write(task_id, [artifact(task_id, i)])
    await store.write(task_id, [status(task_id, TaskState.COMPLETED)])


async def seqs(store: ServerTaskStore, calls: list[Call], task_id: str = "t1") -> list[int]:
    """The log sequence number of each posted body."""
    by_body = {json.dumps(dump(e.event), sort_keys=True): e.seq
               for e in await store.read_events(task_id, 0, 1000)}
    return [by_body[json.dumps(c.body, sort_keys=True)] for c in calls]


async def delivered_seq(backend: TaskBackend, task_id: str = "t1", config_id: str = "c1") -> int:
    record = await backend.get_push_config(task_id, config_id)
    assert record is not None
    return record.delivered_seq


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll on virtual time (1 ms steps) until `predicate` holds."""
    while True:
        if predicate():
            return
        await trio.sleep(0.001)


@attrs.define
class Env:
    backend: TaskBackend
    store: ServerTaskStore
    nursery: trio.Nursery

    async def start_push(self, sender: FakeSender, **kwargs: Any) -> PushDelivery:
        kwargs.setdefault("rng", random.Random(1))
        push = PushDelivery(self.store, sender, **kwargs)
        await self.nursery.start(push.run)
        return push


@asynccontextmanager
async def open_env(backend: TaskBackend | None = None) -> AsyncIterator[Env]:
    async with open_memory_backend() as own, trio.open_nursery() as nursery:
        store = ServerTaskStore(backend or own, clock=lambda: T0)
        await nursery.start(store.run)
        yield Env(backend or own, store, nursery)
        nursery.cancel_scope.cancel()


def expected_backoff(seed: int, attempts: int) -> list[float]:
    """The documented schedule: min(30, 0.5 * 2**(n-1)) * (0.5 + 0.5 * rng.random())."""
    rng = random.Random(seed)
    return [min(30.0, 0.5 * 2 ** (n - 1)) * (0.5 + 0.5 * rng.random())
            for n in range(1, attempts + 1)]


# --- tests ------------------------------------------------------------------------------


async def test_healthy_receiver_gets_every_event_in_order_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_env() as env:
            sender = FakeSender()
            push = PushDelivery(env.store, sender, rng=random.Random(1))
            rec = config()
            await create(env.store, configs=(rec,))
            push.watch(rec)  # before run: remembered and started with it
            await env.nursery.start(push.run)
            start = trio.current_time()
            await run_task(env.store)
            await eventually(lambda: push.statistics().active_loops == 0)

            assert await seqs(env.store, sender.calls) == [1, 2, 3, 4, 5, 6]
            assert list(sender.calls[0].body) == ["task"]
            assert list(sender.calls[-1].body) == ["statusUpdate"]
            assert {c.at for c in sender.calls} == {start}
            assert {c.url for c in sender.calls} == {URL}
            assert sender.calls[0].headers == {
                "Content-Type": "application/json",
                "X-A2A-Notification-Token": "tok-1",
                "Authorization": "Bearer xyz",
            }
            assert await delivered_seq(env.backend) == 6
            stats = push.statistics()
            assert (stats.delivered, stats.failed_attempts, stats.dropped_events) == (6, 0, 0)
            assert stats.in_flight == 0


async def test_retries_with_exponential_backoff_and_seeded_jitter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_env() as env:
            sender = FakeSender(script(PushReply(500), PushSendError("connection refused"),
                                       PushReply(503), PushReply(408)))
            push = await env.start_push(sender, rng=random.Random(42), max_attempts=8)
            rec = config()
            await create(env.store, configs=(rec,))
            start = trio.current_time()
            push.watch(rec)
            await run_task(env.store, artifacts=0)
            await eventually(lambda: push.statistics().active_loops == 0)

            delays = expected_backoff(42, 4)
            times = [start]
            for d in delays:
                times.append(times[-1] + d)
            # seq 1 fails four times, then it and the rest go through at once
            assert [c.at - start for c in sender.calls] == pytest.approx(
                [t - start for t in times] + [times[-1] - start] * 2, abs=1e-9)
            assert await seqs(env.store, sender.calls) == [1, 1, 1, 1, 1, 2, 3]
            stats = push.statistics()
            assert (stats.delivered, stats.failed_attempts, stats.dropped_events) == (3, 4, 0)


async def test_backoff_is_capped_at_30_seconds(autojump_clock: trio.testing.MockClock) -> None:
    class Top(random.Random):
        def random(self) -> float:
            return 1.0  # no jitter reduction: the raw schedule

    with trio.fail_after(TIMEOUT):
        async with open_env() as env:
            sender = FakeSender(script(*[PushReply(502)] * 8))
            push = await env.start_push(sender, rng=Top(), max_attempts=9)
            rec = config()
            await create(env.store, configs=(rec,))
            start = trio.current_time()
            push.watch(rec)
            await sender.wait_calls(9)
            gaps = [b.at - a.at for a, b in zip(sender.calls, sender.calls[1:], strict=False)]
            assert gaps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
            assert sender.calls[-1].at - start == 91.5


async def test_gives_up_after_max_attempts_and_moves_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    async def respond(call: Call) -> PushReply:
        return PushReply(500) if "task" in call.body else PushReply(204)

    caplog.set_level(logging.INFO, logger="actors.push_delivery")
    with trio.fail_after(TIMEOUT):
        async with open_env() as env:
            sender = FakeSender(respond)
            push = await env.start_push(sender, rng=random.Random(3), max_attempts=3)
            rec = config()
            await create(env.store, configs=(rec,))
            start = trio.current_time()
            push.watch(rec)
            await run_task(env.store, artifacts=1)
            await eventually(lambda: push.statistics().active_loops == 0)

            assert await seqs(env.store, sender.calls) == [1, 1, 1, 2, 3, 4]
            d1, d2 = expected_backoff(3, 2)
            assert sender.calls[2].at - start == pytest.approx(d1 + d2, abs=1e-9)
            stats = push.statistics()
            assert (stats.delivered, stats.failed_attempts, stats.dropped_events) == (3, 3, 1)
            assert await delivered_seq(env.backend) == 4
            [dropped] = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert dropped.getMessage() == "push notification dropped"
            fields = {k: getattr(dropped, k) for k in
                      ("task_id", "config_id", "seq", "url", "status", "attempts")}
            assert fields == {"task_id": "t1", "config_id": "c1", "seq": 1, "url": URL,
                              "status": 500, "attempts": 3}


async def test_client_errors_are_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    """A 4xx (other than 408/429) or a refused destination would fail the same way again."""
    with trio.fail_after(TIMEOUT):
        async with open_env() as env:
            sender = FakeSender(script(PushReply(404), PushSendError("private", permanent=True),
                                       PushReply(302)))
            push = await env.start_push(sender, max_attempts=8)
            rec = config()
            await create(env.store, configs=(rec,))
            start = trio.current_time()
            push.watch(rec)
            await run_task(env.store, artifacts=1)
            await eventually(lambda: push.statistics().active_loops == 0)

            assert await seqs(env.store, sender.calls) == [1, 2, 3, 4]
            assert {c.at for c in sender.calls} == {start}
            stats = push.statistics()
            assert (stats.delivered, stats.failed_attempts, stats.dropped_events) == (1, 3, 3)


async def test_retry_after_is_honoured_and_capped(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_env() as env:
            sender = FakeSender(script(PushReply(429, retry_after=7.0),
                                       PushReply(503, retry_after=1000.0),
                                       PushReply(500, retry_after=1000.0)))  # ignored on 500
            push = await env.start_push(sender, rng=random.Random(5))
            rec = config()
            await create(env.store, configs=(rec,))
            start = trio.current_time()
            push.watch(rec)
            await sender.wait_calls(4)

            # Retry-After replaces the backoff for attempts 1 and 2; attempt 3 backs off.
            jitter = expected_backoff(5, 3)[0] / 0.5  # the RNG's first draw, as a factor
            assert [c.at - start for c in sender.calls] == pytest.approx(
                [0.0, 7.0, 37.0, 37.0 + 2.0 * jitter], abs=1e-9)


async def test_deleted_config_stops_delivery(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_env() as env:
            sender = FakeSender(script(PushReply(200), PushReply(500)))
            push = await env.start_push(sender, rng=random.Random(9))
            rec = config()
            await create(env.store, configs=(rec,))
            push.watch(rec)
            await env.store.write("t1", [status("t1", TaskState.WORKING)])
            await sender.wait_calls(2)  # seq 2 failed, backing off
            assert await env.store.delete_push_config("t1", "c1")
            await eventually(lambda: push.statistics().active_loops == 0)
            await run_task_rest(env.store)
            await trio.sleep(100)

            assert await seqs(env.store, sender.calls) == [1, 2]
            assert push.statistics().dropped_events == 0


async def run_task_rest(store: ServerTaskStore) -> None:
    await store.write("t1", [artifact("t1", 0)])
    await store.write("t1", [status("t1", TaskState.COMPLETED)])


async def test_replaced_config_is_used_from_the_next_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    new_url = "https://other.example/hook"

    async def respond(call: Call) -> PushReply:
        return PushReply(200 if call.url == new_url else 500)

    with trio.fail_after(TIMEOUT):
        async with open_env() as env:
            sender = FakeSender(respond)
            push = await env.start_push(sender)
            rec = config()
            await create(env.store, configs=(rec,))
            push.watch(rec)
            await sender.wait_calls(1)
            replaced = config(url=new_url)
            await env.store.put_push_config(replaced)
            push.watch(replaced)  # the running loop carries on with the new config
            await run_task(env.store, artifacts=0)
            await eventually(lambda: push.statistics().active_loops == 0)

            assert [c.url for c in sender.calls] == [URL] + [new_url] * 3
            assert await seqs(env.store, sender.calls) == [1, 1, 2, 3]


async def test_restart_resumes_from_stored_progress(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stalled = trio.Event()

    async def ack_two_then_stall(call: Call) -> PushReply:
        if "artifactUpdate" in call.body:
            stalled.set()
            await trio.sleep_forever()
        return PushReply(200)

    with trio.fail_after(TIMEOUT):
        async with open_memory_backend() as backend:
            # first life: t1 gets seq 1-2 acknowledged and stalls on 3; t2 is fully delivered
            first = FakeSender(ack_two_then_stall)
            async with open_env(backend) as env:
                push = await env.start_push(first)
                for task_id in ("t1", "t2"):
                    rec = config(task_id)
                    await create(env.store, task_id, configs=(rec,))
                    push.watch(rec)
                await env.store.write("t2", [status("t2", TaskState.WORKING)])
                await env.store.write("t1", [status("t1", TaskState.WORKING)])
                await env.store.write("t1", [artifact("t1", 0)])
                await stalled.wait()
                await eventually(lambda: push.statistics().delivered == 4)
            assert first.closed  # run() closes its sender
            assert await delivered_seq(backend, "t1") == 2
            assert await delivered_seq(backend, "t2") == 2

            # second life: a new store and delivery over the same backend
            second = FakeSender()
            async with open_env(backend) as env:
                push = await env.start_push(second)
                assert push.statistics().active_loops == 2  # t1 is behind, t2 unfinished
                await env.store.write("t1", [status("t1", TaskState.COMPLETED)])
                await env.store.write("t2", [status("t2", TaskState.COMPLETED)])
                await eventually(lambda: push.statistics().active_loops == 0)

                t1 = [c for c in second.calls if c.body[next(iter(c.body))]["taskId"] == "t1"]
                t2 = [c for c in second.calls if c not in t1]
                assert await seqs(env.store, t1, "t1") == [3, 4]
                assert await seqs(env.store, t2, "t2") == [3]
            assert await delivered_seq(backend, "t1") == 4
            assert await delivered_seq(backend, "t2") == 3


async def test_slow_receiver_does_not_slow_the_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    release = trio.Event()

    async def stall(call: Call) -> PushReply:
        await release.wait()
        return PushReply(200)

    with trio.fail_after(TIMEOUT):
        async with open_env() as env:
            sender = FakeSender(stall)
            push = await env.start_push(sender)
            rec = config()
            await create(env.store, configs=(rec,))
            push.watch(rec)
            start = trio.current_time()
            await run_task(env.store, artifacts=200)
            record = await env.store.get_task("t1")
            assert record is not None and record.state is TaskState.COMPLETED
            assert record.seq == 203
            assert trio.current_time() == start  # no write waited for the receiver
            assert len(sender.calls) == 1

            await trio.sleep(300)
            assert len(sender.calls) == 1  # still stalled on seq 1, nothing lost or skipped
            release.set()
            await eventually(lambda: push.statistics().active_loops == 0)
            assert await seqs(env.store, sender.calls) == list(range(1, 204))
            assert await delivered_seq(env.backend) == 203


async def test_in_flight_posts_are_bounded(autojump_clock: trio.testing.MockClock) -> None:
    release = trio.Event()
    peak = 0
    push: PushDelivery | None = None

    async def stall(call: Call) -> PushReply:
        nonlocal peak
        assert push is not None
        peak = max(peak, push.statistics().in_flight)
        await release.wait()
        return PushReply(200)

    with trio.fail_after(TIMEOUT):
        async with open_env() as env:
            sender = FakeSender(stall)
            push = await env.start_push(sender, max_in_flight=3)
            for i in range(10):
                rec = config(f"t{i}")
                await create(env.store, f"t{i}", configs=(rec,))
                push.watch(rec)
            await trio.sleep(10)
            assert len(sender.calls) == 3
            assert push.statistics().in_flight == 3
            assert push.statistics().active_loops == 10
            release.set()
            await eventually(lambda: push.statistics().delivered == 10)
            assert peak == 3
