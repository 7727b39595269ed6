"""One trace from the client's traceparent through the server, the store, the worker
link (a real WebSocket), the agent session, its tool call and its provider calls;
captured with the SDK's InMemorySpanExporter. Also: tracing off sends no traceparent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import trio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors.worker import SessionConfig
from runtime.observe import Tracing
from runtime.server import ServerConfig, open_server
from runtime.worker import WorkerConfig, open_worker
from tests.conftest import user_message
from tests.observe.fake_llm import Model, llm_agent_for
from tests.providers.fake_http import open_fake_server

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _parent(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def test_a_trace_runs_from_the_request_to_the_provider_call(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    model = Model()
    config = ServerConfig(port=0, store="memory", local_workers=0, tracer_provider=provider)
    worker_config = WorkerConfig(sessions=Tracing(provider).session_config(SessionConfig()))
    with trio.fail_after(20):
        async with open_fake_server(model) as fake, open_server(config) as srv, \
                open_worker(srv.url, token=None, agent=llm_agent_for(fake.url, tmp_path),
                            config=worker_config) as worker, \
                httpx.AsyncClient(base_url=srv.url, timeout=15) as client:
            await worker.wait_registered()
            body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                    "params": {"message": user_message("look around")}}
            r = await client.post("/", json=body, headers={
                "A2A-Version": "1.0", "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"})
            assert r.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    spans = list(exporter.get_finished_spans())
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    request = _one(spans, "A2A SendMessage")
    assert _parent(request) == int(CALLER_SPAN, 16) and request.parent.is_remote
    assert request.attributes["a2a.outcome"] == "ok"
    create = _one(spans, "store.create")
    session = _one(spans, "agent.session")
    tool = _one(spans, "tool.call")
    calls = [s for s in spans if s.name == "provider.request"]
    assert _parent(create) == request.context.span_id
    assert _parent(session) == request.context.span_id  # carried in the link's grant
    assert session.attributes["a2a.task_id"] == create.attributes["a2a.task_id"]
    assert _parent(tool) == session.context.span_id
    assert tool.attributes["a2a.tool"] == "list_dir"
    assert tool.attributes["a2a.tool.outcome"] == "ok"
    assert len(calls) == 2 and {_parent(c) for c in calls} == {session.context.span_id}
    # the worker's frames carry its session's trace context: the server handles them,
    # and stores what they write, under the session
    release = _one(spans, "link.release")
    assert _parent(release) == session.context.span_id
    writes = [s for s in spans if s.name == "store.write"]
    assert writes and all(_parent(w) in {s.context.span_id for s in spans} for w in writes)
    assert any(_parent(w) == release.context.span_id for w in writes)
    # each provider request carried its own span as the parent of what the provider does
    sent = [h["traceparent"] for h in model.headers]
    assert sent == [f"00-{TRACE_ID}-{format(c.context.span_id, '016x')}-01"
                    for c in sorted(calls, key=lambda c: c.start_time)]


async def test_tracing_off_sends_no_traceparent(tmp_path: Path) -> None:
    model = Model()
    with trio.fail_after(20):
        async with open_fake_server(model) as fake, \
                open_server(ServerConfig(port=0, store="memory", local_workers=0)) as srv, \
                open_worker(srv.url, token=None,
                            agent=llm_agent_for(fake.url, tmp_path)) as worker, \
                httpx.AsyncClient(base_url=srv.url, timeout=15) as client:
            await worker.wait_registered()
            body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                    "params": {"message": user_message("look around")}}
            r = await client.post("/", json=body, headers={
                "A2A-Version": "1.0", "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"})
            assert r.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            grant_trace = srv.store.cached_head(r.json()["result"]["task"]["id"])
    assert len(model.headers) == 2
    assert all("traceparent" not in h for h in model.headers)
    assert grant_trace is not None and grant_trace.dispatch.trace_parent is None


def test_tracing_is_off_unless_asked_for() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from runtime.observe import configure_tracing, tracing_requested

    def exporters(provider: Any) -> list[type]:
        processors = provider._active_span_processor._span_processors
        return [type(p.span_exporter) for p in processors]

    assert configure_tracing("s", flag=False, environ={}) is None
    assert configure_tracing("s", flag=True, environ={"OTEL_TRACES_EXPORTER": "none"}) is None
    assert not tracing_requested(True, {"OTEL_SDK_DISABLED": "true"})
    on = configure_tracing("s", flag=True, environ={})
    assert exporters(on) == [OTLPSpanExporter]
    assert on.resource.attributes["service.name"] == "s"
    by_env = configure_tracing("s", flag=False, environ={
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SERVICE_NAME": "mine"})
    assert exporters(by_env) == [OTLPSpanExporter]
    assert by_env.resource.attributes["service.name"] == "mine"
    console = configure_tracing("s", flag=False, environ={"OTEL_TRACES_EXPORTER": "console"})
    assert exporters(console) == [ConsoleSpanExporter]
    for provider in (on, by_env, console):
        provider.shutdown()


async def test_a_grpc_call_continues_the_callers_trace() -> None:
    """The gRPC binding's calls are spans too: the caller's `traceparent` metadata is
    the parent, and the store's writes of the task go under the call's span."""
    import grpc
    from a2a.types import a2a_pb2, a2a_pb2_grpc

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = ServerConfig(port=0, store="memory", grpc_port=0, tracer_provider=provider)

    def send(target: str) -> Any:
        with grpc.insecure_channel(target) as channel:
            stub = a2a_pb2_grpc.A2AServiceStub(channel)
            return stub.SendMessage(a2a_pb2.SendMessageRequest(message=a2a_pb2.Message(
                message_id="m-1", role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part(text="hi")])),
                metadata=(("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-01"),), timeout=10)

    with trio.fail_after(20):
        async with open_server(config) as srv:
            assert srv.grpc is not None
            reply = await trio.to_thread.run_sync(send, srv.grpc.url)
    assert reply.task.status.state == a2a_pb2.TASK_STATE_COMPLETED
    spans = list(exporter.get_finished_spans())
    call = _one(spans, "A2A gRPC SendMessage")
    assert format(call.context.trace_id, "032x") == TRACE_ID
    assert _parent(call) == int(CALLER_SPAN, 16) and call.parent.is_remote
    assert _parent(_one(spans, "store.create")) == call.context.span_id
