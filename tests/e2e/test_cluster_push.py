"""Subscribe on one replica, cancel through another, kill the one delivering pushes.

Real processes on loopback: three `python -m runtime server --store postgres`
replicas on one fresh database, one `python -m runtime worker` process running
`tests.e2e.agents:counter` (a status line per step, 0.2 s apart) and given all
three replicas' URLs, and a real webhook (hypercorn) in the test process.

A task is sent through replica 0 with a push config. Once pushes arrive, the
database says which replica delivers them (its claim on the config): that one is
killed with SIGKILL; the task is followed with SubscribeToTask on another
replica, and canceled through the third. What must hold:

* the push config is taken over by a live replica and delivery carries on from
  the stored cursor: the webhook receives the task's stored event log in order,
  every event, ending with `canceled`; only the event in flight when the owner
  died may come twice;
* the subscriber's stream on its replica carries consecutive event ids with no
  gap and no repeat and ends with `canceled`;
* the cancel reached the agent on the worker (whichever replica the worker was
  connected to): no step after the `canceled` status.
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import httpx
import psycopg
import pytest
import trio

from protocol.models import dump
from protocol.sse import SSEDecoder
from runtime.store.postgres import open_postgres_backend
from tests.e2e.procs import logged, open_processes, server_url
from tests.test_push_e2e import open_receiver, send_message

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.slow, pytest.mark.interop]

REPLICAS = 3
PUSH_LEASE_TTL = 2.0
LEASE_TTL = 3.0
TEST_TIMEOUT = 120
A2A = {"A2A-Version": "1.0"}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def key(event: dict[str, Any]) -> tuple[str, str, str]:
    """What tells one event of the log from another: kind, state and status text."""
    kind, body = next(iter(event.items()))
    if kind == "statusUpdate":
        status = body["status"]
        text = "".join(p.get("text", "") for p in status.get("message", {}).get("parts", []))
        return kind, status["state"], text
    if kind == "task":
        return kind, body["status"]["state"], ""
    return kind, "", json.dumps(body.get("artifact", {}), sort_keys=True)


def push_owner(url: str) -> str | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT claim_owner FROM push_configs").fetchone()
    return None if row is None else row[0]


async def subscribe(url: str, task_id: str, frames: list[tuple[int, dict[str, Any]]],
                    opened: trio.Event, ended: trio.Event) -> None:
    """SubscribeToTask on `url`: each frame's id and event into `frames`."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask", "params": {"id": task_id}}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client, \
            client.stream("POST", "/", json=body, headers=A2A) as r:
        decoder = SSEDecoder()
        async for data in r.aiter_bytes():
            for frame in decoder.feed(data):
                opened.set()
                result = json.loads(frame.data)["result"]
                frames.append((int(frame.id) if frame.id else -1, result))
    ended.set()


async def test_push_survives_its_replica_and_cancel_crosses_replicas(
        fresh_postgres_url: str) -> None:
    url = fresh_postgres_url
    ports = free_ports(REPLICAS)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    with trio.fail_after(TEST_TIMEOUT):
        async with open_receiver() as (hook_url, receiver), open_processes() as start, \
                httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:
            replicas = [await start(f"replica-{n}", [
                "-m", "runtime", "server", "--port", str(ports[n]), "--store", "postgres",
                "--database-url", url, "--local-workers", "0", "--replica-id", f"replica-{n}",
                "--allow-private-push-urls", "--push-lease-ttl", str(PUSH_LEASE_TTL),
                "--lease-ttl", str(LEASE_TTL), "--log-format", "json"])
                for n in range(REPLICAS)]
            for r in replicas:
                await r.wait_for(server_url, "start")
            worker = await start("worker", [
                "-m", "runtime", "worker", "--agent", "tests.e2e.agents:counter",
                "--server", ",".join(urls), "--log-format", "json"])
            await worker.wait_for(lambda p: logged(p, "worker registered"), "registration")

            request = send_message("100", {"url": hook_url, "token": "tok"})
            request["params"]["configuration"]["returnImmediately"] = True
            task_id = (await http.post(urls[0] + "/", json=request, headers=A2A)
                       ).json()["result"]["task"]["id"]
            await receiver.wait_for(3)
            owner = int(push_owner(url).rsplit("-", 1)[1])
            sub, canceller = [n for n in range(REPLICAS) if n != owner]

            frames: list[tuple[int, dict[str, Any]]] = []
            opened, ended = trio.Event(), trio.Event()
            nursery.start_soon(subscribe, urls[sub], task_id, frames, opened, ended)
            await opened.wait()

            replicas[owner].process.kill()
            await replicas[owner].process.wait()
            before = len(receiver.received)
            log.info("killed replica %d, the push owner, after %d pushes", owner, before)
            await receiver.wait_for(before + 3)  # a live replica took the config over
            new_owner = push_owner(url)
            assert new_owner != f"replica-{owner}"

            reply = await http.post(urls[canceller] + "/", headers=A2A, json={
                "jsonrpc": "2.0", "id": 2, "method": "CancelTask", "params": {"id": task_id}})
            assert reply.json()["result"]["status"]["state"] == "TASK_STATE_CANCELED"
            await ended.wait()  # the stream ends after the terminal event
            while not receiver.received or key(receiver.received[-1].body)[1] != \
                    "TASK_STATE_CANCELED":
                await receiver.wait_for(len(receiver.received) + 1)
            nursery.cancel_scope.cancel()

    async with open_postgres_backend(url, pool_size=1, run_migrations=False) as backend:
        stored = [dump(s.event) for s in await backend.read_events(task_id, 0, 10_000)]
    check(stored, [r.body for r in receiver.received], frames, new_owner)


def check(stored: list[dict[str, Any]], pushed: list[dict[str, Any]],
          frames: list[tuple[int, dict[str, Any]]], new_owner: str | None) -> None:
    stored_keys = [key(e) for e in stored]
    # The cancel reached the agent: nothing after the canceled status in the log.
    assert stored_keys[-1][1] == "TASK_STATE_CANCELED", stored_keys[-3:]
    steps = [k for k in stored_keys if k[2].startswith("step ")]
    assert 3 < len(steps) < 100, "the task ran a while and was canceled before its end"
    # Every stored event pushed, in order; at most the one in flight at the kill twice.
    pushed_keys = [key(e) for e in pushed]
    repeats = [a for a, b in zip(pushed_keys, pushed_keys[1:], strict=False) if a == b]
    deduped = [k for n, k in enumerate(pushed_keys) if n == 0 or k != pushed_keys[n - 1]]
    assert deduped == stored_keys, (deduped, stored_keys)
    assert len(repeats) <= 1, repeats
    # The subscriber's stream: consecutive ids after its snapshot, ending canceled.
    ids = [i for i, _ in frames if i >= 0]
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids
    assert key(frames[-1][1])[1] == "TASK_STATE_CANCELED"
    log.info("%d events stored, %d pushed (%d repeated), %d streamed; push owner now %s",
             len(stored), len(pushed), len(repeats), len(frames), new_owner)
