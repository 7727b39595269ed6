"""Fault injection on virtual time: fifty real workers while the server is unreachable.

Fifty `open_worker` trees (connection subtree with Registrar, Heartbeat, TaskClaimer;
sessions) connect through an in-process link to the real server core (store on a
memory backend, dispatcher, `WorkerLinkEndpoint`). Only the wire is simulated: until
`SERVER_UP` every connect raises `LinkDown` (the server is down), from then on it
opens `open_in_process_link` to the core, which starts at that moment.

The expected connection times come from the rule the worker's code applies, replayed
here on the same seeded RNG: the connection subtree (`runtime.worker.open_worker`) is
a one_for_all `Supervisor` whose link child returns at once when the connect fails;
each such exit is one restart of the subtree, delayed by
`Supervisor.backoff_delay(n) = min(max, base * factor ** (n - 1)) * (1 + jitter *
rng.uniform(-1, 1))` with `WorkerConfig.reconnect`'s numbers and the worker's single
`random.Random(WorkerConfig.seed)` (nothing else draws from it before the first
registration: the Registrar, sessions and the worker supervisor draw only on their
own failures). `n` resets only after `stable_after` seconds of uptime (never, here:
a failed connect lasts no time), and more than `reconnect_max_restarts` restarts in
`reconnect_window` seconds would make the subtree give up (never, with these
numbers: the model checks it).
"""

from __future__ import annotations

import contextlib
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import attrs
import pytest
import trio
import trio.testing

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.worker import Backoff, LinkDown
from protocol.models import TaskState
from runtime.link.local import open_in_process_link
from runtime.worker import Connection, RunningWorker, WorkerConfig, open_worker
from tests.sim import SimServer, open_sim_server

WORKERS = 50
SEEDS = [1000 + i for i in range(WORKERS)]
SERVER_UP = 100.0
"""Virtual time at which the server comes up (the workers start at 0)."""
LEASE_TTL = 30.0
CONFIG = WorkerConfig()  # the defaults: reconnect 0.5 s doubling to 30 s, jitter 20 %
TASKS = 10


@attrs.frozen
class Expected:
    attempts: tuple[float, ...]
    """Connect attempts: every one but the last fails (before SERVER_UP)."""


def expected_attempts(seed: int, config: WorkerConfig, up: float) -> Expected:
    """Replay the connection supervisor's restart rule on the worker's seeded RNG."""
    back: Backoff = config.reconnect
    rng = random.Random(seed)
    t, failures = 0.0, 0
    attempts = [t]
    restarts: deque[float] = deque()
    while t < up:
        # The connect at `t` failed: the link child exits; one restart of the subtree.
        restarts.append(t)
        while restarts[0] < t - config.reconnect_window:
            restarts.popleft()
        assert len(restarts) <= config.reconnect_max_restarts, "the subtree would give up"
        assert config.stable_after > 0  # a failed connect runs 0 s: never "stable"
        failures += 1
        delay = min(back.max, back.base * back.factor ** (failures - 1))
        t = t + delay * (1 + back.jitter * rng.uniform(-1, 1))
        assert abs(t - up) > 1e-6, "an attempt in the same tick as the server coming up"
        attempts.append(t)
    return Expected(tuple(attempts))


def done_agent() -> AgentSpec:
    async def run(ctx: TaskContext, emit: Emitter) -> None:
        await emit.artifact_text(f"done: {ctx.text}", last_chunk=True)
        await emit.complete()

    return AgentSpec("done", run)


async def run_core(*, task_status: trio.TaskStatus[SimServer]) -> None:
    async with open_sim_server(lease_ttl=LEASE_TTL) as core:
        task_status.started(core)
        await trio.sleep_forever()


class Net:
    """The wire: `LinkDown` while no server is up; records every connect attempt."""

    def __init__(self) -> None:
        self.core: SimServer | None = None
        self.attempts: dict[str, list[float]] = {}

    def connect(self, name: str) -> Callable[[], AbstractAsyncContextManager[Connection]]:
        attempts = self.attempts.setdefault(name, [])

        @contextlib.asynccontextmanager
        async def connect() -> AsyncIterator[Connection]:
            attempts.append(trio.current_time())
            core = self.core
            if core is None:
                raise LinkDown("connection refused: the server is down")
            async with open_in_process_link(core.endpoint, durable_acks=True) as link:
                yield link

        return connect


async def test_fifty_workers_back_off_with_seeded_jitter_and_all_register_once_the_server_is_up(
        autojump_clock: trio.testing.MockClock) -> None:
    expected = {f"wrk-{i:02d}": expected_attempts(seed, CONFIG, SERVER_UP)
                for i, seed in enumerate(SEEDS)}
    net = Net()
    registered_at: dict[str, float] = {}
    workers: dict[str, RunningWorker] = {}

    all_up = trio.Event()

    async def note_registration(name: str, worker: RunningWorker) -> None:
        await worker.wait_registered()
        registered_at[name] = trio.current_time()
        if len(registered_at) == WORKERS:
            all_up.set()

    with trio.fail_after(600):
        async with contextlib.AsyncExitStack() as stack, trio.open_nursery() as nursery:
            for i, seed in enumerate(SEEDS):
                name = f"wrk-{i:02d}"
                workers[name] = await stack.enter_async_context(open_worker(
                    "in-process", token=None, agent=done_agent(), name=name, worker_id=name,
                    connect=net.connect(name), config=attrs.evolve(CONFIG, seed=seed)))
                nursery.start_soon(note_registration, name, workers[name])
            assert trio.current_time() == 0.0
            await trio.sleep(SERVER_UP)
            assert registered_at == {}  # nobody got through while the server was down
            core = net.core = await nursery.start(run_core)
            await all_up.wait()
            all_registered_at = trio.current_time()
            dispatcher_workers = core.dispatcher.statistics().workers
            tasks = [await core.submit(f"job {k}") for k in range(TASKS)]
            done = [await core.store.wait_record(
                t, lambda r: r.state == TaskState.COMPLETED) for t in tasks]
            finished_at = trio.current_time()
            for w in workers.values():  # each session's bookkeeping ends after its release
                while w.sessions.active:
                    await w.sessions.wait_changed()
            stats = {name: w.statistics() for name, w in workers.items()}
            logs = [await core.store.read_events(t, 0, 100) for t in tasks]
            await stack.aclose()
            nursery.cancel_scope.cancel()

    # Each worker retried exactly on its seed's schedule: 0.5, 1, 2, 4, 8, 16, 30, 30 s
    # (each scaled by 1 + 0.2 * uniform(-1, 1)) until its first attempt after the server
    # came up, which registered at once.
    for name, exp in expected.items():
        assert net.attempts[name] == pytest.approx(list(exp.attempts), abs=1e-9), name
        assert registered_at[name] == pytest.approx(exp.attempts[-1], abs=1e-9), name
        assert stats[name].connects == len(exp.attempts)
        assert stats[name].registrations == 1
    # Not in lock-step: the k-th retries of the fifty workers are all at different
    # moments, spread over at least 30 % of the k-th nominal delay (the jitter of that
    # step alone spans 40 % of it), for every retry that all of them made while down.
    back = CONFIG.reconnect
    down_retries = min(sum(1 for t in net.attempts[name][1:] if t < SERVER_UP)
                       for name in expected)
    assert down_retries == 7  # 0.5 + 1 + 2 + 4 + 8 + 16 + 30 = 61.5 s nominal
    for k in range(1, down_retries + 1):
        kth = [net.attempts[name][k] for name in expected]
        nominal = min(back.max, back.base * back.factor ** (k - 1))
        assert len(set(kth)) == WORKERS, k
        assert max(kth) - min(kth) >= 0.3 * nominal, (k, max(kth) - min(kth))
    every_attempt = [t for times in net.attempts.values() for t in times[1:]]
    assert len(set(every_attempt)) == len(every_attempt)  # no two workers at one moment
    # Converged: all fifty registered by the last worker's first attempt after SERVER_UP,
    # at most one full backoff (30 s + 20 %) after the server came up.
    last = max(exp.attempts[-1] for exp in expected.values())
    assert all_registered_at == pytest.approx(last, abs=1e-9)
    assert SERVER_UP < last <= SERVER_UP + back.max * (1 + back.jitter)
    assert dispatcher_workers == WORKERS
    # Nothing lost: every task submitted afterwards completed once, with its own text.
    assert [[p.text for a in r.task.artifacts or () for p in a.parts] for r in done] \
        == [[f"done: job {k}"] for k in range(TASKS)]
    finals = [[ev.event.status_update.status.state for ev in log
               if ev.event.status_update is not None
               and ev.event.status_update.status.state in (TaskState.COMPLETED,
                                                           TaskState.FAILED,
                                                           TaskState.CANCELED)]
              for log in logs]
    assert finals == [[TaskState.COMPLETED]] * TASKS
    assert sum(s.outcomes.get("completed", 0) for s in stats.values()) == TASKS
    assert finished_at == pytest.approx(all_registered_at, abs=1e-9)  # ran at once
