"""The admin API against a real server with real (remote, WebSocket) workers, each
operation over both bindings: HTTP+JSON (/admin/v1) and JSON-RPC (trio-a2a/admin/*)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from runtime.admin import AdminSettings
from runtime.http.auth import TokenEntry
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.worker import RunningWorker, open_worker
from tests.admin.helpers import TOKEN, Admin, AdminError
from tests.agents import Controls, scripted_agent
from tests.conftest import wait_state


async def send(http: httpx.AsyncClient, text: str, **metadata: Any) -> str:
    """Send a message without waiting for its task to end; the task id."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
        "message": {"messageId": str(uuid.uuid4()), "role": "ROLE_USER",
                    "parts": [{"text": text}], "metadata": metadata or None},
        "configuration": {"returnImmediately": True}}}
    r = await http.post("/", content=json.dumps(body),
                        headers={"A2A-Version": "1.0", "Content-Type": "application/json"})
    return r.json()["result"]["task"]["id"]


@contextlib.asynccontextmanager
async def worker(server: RunningServer, controls: Controls, name: str,
                 capabilities: tuple[str, ...] = ()) -> AsyncIterator[RunningWorker]:
    async with open_worker(server.url, token=None, agent=scripted_agent(controls), name=name,
                           worker_id=name, concurrency=2, capabilities=capabilities) as w:
        await w.wait_registered()
        yield w


async def wait_attempts(server: RunningServer, task_id: str, attempts: int) -> None:
    await server.store.wait_record(
        task_id, lambda r: r.dispatch.attempts >= attempts and r.dispatch.lease is not None)


# --- who may call it ------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong-token-123"])
async def test_refused_without_or_with_a_wrong_token(admin: Admin, token: str | None) -> None:
    admin.token = token
    with trio.fail_after(10), pytest.raises(AdminError) as err:
        await admin("listWorkers")
    e = err.value
    if token is None:
        assert (e.status, e.code) == (401, -32040 if admin.binding == "rpc" else "UNAUTHENTICATED")
        assert "needs the admin token" in e.message and "'admin'" in e.message
    else:
        assert (e.status, e.code) == (403, -32041 if admin.binding == "rpc"
                                      else "PERMISSION_DENIED")
        assert e.message == ("the credential sent is neither the admin token nor one whose "
                             "roles grant the 'admin' permission")
        assert token not in e.message and TOKEN not in e.message


async def test_a_client_token_without_admin_is_not_the_admin_token(controls: Controls) -> None:
    entries = {"client-tok": TokenEntry("alice", ("agent",))}
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                          tokens={"client-tok": "alice"}, admin=AdminSettings(token=TOKEN),
                          security=SecurityConfig(token_entries=entries))
    with trio.fail_after(10):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as http:
            for binding in ("rest", "rpc"):
                with pytest.raises(AdminError) as err:
                    await Admin(http, binding, token="client-tok")("listWorkers")
                assert err.value.status == 403
            # and the admin token is not a client token on the A2A methods
            r = await http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "GetTask",
                                           "params": {"id": "x"}},
                                headers={"Authorization": f"Bearer {TOKEN}",
                                         "A2A-Version": "1.0"})
            assert r.status_code == 401


async def test_off_without_an_admin_token(controls: Controls) -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls))
    with trio.fail_after(10):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as http:
            for binding, expected in (("rest", (404, "NOT_FOUND")), ("rpc", (200, -32601))):
                with pytest.raises(AdminError) as err:
                    await Admin(http, binding)("listWorkers")
                assert (err.value.status, err.value.code) == expected
                assert "--admin-token" in err.value.message
            moved = await http.get("/ui", params={"a": "b"})
            assert (moved.status_code, moved.headers["location"]) == (308, "ui/?a=b")
            page = await http.get("/ui/")
            assert page.status_code == 200 and b"trio-a2a" in page.content
            assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_under_a_base_path(controls: Controls) -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                          base_path="/api/a2a", admin=AdminSettings(token=TOKEN))
    with trio.fail_after(10):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as http:
            page = await http.get("/api/a2a/ui/")
            assert page.status_code == 200 and b'src="app.js"' in page.content
            assert (await http.get("/api/a2a/ui/app.js")).status_code == 200
            out = await http.get("/api/a2a/admin/v1/workers",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
            assert out.status_code == 200 and len(out.json()["workers"]) == 1


async def test_no_ui_turns_the_page_off(controls: Controls) -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                          admin=AdminSettings(ui=False))
    with trio.fail_after(10):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as http:
            assert (await http.get("/ui")).status_code == 404
            assert (await http.get("/ui/app.js")).status_code == 404


# --- reads ----------------------------------------------------------------------------------


async def test_workers_with_agents_capabilities_load_and_heartbeat(
        admin: Admin, admin_server: RunningServer, http: httpx.AsyncClient,
        controls: Controls) -> None:
    with trio.fail_after(20):
        async with worker(admin_server, controls, "w-gpu", ("gpu",)):
            task_id = await send(http, "wait")
            await controls.wait_started(task_id)
            out = await admin("listWorkers")
            (w,) = out["workers"]
            assert (w["workerId"], w["name"], w["capabilities"]) == ("w-gpu", "w-gpu", ["gpu"])
            assert w["running"] == [task_id] and w["maxConcurrent"] == 2 and w["load"] == 0.5
            assert w["inProcess"] is False and w["draining"] is None
            assert abs(w["lastHeartbeat"] - admin_server.store.now()) < 60
            controls.gate.set()
            await wait_state(admin_server, task_id, "TASK_STATE_COMPLETED")


async def test_queue_by_route_and_leases(admin: Admin, admin_server: RunningServer,
                                         http: httpx.AsyncClient, controls: Controls) -> None:
    with trio.fail_after(20):
        async with worker(admin_server, controls, "w1"):
            gpu = [await send(http, "echo x", **{"trio-a2a/capabilities": ["gpu"]})
                   for _ in range(2)]
            urgent = await send(http, "echo y", **{"trio-a2a/capabilities": ["tpu"],
                                                   "trio-a2a/priority": 5})
            running = await send(http, "wait")
            await controls.wait_started(running)
            routes = (await admin("listQueue"))["routes"]
            assert [(g["route"]["capabilities"], g["route"]["priority"], g["count"])
                    for g in routes] == [(["tpu"], 5, 1), (["gpu"], 0, 2)]
            assert [t["id"] for t in routes[0]["tasks"]] == [urgent]
            assert [t["id"] for t in routes[1]["tasks"]] == gpu
            (lease,) = (await admin("listLeases"))["tasks"]
            assert lease["id"] == running and lease["lease"]["workerId"] == "w1"
            assert 0 < lease["lease"]["expiresIn"] <= admin_server.dispatcher.lease_ttl
            assert (await admin("listLeases", expiringWithin=1))["tasks"] == []
            assert (await admin("listLeases", retried=True))["tasks"] == []
            recent = (await admin("listTasks", limit=10))["tasks"]
            assert {t["id"] for t in recent} == {*gpu, urgent, running}
            got = await admin("getTask", id=running)
            assert got["task"]["id"] == running and got["state"] == "TASK_STATE_WORKING"
            controls.gate.set()
            await wait_state(admin_server, running, "TASK_STATE_COMPLETED")


# --- changes --------------------------------------------------------------------------------


async def test_requeue_stops_the_attempt_and_runs_the_task_again(
        admin: Admin, admin_server: RunningServer, http: httpx.AsyncClient,
        controls: Controls) -> None:
    with trio.fail_after(20):
        async with worker(admin_server, controls, "w1"):
            task_id = await send(http, "wait")
            await controls.wait_started(task_id)
            async with worker(admin_server, controls, "w2"):
                out = await admin("requeueTask", id=task_id, reason="stuck")
                assert out["id"] == task_id and out["runAttempts"] == 0
                await wait_attempts(admin_server, task_id, 2)  # claimed again, by w2
                (lease,) = (await admin("listLeases", retried=True))["tasks"]
                assert lease["id"] == task_id and lease["attempts"] == 2
                assert lease["lease"]["workerId"] == "w2"
                controls.gate.set()
                await wait_state(admin_server, task_id, "TASK_STATE_COMPLETED")
            controls.gate.set()
            await wait_state(admin_server, task_id, "TASK_STATE_COMPLETED")
            record = await admin_server.store.head(task_id)
            assert record is not None and record.dispatch.attempts == 2
            events = await admin_server.store.read_events(task_id, 0)
            said = [e.event.status_update.status.message.parts[0].text for e in events
                    if e.event.status_update and e.event.status_update.status.message]
            assert "re-queued by an operator: stuck" in said
            with pytest.raises(AdminError) as err:  # ended: it does not run again
                await admin("requeueTask", id=task_id)
            assert err.value.status in (409, 200) and "has ended" in err.value.message


async def test_fail_a_running_and_a_queued_task(admin: Admin, admin_server: RunningServer,
                                                http: httpx.AsyncClient,
                                                controls: Controls) -> None:
    with trio.fail_after(20):
        async with worker(admin_server, controls, "w1"):
            running = await send(http, "wait")
            queued = await send(http, "echo x", **{"trio-a2a/capabilities": ["nobody"]})
            await controls.wait_started(running)
            for task_id in (running, queued):
                out = await admin("failTask", id=task_id, reason="bad input")
                assert out["state"] == "TASK_STATE_FAILED" and out["lease"] is None
                record = await admin_server.store.head(task_id)
                assert record is not None
                msg = record.task.status.message
                assert msg is not None and msg.parts[0].text == "failed by an operator: bad input"
            assert (await admin("listQueue"))["routes"] == []
            assert (await admin("listWorkers"))["workers"][0]["running"] == []
            with pytest.raises(AdminError) as err:
                await admin("failTask", id=running)
            assert err.value.code in (-32049, "FAILED_PRECONDITION")
            assert err.value.status in (200, 409)
            with pytest.raises(AdminError) as err:
                await admin("failTask", id="no-such-task")
            assert err.value.code in (-32001, "NOT_FOUND") and "no-such-task" in err.value.message
            with pytest.raises(AdminError) as err:
                await admin("listLeases", expiringWithin="soon")
            assert err.value.code in (-32602, "INVALID_ARGUMENT")
            assert err.value.message == "params.expiringWithin must be a number, not 'soon'"


async def test_drained_worker_claims_nothing_more(admin: Admin, admin_server: RunningServer,
                                                  http: httpx.AsyncClient,
                                                  controls: Controls) -> None:
    with trio.fail_after(20):
        async with worker(admin_server, controls, "w1"):
            out = await admin("drainWorker", workerId="w1", reason="maintenance")
            assert out == {"workerId": "w1", "draining": True}
            (w,) = (await admin("listWorkers"))["workers"]
            assert w["draining"] == "maintenance"
            task_id = await send(http, "echo hi")
            assert [t["id"] for g in (await admin("listQueue"))["routes"]
                    for t in g["tasks"]] == [task_id]
            async with worker(admin_server, controls, "w2"):
                await wait_state(admin_server, task_id, "TASK_STATE_COMPLETED")
            record = await admin_server.store.head(task_id)
            assert record is not None and record.dispatch.last_attempt_id is not None
            with pytest.raises(AdminError) as err:
                await admin("drainWorker", workerId="ghost")
            assert err.value.code in (-32044, "NOT_FOUND")


async def test_disconnect_closes_the_link_and_requeues(
        admin: Admin, admin_server: RunningServer, http: httpx.AsyncClient,
        controls: Controls) -> None:
    with trio.fail_after(30):
        async with worker(admin_server, controls, "w1"):
            task_id = await send(http, "wait")
            await controls.wait_started(task_id)
            async with worker(admin_server, controls, "w2"):
                out = await admin("disconnectWorker", workerId="w1", requeue=True)
                assert out == {"workerId": "w1", "closed": 1, "requeued": [task_id]}
                await wait_attempts(admin_server, task_id, 2)  # run again, by w2
                record = await admin_server.store.head(task_id)
                assert record is not None and record.dispatch.lease is not None
                assert record.dispatch.lease.worker_id == "w2"
                controls.gate.set()
                await wait_state(admin_server, task_id, "TASK_STATE_COMPLETED")
            with pytest.raises(AdminError) as err:
                await admin("disconnectWorker", workerId="ghost")
            assert err.value.code in (-32044, "NOT_FOUND")


async def test_disconnect_refuses_an_embedded_worker(controls: Controls) -> None:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                          admin=AdminSettings(token=TOKEN))
    with trio.fail_after(10):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as http:
            for binding in ("rest", "rpc"):
                admin = Admin(http, binding)
                (w,) = (await admin("listWorkers"))["workers"]
                assert w["inProcess"] is True
                with pytest.raises(AdminError) as err:
                    await admin("disconnectWorker", workerId=w["workerId"])
                assert "runs inside the server process" in err.value.message


async def test_cancel_tasks_by_filter(admin: Admin, admin_server: RunningServer,
                                      http: httpx.AsyncClient) -> None:
    with trio.fail_after(20):
        gpu = [await send(http, "echo x", **{"trio-a2a/capabilities": ["gpu"]})
               for _ in range(3)]
        cpu = await send(http, "echo y", **{"trio-a2a/capabilities": ["cpu"]})
        dry = await admin("cancelTasks", capability="gpu", dryRun=True)
        assert (dry["matched"], dry["taskIds"], dry["canceled"]) == (3, gpu, [])
        out = await admin("cancelTasks", capability="gpu", states=["submitted"])
        assert (out["matched"], out["canceled"], out["errors"]) == (3, gpu, {})
        for task_id in gpu:
            await wait_state(admin_server, task_id, "TASK_STATE_CANCELED")
        record = await admin_server.store.head(cpu)
        assert record is not None and record.state.value == "TASK_STATE_SUBMITTED"
        with pytest.raises(AdminError) as err:
            await admin("cancelTasks")
        assert err.value.code in (-32602, "INVALID_ARGUMENT")
        assert "give at least one filter" in err.value.message
        with pytest.raises(AdminError) as err:
            await admin("cancelTasks", states=["sleeping"])
        assert "unknown task state 'sleeping'" in err.value.message


async def test_a_drained_worker_stays_drained_when_it_reconnects(
        admin: Admin, admin_server: RunningServer, http: httpx.AsyncClient,
        controls: Controls) -> None:
    dispatcher = admin_server.dispatcher
    with trio.fail_after(30):
        async with worker(admin_server, controls, "w1"):
            await admin("drainWorker", workerId="w1", reason="maintenance")
            before = dispatcher.worker_skills()[0]
            out = await admin("disconnectWorker", workerId="w1")
            assert out == {"workerId": "w1", "closed": 1, "requeued": []}
            while dispatcher.worker_skills()[0] < before + 2:  # noqa: ASYNC110
                await trio.sleep(0.01)  # gone, then back by itself
            (w,) = (await admin("listWorkers"))["workers"]
            assert (w["workerId"], w["draining"]) == ("w1", "maintenance")
            task_id = await send(http, "echo hi")
            ((queued,),) = [g["tasks"] for g in (await admin("listQueue"))["routes"]]
            assert queued["id"] == task_id
            assert (await admin("cancelTasks", all=True))["canceled"] == [task_id]
