"""Client-chosen task ids across two server replicas on one PostgreSQL database.

Two `tasks/send` of one new id, one to each replica at once: the database takes one
create and refuses the other, which is then a follow-up on the task at work (-32004).
The agent runs once. Then the task is followed up, and read, through either replica.
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from runtime.server import ServerConfig, open_server
from tests.agents import Controls, scripted_agent
from tests.conftest import wait_state
from tests.http_face.legacy_client import LegacyClient, task_send, text

TIMEOUT = 30
BOUND = 5.0
"""Seconds B may take to show what A stored (as in tests/test_replicas.py)."""


async def test_one_id_sent_to_two_replicas_makes_one_task(controls: Controls,
                                                          postgres_url: str) -> None:
    common: dict[str, Any] = {"port": 0, "store": "postgres", "database_url": postgres_url,
                              "agent": scripted_agent(controls), "store_poll_interval": 60.0}
    outcomes: list[dict[str, Any]] = []
    one_answered = trio.Event()
    with trio.fail_after(TIMEOUT):
        async with open_server(ServerConfig(**common)) as a, \
                open_server(ServerConfig(**common, local_workers=0)) as b, \
                httpx.AsyncClient(base_url=a.url, timeout=TIMEOUT) as ca, \
                httpx.AsyncClient(base_url=b.url, timeout=TIMEOUT) as cb:
            old_a, old_b = LegacyClient(ca), LegacyClient(cb)

            async def send(old: LegacyClient) -> None:
                outcomes.append(await old.raw("tasks/send", task_send(
                    "rep-1", text("wait"), session_id="s-rep")))
                one_answered.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send, old_a)
                nursery.start_soon(send, old_b)
                await controls.wait_started("rep-1")
                await one_answered.wait()
                controls.gate.set()
            with trio.fail_after(BOUND):  # B learns of A's commits by notification
                await wait_state(b, "rep-1", "TASK_STATE_COMPLETED")
            got_b = await old_b.call("tasks/get", {"id": "rep-1"})
            again_b = await old_b.error("tasks/send", task_send("rep-1", text("wait")))
    assert sorted("error" in o for o in outcomes) == [False, True], outcomes
    assert [o["error"]["code"] for o in outcomes if "error" in o] == [-32004]
    assert controls.started == ["rep-1"]
    assert got_b["id"] == "rep-1" and got_b["sessionId"] == "s-rep"
    assert got_b["status"]["state"] == "completed" and len(got_b["history"]) == 1
    assert again_b["code"] == -32004 and "completed" in again_b["message"]
