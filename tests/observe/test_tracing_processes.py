"""The trace across processes: a server here (InMemorySpanExporter) and `python -m
runtime worker` in its own process with OTEL_TRACES_EXPORTER=console, its spans read
back from its stdout when it stops."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import trio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtime.server import ServerConfig, open_server
from tests.conftest import user_message
from tests.observe.fake_llm import Model
from tests.providers.fake_http import open_fake_server

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def _console_spans(text: str) -> list[dict[str, Any]]:
    """The JSON objects ConsoleSpanExporter printed, one after another."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) != -1:
        span, at = decoder.raw_decode(text, start)
        spans.append(span)
    return spans


async def test_the_worker_process_continues_the_request_trace(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = ServerConfig(port=0, store="memory", local_workers=0, tracer_provider=provider)
    out = bytearray()
    with trio.fail_after(40):
        async with open_fake_server(Model()) as fake, open_server(config) as srv, \
                httpx.AsyncClient(base_url=srv.url, timeout=20) as client, \
                trio.open_nursery() as nursery:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("TRIO_A2A_", "OTEL_"))}
            env.update(OPENAI_API_KEY="sk-test", OTEL_TRACES_EXPORTER="console",
                       PYTHONPATH=str(ROOT))
            cmd = [sys.executable, "-m", "runtime", "worker", "--server", srv.url,
                   "--provider", "openai", "--base-url", f"{fake.url}/v1", "--model", "m",
                   "--approve", "all", "--workspace", str(tmp_path), "--log-level", "warning"]
            proc = await nursery.start(functools.partial(
                trio.run_process, cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, check=False))

            async def drain() -> None:
                async for chunk in proc.stdout:
                    out.extend(chunk)

            nursery.start_soon(drain)
            while srv.dispatcher.statistics().workers == 0:  # noqa: ASYNC110
                await trio.sleep(0.05)
            body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                    "params": {"message": user_message("look around")}}
            r = await client.post("/", json=body, headers={
                "A2A-Version": "1.0", "traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"})
            assert r.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            proc.terminate()  # a clean stop exports the batched spans
    (request,) = [s for s in exporter.get_finished_spans() if s.name == "A2A SendMessage"]
    worker = _console_spans(out.decode())
    assert {s["context"]["trace_id"] for s in worker} == {f"0x{TRACE_ID}"}
    (session,) = [s for s in worker if s["name"] == "agent.session"]
    assert session["parent_id"] == f"0x{request.context.span_id:016x}"
    assert session["resource"]["attributes"]["service.name"] == "trio-a2a-worker"
    children = sorted(s["name"] for s in worker if s["parent_id"] == session["context"]["span_id"])
    assert children == ["provider.request", "provider.request", "tool.call"]
