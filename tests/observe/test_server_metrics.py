"""GET /metrics: the server's figures after a known workload, read back by value."""

from __future__ import annotations

import httpx
import trio

from runtime.server import ServerConfig, open_server
from runtime.worker import open_worker
from tests.agents import Controls, scripted_agent
from tests.conftest import Rpc, user_message
from tests.observe.metrics_text import Samples, parse, value


async def _scrape(client: httpx.AsyncClient) -> Samples:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def _config(controls: Controls) -> ServerConfig:
    return ServerConfig(port=0, store="memory", agent=scripted_agent(controls))


async def test_metrics_count_a_known_workload() -> None:
    controls = Controls()
    with trio.fail_after(20):
        async with open_server(_config(controls)) as srv, \
                httpx.AsyncClient(base_url=srv.url) as c:
            rpc = Rpc(c, "1.0")
            ids = [(await rpc.call("SendMessage", {"message": user_message(f"echo {i}")})
                    )["task"]["id"] for i in range(3)]
            await rpc.call("SendMessage", {"message": user_message("fail")})
            await rpc.error("GetTask", {"id": "missing"})
            r = await c.get(f"/tasks/{ids[0]}", headers={"A2A-Version": "1.0"})
            assert r.status_code == 200
            assert (await c.get("/healthz")).status_code == 200
            assert (await c.request("BREW", "/healthz")).status_code == 405
            assert (await c.get("/mcp")).status_code == 405  # MCP takes POST only
            m = await _scrape(c)
            committed = srv.store.statistics().committed_writes

    def requests(binding: str, method: str, outcome: str) -> float | None:
        return value(m, "a2a_requests_total", binding=binding, method=method, outcome=outcome)

    assert requests("jsonrpc", "SendMessage", "ok") == 4
    assert requests("jsonrpc", "GetTask", "client_error") == 1
    assert requests("rest", "GetTask", "ok") == 1
    assert requests("probe", "GET", "ok") == 1
    assert requests("probe", "OTHER", "client_error") == 1  # no series per odd method
    assert requests("mcp", "GET", "client_error") == 1
    assert value(m, "a2a_request_duration_seconds_count", binding="jsonrpc",
                 method="SendMessage") == 4
    assert value(m, "a2a_tasks", state="completed") == 3
    assert value(m, "a2a_tasks", state="failed") == 1
    assert value(m, "a2a_lease_grants_total") == 4
    assert value(m, "a2a_lease_expiries_total") == 0
    assert value(m, "a2a_leases") == 0
    assert value(m, "a2a_workers_connected") == 1
    (worker,) = [dict(labels)["worker"] for name, labels in m if name == "a2a_worker_slots"]
    assert worker == "local-0"
    assert value(m, "a2a_worker_running_tasks", worker="local-0") == 0
    assert value(m, "a2a_worker_slots", worker="local-0") == 256
    # every committed write is in exactly one observed batch
    assert value(m, "a2a_store_commit_batch_writes_sum") == committed
    assert value(m, "a2a_push_deliveries_total") == 0


async def test_queue_depth_and_stream_gauges_while_tasks_wait() -> None:
    controls = Controls()
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                          max_concurrent_tasks=1)
    with trio.fail_after(20):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            rpc = Rpc(c, "1.0")
            first = (await rpc.call("SendMessage", {"message": user_message("wait"),
                                                    "configuration": {"returnImmediately": True}}
                                    ))["task"]["id"]
            await controls.wait_started(first)
            await rpc.call("SendMessage", {
                "message": user_message("echo queued", metadata={"trio-a2a/agent": "scripted"}),
                "configuration": {"returnImmediately": True}})
            async with trio.open_nursery() as nursery:
                opened = trio.Event()

                async def subscribe() -> None:
                    body = {"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask",
                            "params": {"id": first}}
                    async with c.stream("POST", "/", json=body,
                                        headers={"A2A-Version": "1.0"}) as r:
                        opened.set()
                        async for _ in r.aiter_bytes():
                            pass

                nursery.start_soon(subscribe)
                await opened.wait()
                m = await _scrape(c)
                controls.gate.set()
            after = await _scrape(c)
    assert value(m, "a2a_queue_depth", agent="scripted") == 1
    assert value(m, "a2a_leases") == 1
    assert value(m, "a2a_worker_running_tasks", worker="local-0") == 1
    assert value(m, "a2a_tasks", state="working") == 1
    assert value(m, "a2a_tasks", state="submitted") == 1
    assert value(m, "a2a_sse_streams", binding="jsonrpc") == 1
    assert value(after, "a2a_sse_streams", binding="jsonrpc") == 0
    assert value(after, "a2a_requests_total", binding="jsonrpc", method="SubscribeToTask",
                 outcome="ok") == 1


async def test_two_servers_in_one_process_keep_their_own_figures() -> None:
    with trio.fail_after(20):
        async with open_server(_config(Controls())) as a, \
                open_server(_config(Controls())) as b, \
                httpx.AsyncClient(base_url=a.url) as ca, httpx.AsyncClient(base_url=b.url) as cb:
            await Rpc(ca, "1.0").call("SendMessage", {"message": user_message("echo a")})
            ma, mb = await _scrape(ca), await _scrape(cb)
    assert value(ma, "a2a_requests_total", binding="jsonrpc", method="SendMessage",
                 outcome="ok") == 1
    assert value(mb, "a2a_requests_total", binding="jsonrpc", method="SendMessage",
                 outcome="ok") is None
    assert value(mb, "a2a_lease_grants_total") == 0


async def test_a_remote_worker_on_the_http_binding_is_seen() -> None:
    config = ServerConfig(port=0, store="memory", local_workers=0)
    with trio.fail_after(20):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            async with open_worker(srv.url, token=None, name="remote-http",
                                   transport="http") as worker:
                await worker.wait_registered()
                await Rpc(c, "1.0").call("SendMessage", {"message": user_message("hi")})
                m = await _scrape(c)
    assert value(m, "a2a_workers_connected") == 1
    assert value(m, "a2a_worker_slots", worker="remote-http") == 1
    assert value(m, "a2a_worker_http_links") == 1
    assert value(m, "a2a_worker_link_dropped_pushes_total") == 0
    assert value(m, "a2a_sse_streams", binding="worker_link") == 1  # its event stream
    assert value(m, "a2a_lease_grants_total") == 1
    assert value(m, "a2a_tasks", state="completed") == 1


async def test_bindings_are_named_under_a_base_path() -> None:
    """The base path's layer passes a copy of the scope on: the bindings' notes still
    reach the metrics (and /metrics itself stays at the root)."""
    config = ServerConfig(port=0, store="memory", base_path="/a2a")
    with trio.fail_after(20):
        async with open_server(config) as srv, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.port}") as c:
            body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                    "params": {"message": user_message("echo based")}}
            r = await c.post("/a2a/", json=body, headers={"A2A-Version": "1.0"})
            task_id = r.json()["result"]["task"]["id"]
            r = await c.get(f"/a2a/tasks/{task_id}", headers={"A2A-Version": "1.0"})
            assert r.status_code == 200
            m = await _scrape(c)
    assert value(m, "a2a_requests_total", binding="jsonrpc", method="SendMessage",
                 outcome="ok") == 1
    assert value(m, "a2a_requests_total", binding="rest", method="GetTask", outcome="ok") == 1


async def test_grpc_calls_are_counted() -> None:
    from tests.grpc.test_grpc_server import call, config, request, wait_stats

    with trio.fail_after(20):
        async with open_server(config()) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            before = await _scrape(c)
            for text in ("echo one", "echo two"):
                done = await trio.to_thread.run_sync(call, srv.grpc.url, "SendMessage",
                                                     request(text))
                assert done.task.id
            await wait_stats(srv, lambda s: s.started == 2 and s.active == 0)
            m = await _scrape(c)
    assert value(before, "a2a_grpc_calls_started_total") == 0
    assert value(m, "a2a_grpc_calls_started_total") == 2
    assert value(m, "a2a_grpc_calls_active") == 0
    assert value(m, "a2a_grpc_calls_cancelled_total") == 0
    assert value(m, "a2a_grpc_calls_blocked") == 0
    assert value(m, "a2a_lease_grants_total") == 2
