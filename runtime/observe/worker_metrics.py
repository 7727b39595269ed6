"""A worker's Prometheus metrics, and the small HTTP endpoint that serves them
(`python -m runtime worker --metrics-port`).

Sessions and the link are read from `RunningWorker.statistics()` at scrape time;
provider calls, tokens and tool calls are counted as they happen
(`runtime.observe.instruments`). A worker has no HTTP server of its own, so the
endpoint is a minimal one: `GET /metrics` (or `/`), one request per connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import trio
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from runtime.observe.server_metrics import LATENCY_BUCKETS

__all__ = ["WorkerMetrics", "open_metrics_endpoint", "serve_metrics"]


class _WorkerCollector(Collector):
    def __init__(self, statistics: Callable[[], Any]) -> None:
        self._statistics = statistics

    def collect(self) -> Iterator[Metric]:
        s = self._statistics()
        yield GaugeMetricFamily("a2a_worker_sessions", "Agent sessions running",
                                value=s.running)
        yield GaugeMetricFamily("a2a_worker_concurrency", "Sessions this worker may run at "
                                "once", value=s.concurrency)
        yield CounterMetricFamily("a2a_worker_sessions_started", "Agent sessions started",
                                  value=s.started)
        ended = CounterMetricFamily("a2a_worker_sessions_ended", "Agent sessions ended, by "
                                    "outcome ('lost': stopped without a release)",
                                    labels=["outcome"])
        for outcome, count in sorted(s.outcomes.items()):
            ended.add_metric([outcome], count)
        yield ended
        yield GaugeMetricFamily("a2a_worker_link_up", "1 while a registered link to the "
                                "server is up", value=1 if s.connected else 0)
        yield CounterMetricFamily("a2a_worker_link_registrations", "Registrations with the "
                                  "server (the first, then one per reconnect)",
                                  value=s.registrations)
        yield CounterMetricFamily("a2a_worker_link_reconnects", "Registrations after the "
                                  "first: the link was lost and made again",
                                  value=max(0, s.registrations - 1))
        yield CounterMetricFamily("a2a_output_chunks_coalesced", "Text chunks folded into "
                                  "the chunk before (output is coalesced, never dropped)",
                                  value=s.coalesced)


class WorkerMetrics:
    """One worker's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self._provider_seconds = Histogram(
            "a2a_provider_request_duration_seconds", "Time of one provider HTTP call, to the "
            "end of its streamed answer", ["provider", "model"], buckets=LATENCY_BUCKETS,
            registry=r)
        self._provider_errors = Counter(
            "a2a_provider_errors", "Provider HTTP calls that failed, by error kind",
            ["provider", "model", "kind"], registry=r)
        self._tokens = Counter("a2a_tokens", "Tokens used, by provider, model and direction "
                               "(input, output)", ["provider", "model", "direction"],
                               registry=r)
        self._tool_calls = Counter("a2a_tool_calls", "Tool calls, by tool and outcome (ok, "
                                   "error, refused, invalid_arguments)", ["tool", "outcome"],
                                   registry=r)

    def watch(self, statistics: Callable[[], Any]) -> None:
        """Read the worker's `statistics()` (a `WorkerStatistics`) at every scrape."""
        self.registry.register(_WorkerCollector(statistics))

    def provider_call(self, provider: str, model: str, seconds: float,
                      error: str | None) -> None:
        self._provider_seconds.labels(provider, model).observe(seconds)
        if error is not None:
            self._provider_errors.labels(provider, model, error).inc()

    def tokens(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> None:
        self._tokens.labels(provider, model, "input").inc(input_tokens)
        self._tokens.labels(provider, model, "output").inc(output_tokens)

    def tool_call(self, tool: str, outcome: str) -> None:
        self._tool_calls.labels(tool, outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


_HEAD_LIMIT = 8192


async def _answer(stream: trio.SocketStream, render: Callable[[], bytes]) -> None:
    try:
        await _answer_one(stream, render)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass  # the scraper went away; the endpoint serves the next one


async def _answer_one(stream: trio.SocketStream, render: Callable[[], bytes]) -> None:
    async with stream:
        head = b""
        with trio.move_on_after(10):
            while b"\r\n\r\n" not in head and len(head) < _HEAD_LIMIT:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                head += chunk
        parts = head.split(b" ", 2)
        path = parts[1].split(b"?", 1)[0] if len(parts) > 2 else b""
        if parts[0] in (b"GET", b"HEAD") and path in (b"/metrics", b"/"):
            body = render()
            status, ctype = b"200 OK", b"text/plain; version=0.0.4; charset=utf-8"
        else:
            body, status, ctype = b"not found: GET /metrics\n", b"404 Not Found", b"text/plain"
        head_only = parts[0] == b"HEAD"
        await stream.send_all(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
            + (b"" if head_only else body))


@contextlib.asynccontextmanager
async def open_metrics_endpoint(metrics: WorkerMetrics, statistics: Callable[[], Any],
                                host: str, port: int) -> AsyncIterator[str]:
    """`metrics` (reading the worker's `statistics()`) served at the URL handed back,
    until the block exits."""
    metrics.watch(statistics)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(serve_metrics, metrics.render, host, port)
        yield f"http://{host}:{bound}/metrics"
        nursery.cancel_scope.cancel()


async def serve_metrics(render: Callable[[], bytes], host: str, port: int, *,
                        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `render()` at http://host:port/metrics until cancelled; reports the port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        task_status.started(bound)
        await trio.serve_listeners(lambda s: _answer(s, render), listeners,
                                   handler_nursery=nursery)
