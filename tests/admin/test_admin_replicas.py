"""The admin API across two replicas on one PostgreSQL database: the queue, the leases
and the changes work from either replica (they read and write the store); the worker
list is the answering replica's own."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from runtime.admin import AdminSettings
from runtime.server import ServerConfig, open_server
from tests.admin.helpers import TOKEN, Admin, AdminError
from tests.admin.test_admin_api import send, worker
from tests.agents import Controls, scripted_agent
from tests.conftest import wait_state


@pytest.mark.parametrize("binding", ["rest", "rpc"])
async def test_the_other_replica_lists_and_changes_what_one_runs(
        postgres_url: str, binding: str) -> None:
    controls = Controls()
    common: dict[str, Any] = {"port": 0, "store": "postgres", "database_url": postgres_url,
                              "agent": scripted_agent(controls), "local_workers": 0,
                              "admin": AdminSettings(token=TOKEN)}
    with trio.fail_after(40):
        async with open_server(ServerConfig(**common, replica_id="a")) as a, \
                open_server(ServerConfig(**common, replica_id="b")) as b, \
                httpx.AsyncClient(base_url=a.url, timeout=20) as http_a, \
                httpx.AsyncClient(base_url=b.url, timeout=20) as http_b, \
                worker(a, controls, "w-a"):
            admin_a, admin_b = Admin(http_a, binding), Admin(http_b, binding)
            waiting = await send(http_a, "echo x", **{"trio-a2a/capabilities": ["nobody"]})
            running = await send(http_a, "wait")
            await controls.wait_started(running)
            # workers: per replica
            assert [w["workerId"] for w in (await admin_a("listWorkers"))["workers"]] == ["w-a"]
            assert await admin_b("listWorkers") == {"replica": "b", "workers": []}
            with pytest.raises(AdminError) as err:
                await admin_b("drainWorker", workerId="w-a")
            assert "not connected to this server process" in err.value.message
            # queue and leases: the same from both
            for admin in (admin_a, admin_b):
                (group,) = (await admin("listQueue"))["routes"]
                assert [t["id"] for t in group["tasks"]] == [waiting]
                (lease,) = (await admin("listLeases"))["tasks"]
                assert lease["id"] == running and lease["lease"]["workerId"] == "w-a"
            # changes made on B to tasks A holds
            failed = await admin_b("failTask", id=running, reason="from b")
            assert failed["state"] == "TASK_STATE_FAILED"
            await wait_state(a, running, "TASK_STATE_FAILED")
            out = await admin_b("cancelTasks", capability="nobody")
            assert out["canceled"] == [waiting]
            await wait_state(a, waiting, "TASK_STATE_CANCELED")
            assert (await admin_a("listQueue"))["routes"] == []
            controls.gate.set()
