"""A worker's /metrics (the --metrics-port endpoint) after a known workload: an LLM
session that calls one tool and the provider twice, then a task the provider refuses."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from runtime.observe.instruments import use_worker_metrics
from runtime.observe.worker_metrics import WorkerMetrics, serve_metrics
from runtime.server import ServerConfig, open_server
from runtime.worker import open_worker
from tests.conftest import Rpc, user_message
from tests.observe.fake_llm import Model, llm_agent_for
from tests.observe.metrics_text import parse, value
from tests.providers.fake_http import Received, Reply, open_fake_server


class RefusingModel(Model):
    """As Model, but a message saying "refuse" gets a 400 from the provider."""

    async def __call__(self, req: Received) -> Reply:
        if "refuse" in req.body.decode():
            return Reply.json({"error": {"message": "bad request"}}, status=400)
        return await super().__call__(req)


async def test_worker_metrics_after_a_known_workload(tmp_path: Path) -> None:
    metrics = WorkerMetrics()
    with trio.fail_after(20):
        async with open_fake_server(RefusingModel()) as fake, \
                open_server(ServerConfig(port=0, store="memory", local_workers=0)) as srv, \
                httpx.AsyncClient(base_url=srv.url, timeout=15) as client, \
                trio.open_nursery() as nursery:
            with use_worker_metrics(metrics):
                async with open_worker(srv.url, token=None,
                                       agent=llm_agent_for(fake.url, tmp_path)) as worker:
                    metrics.watch(worker.statistics)
                    port = await nursery.start(serve_metrics, metrics.render, "127.0.0.1", 0)
                    await worker.wait_registered()
                    rpc = Rpc(client, "1.0")
                    done = await rpc.call("SendMessage", {"message": user_message("look")})
                    failed = await rpc.call("SendMessage", {"message": user_message("refuse")})
                    async with httpx.AsyncClient() as scraper:
                        r = await scraper.get(f"http://127.0.0.1:{port}/metrics")
                        missing = await scraper.get(f"http://127.0.0.1:{port}/nothing")
            nursery.cancel_scope.cancel()
    assert done["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert failed["task"]["status"]["state"] == "TASK_STATE_FAILED"
    assert r.status_code == 200 and missing.status_code == 404
    m = parse(r.text)
    assert value(m, "a2a_tokens_total", provider="openai", model="m", direction="input") == 14
    assert value(m, "a2a_tokens_total", provider="openai", model="m", direction="output") == 4
    assert value(m, "a2a_tool_calls_total", tool="list_dir", outcome="ok") == 1
    assert value(m, "a2a_provider_request_duration_seconds_count", provider="openai",
                 model="m") == 3
    errors = {dict(labels)["kind"]: v for (name, labels), v in m.items()
              if name == "a2a_provider_errors_total"}
    assert sum(errors.values()) == 1, errors
    assert value(m, "a2a_worker_sessions_started_total") == 2
    assert value(m, "a2a_worker_sessions_ended_total", outcome="completed") == 1
    assert value(m, "a2a_worker_sessions_ended_total", outcome="failed") == 1
    assert value(m, "a2a_worker_sessions") == 0
    assert value(m, "a2a_worker_link_up") == 1
    assert value(m, "a2a_worker_link_registrations_total") == 1
    assert value(m, "a2a_worker_link_reconnects_total") == 0
