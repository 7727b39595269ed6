"""Push delivery with two real replicas on one PostgreSQL database and a real webhook.

Each replica is `open_server(store="postgres")` on the run's database (its own pool,
change feed, push delivery and HTTP listener) and the receiver is hypercorn on
loopback, all on the real clock. The task is created through replica A with a push
config; its events are then written through both replicas' task stores (no worker:
the test is the agent), so the events keep coming whichever replica is stopped.

While both live, exactly one replica delivers the config: the receiver gets each
event once. When the owner is killed (its scope cancelled: nothing released), the
other takes over once the claim expires and delivers the rest from the stored
cursor: nothing is lost, and at most the event in flight is posted twice. When the
owner stops gracefully it releases the claim and the other takes over at once.
"""

from __future__ import annotations

import json
from collections import Counter

import attrs
import httpx
import pytest
import trio

from actors.task_store import ServerTaskStore
from protocol.models import TaskState, dump
from runtime.server import RunningServer, ServerConfig, open_server
from tests.conftest import Rpc, user_message
from tests.test_push_delivery import artifact, status
from tests.test_push_e2e import Receiver, open_receiver

TIMEOUT = 60


@attrs.define
class Live:
    """A replica running in a scope of its own: `stop` ends it gracefully, cancelling
    `scope` kills it (its push claims stay behind until they expire)."""

    server: RunningServer
    scope: trio.CancelScope
    stop: trio.Event = attrs.Factory(trio.Event)
    stopped: trio.Event = attrs.Factory(trio.Event)


async def run_replica(config: ServerConfig, *, task_status: trio.TaskStatus[Live]) -> None:
    with trio.CancelScope() as scope:
        try:
            async with open_server(config) as server:
                live = Live(server, scope)
                task_status.started(live)
                await live.stop.wait()
        finally:
            if "live" in locals():
                live.stopped.set()


def replica_config(url: str, replica_id: str, ttl: float) -> ServerConfig:
    return ServerConfig(port=0, store="postgres", database_url=url, local_workers=0,
                        replica_id=replica_id, allow_private_push_urls=True,
                        push_lease_ttl=ttl)


async def create_task(server: RunningServer, hook_url: str) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
        task = (await Rpc(client, "1.0").call("SendMessage", {
            "message": user_message("no worker runs this: the test writes its events"),
            "configuration": {"returnImmediately": True,
                              "taskPushNotificationConfig": {"url": hook_url,
                                                             "token": "tok"}}}))["task"]
    return str(task["id"])


async def received_seqs(store: ServerTaskStore, receiver: Receiver, task_id: str) -> list[int]:
    """The log sequence number of each POST the receiver got, in arrival order."""
    by_body = {json.dumps(dump(e.event), sort_keys=True): e.seq
               for e in await store.read_events(task_id, 0, 1000)}
    return [by_body[json.dumps(r.body, sort_keys=True)] for r in receiver.received]


async def wait_for_seq(store: ServerTaskStore, receiver: Receiver, task_id: str,
                       seq: int) -> list[int]:
    while seq not in await received_seqs(store, receiver, task_id):
        await receiver.wait_for(len(receiver.received) + 1)
    return await received_seqs(store, receiver, task_id)


async def owner_of(live: Live, task_id: str) -> str:
    claim = await live.server.store.backend.get_push_claim(task_id, task_id)
    assert claim is not None
    return claim.owner


@pytest.mark.slow
async def test_one_replica_delivers_and_the_other_takes_over_when_it_dies(
        postgres_url: str) -> None:
    ttl = 4.0
    with trio.fail_after(TIMEOUT):
        async with open_receiver() as (hook_url, receiver), trio.open_nursery() as nursery:
            lives: dict[str, Live] = {}
            for name in ("A", "B"):
                lives[name] = await nursery.start(
                    run_replica, replica_config(postgres_url, name, ttl))
            task_id = await create_task(lives["A"].server, hook_url)
            store = lives["A"].server.store
            await wait_for_seq(store, receiver, task_id, 1)
            owner = await owner_of(lives["A"], task_id)
            survivor = lives["B" if owner == "A" else "A"]

            # both alive: events written through either replica reach the receiver once
            stores = [lives["A"].server.store, lives["B"].server.store]
            await stores[0].write(task_id, [status(task_id, TaskState.WORKING)])
            for i in range(5):
                await stores[i % 2].write(task_id, [artifact(task_id, i)])
            assert await wait_for_seq(store, receiver, task_id, 7) == list(range(1, 8))
            await trio.sleep(ttl / 2)  # a renewal later: nothing more arrives
            assert await received_seqs(store, receiver, task_id) == list(range(1, 8))
            assert await owner_of(survivor, task_id) == owner

            # the owner dies without releasing anything; events keep coming
            lives[owner].scope.cancel()
            await lives[owner].stopped.wait()
            for i in range(5, 8):
                await survivor.server.store.write(task_id, [artifact(task_id, i)])
            store = survivor.server.store
            seqs = await wait_for_seq(store, receiver, task_id, 10)
            assert await owner_of(survivor, task_id) == survivor.server.push.ownership.owner
            await store.write(task_id, [status(task_id, TaskState.COMPLETED)])
            seqs = await wait_for_seq(store, receiver, task_id, 11)

            assert sorted(set(seqs)) == list(range(1, 12))  # nothing lost
            repeated = [seq for seq, n in Counter(seqs).items() if n > 1]
            assert len(repeated) <= 1 and all(n <= 2 for n in Counter(seqs).values())
            assert [s for s in seqs[7:] if s not in repeated] == list(range(8, 12))
            while True:  # the cursor moves just after the receiver has answered
                record = await store.get_push_config(task_id, task_id)
                if record is not None and record.delivered_seq == 11:
                    break
                await trio.sleep(0.01)
            survivor.stop.set()


async def test_a_replica_that_stops_gracefully_hands_its_configs_over_at_once(
        postgres_url: str) -> None:
    """The lease is a minute long and the test must end within 20 s: the other replica
    cannot be waiting for it to expire."""
    ttl = 60.0
    with trio.fail_after(20):
        async with open_receiver() as (hook_url, receiver), trio.open_nursery() as nursery:
            lives: dict[str, Live] = {}
            for name in ("A", "B"):
                lives[name] = await nursery.start(
                    run_replica, replica_config(postgres_url, name, ttl))
            task_id = await create_task(lives["A"].server, hook_url)
            store = lives["A"].server.store
            await wait_for_seq(store, receiver, task_id, 1)
            owner = await owner_of(lives["A"], task_id)
            survivor = lives["B" if owner == "A" else "A"]
            await lives[owner].server.store.write(task_id, [status(task_id, TaskState.WORKING)])
            await wait_for_seq(store, receiver, task_id, 2)

            lives[owner].stop.set()  # graceful: the claim is released on the way out
            await lives[owner].stopped.wait()
            store = survivor.server.store
            await store.write(task_id, [artifact(task_id, 0)])
            await store.write(task_id, [status(task_id, TaskState.COMPLETED)])
            seqs = await wait_for_seq(store, receiver, task_id, 4)
            assert seqs == [1, 2, 3, 4]  # exactly once: nothing was in flight
            survivor.stop.set()
