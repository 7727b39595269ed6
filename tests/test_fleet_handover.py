"""Work handed over at once, not after a lease runs out: a replica's embedded workers'
tasks when it stops gracefully, a stopping worker's unfinished tasks, and a grant lost
with a replica that died between committing a claim and answering it.

Real replicas on PostgreSQL, real workers over the WebSocket link, the `mover` agent
of tests/test_fleet.py. Every lease here is the default 90 s and every test is bound
by 30 s: a task that waited for its lease to run out could not finish in time.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import trio

from actors.dispatcher import Claim
from runtime.server import ServerConfig, open_server
from runtime.worker import open_worker
from tests.conftest import Rpc
from tests.test_fleet import (
    QUICK,
    TIMEOUT,
    Phases,
    attempt_of,
    event_log,
    mover,
    on_server,
    replica,
    send,
    summary,
)
from tests.test_replicas import WORKER_TOKEN, client, replica_config, rpc_wait_state

ROLLBACK = ["task"]
"""A retry starts with the task as the lost attempt found it (its output rolled back)."""


def retried_run(label: str, note: str) -> list[str]:
    """The log of a task whose first attempt was cut after phase 1 and whose second,
    on worker `label`, ran to the end."""
    first = ["task", "working:", "c0 ", "c1 ", "c2 ", "working:phase 1 done"]
    second = ["working:", "c0 ", "c1 ", "c2 ", "working:phase 1 done", "c3 ", "c4 ", "c5 ",
              "working:phase 2 done", f"completed:done by {label}"]
    return [*first, *ROLLBACK, f"working:{note}", *second]


async def final_of(rpc: Rpc, srv: Any, task_id: str) -> tuple[list[str], Any]:
    await rpc_wait_state(rpc, task_id, "TASK_STATE_COMPLETED")
    log = await event_log(rpc, task_id)
    ids = [i for i, _ in log]
    assert ids == list(range(1, len(ids) + 1)), ids
    return summary(log), await srv.store.get_task(task_id)


async def test_a_replica_that_stops_queues_its_embedded_workers_tasks_again_at_once(
        postgres_url: str) -> None:
    """Replica a's embedded worker runs the task; a stops gracefully; the task is queued
    again as a stops (not when the 90 s lease runs out, nor when a starts again) and
    b's embedded worker runs it; the attempt a's stop cut off is not counted."""
    phases = Phases()

    def config(name: str, **kw: Any) -> ServerConfig:
        return replica_config(postgres_url, local_workers=1, replica_id=name,
                              agent=mover(phases, name, **kw))

    with trio.fail_after(TIMEOUT):
        async with replica(config("a")) as (a, stop_a), client(a) as rpc_a:
            task_id = await send(rpc_a, "never")
            await phases.at(task_id, 1).wait()
            async with open_server(config("b", open_gates=True)) as b, client(b) as rpc_b:
                stop_a()
                got, final = await final_of(rpc_b, b, task_id)
    assert phases.started == [("a", task_id), ("b", task_id)]
    note = re.fullmatch(r"working:(worker 'local-0-\w+' stopped with the server; "
                        r"retrying \(attempt 1 of 3\))", got[7])
    assert note is not None, got
    assert got == retried_run("b", note.group(1)), got
    assert final.dispatch.attempts == 2 and final.dispatch.run_attempts == 1


async def test_a_stopping_worker_finishes_what_it_can_and_gives_the_rest_back(
        postgres_url: str, caplog: Any) -> None:
    """Worker w1 runs two tasks on replica a. It is told to stop: it claims nothing
    more; "quick" ends within the grace; "slow" does not, so w1 gives it back (here
    when `hurry()` cuts the grace short, as a second SIGTERM does) and the server
    queues it again at once; w2, on replica b, runs it to the end. w1 logs one line
    when it stops."""
    phases = Phases()
    config = replica_config(postgres_url)
    caplog.set_level(logging.INFO, logger="runtime.worker.process")
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as a, open_server(config) as b, \
                client(a) as rpc_a, client(b) as rpc_b:
            async with open_worker(a.url, token=WORKER_TOKEN, agent=mover(phases, "w1"),
                                   worker_id="w1", concurrency=2, config=QUICK) as w1:
                await w1.wait_registered()
                quick, slow = await send(rpc_a, "quick"), await send(rpc_a, "slow")
                for task_id in (quick, slow):
                    await phases.at(task_id, 1).wait()
                async with trio.open_nursery() as nursery:
                    given_back: list[int] = []

                    async def stop() -> None:
                        given_back.append(await w1.shutdown(grace=TIMEOUT))

                    nursery.start_soon(stop)
                    while w1.connection is None or w1.connection.stopping is None:  # noqa: ASYNC110
                        await trio.sleep(0.01)
                    phases.gate("quick").set()
                    await rpc_wait_state(rpc_a, quick, "TASK_STATE_COMPLETED")
                    w1.hurry()
            assert given_back == [1]
            assert dict(w1.statistics().outcomes) == {"completed": 1, "requeue": 1}
            async with open_worker(b.url, token=WORKER_TOKEN,
                                   agent=mover(phases, "w2", open_gates=True),
                                   worker_id="w2", config=QUICK):
                got, final = await final_of(rpc_b, b, slow)
    assert [t for w, t in phases.started] == [quick, slow, slow]
    assert phases.started[2] == ("w2", slow)
    note = "worker 'w1' gave the task back (it is stopping); retrying (attempt 1 of 3)"
    assert got == retried_run("w2", note), got
    assert final.dispatch.attempts == 2 and final.dispatch.run_attempts == 1
    stopped = [r.getMessage() for r in caplog.records if "worker stopped" in r.getMessage()
               and getattr(r, "worker_id", None) == "w1"]
    assert len(stopped) == 1 and "1 task(s) ended, 1 given back, 0 cut off" in stopped[0]


async def test_a_grant_lost_with_its_replica_is_queued_again_when_the_worker_returns(
        postgres_url: str) -> None:
    """Replica a commits the worker's claim, then dies before answering it. The worker
    reconnects to b (its next URL) with no session for that task; its first heartbeat
    there (sent at once) shows b a lease the worker does not run, and b queues the task
    again at once; the worker claims it through b and runs it: the agent once."""
    phases = Phases()
    config = replica_config(postgres_url)
    committed = trio.Event()
    with trio.fail_after(TIMEOUT):
        async with replica(config, graceful=False) as (a, stop_a), \
                open_server(config) as b, client(b) as rpc_b:
            real_claim = a.dispatcher.claim

            async def claim_then_die(worker_id: str, task_id: str) -> Claim:
                await real_claim(worker_id, task_id)  # stored: the lease is in the database
                committed.set()
                await trio.sleep_forever()  # the answer never goes out

            object.__setattr__(a.dispatcher, "claim", claim_then_die)
            async with open_worker([a.url, b.url], token=WORKER_TOKEN,
                                   agent=mover(phases, "w", open_gates=True),
                                   worker_id="w", config=QUICK) as worker:
                await on_server(worker, a.url)
                task_id = await send(rpc_b, "go")
                await committed.wait()
                lost = await attempt_of(b, task_id)
                stop_a()
                got, final = await final_of(rpc_b, b, task_id)
    assert phases.started == [("w", task_id)]
    note = (f"worker 'w' never received attempt '{lost}' (its grant was lost); "
            "retrying (attempt 1 of 3)")
    assert got == ["task", f"working:{note}", "working:", "c0 ", "c1 ", "c2 ",
                   "working:phase 1 done", "c3 ", "c4 ", "c5 ", "working:phase 2 done",
                   "completed:done by w"], got
    assert final.dispatch.attempts == 2 and final.dispatch.run_attempts == 1
    assert final.dispatch.last_attempt_id != lost

