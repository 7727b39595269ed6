"""The server's Prometheus metrics, in a registry of its own (docs/operations.md).

Two kinds. Events that must be counted as they happen (requests and their latency,
store commits and their batch sizes) update prometheus-client instruments; their
label children are cached, so a request costs a dict lookup and two increments.
Everything the actors already count (`statistics()`) is read only when Prometheus
scrapes, by `ServerCollector`: the hot path pays nothing for tasks by state, queue
depth, leases, workers, push delivery or the worker link.

Each server has its own `CollectorRegistry`, so several servers in one process (tests,
embedding) never collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

__all__ = ["LATENCY_BUCKETS", "ServerMetrics", "ServerSources"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@attrs.frozen
class ServerSources:
    """Where the scrape-time figures come from: the running server's parts."""

    dispatcher: Any
    store: Any
    push: Any
    workers: Callable[[], Sequence[Any]] = list
    """The embedded workers (their sessions' output statistics)."""
    http_links: Callable[[], Any] | None = None
    """The worker link's HTTP binding statistics (None until it is mounted)."""
    grpc: Callable[[], Any] | None = None
    """The gRPC binding's call statistics (None while it does not serve)."""


def _state_label(value: str) -> str:
    return value.removeprefix("TASK_STATE_").lower()


class ServerCollector(Collector):
    """Reads the actors' statistics at scrape time."""

    def __init__(self, sources: ServerSources) -> None:
        self._s = sources

    def collect(self) -> Iterator[Metric]:
        s = self._s
        tasks = GaugeMetricFamily("a2a_tasks", "Tasks this server holds, by state (every "
                                  "unfinished task, and the recently finished ones cached)",
                                  labels=["state"])
        for state, count in sorted(s.store.tasks_by_state().items()):
            tasks.add_metric([_state_label(state)], count)
        yield tasks
        d = s.dispatcher.statistics()
        queue = GaugeMetricFamily("a2a_queue_depth", "Tasks waiting for a worker, by the "
                                  "agent their route names ('' for any)", labels=["agent"])
        for agent, depth in sorted(d.queued_by_agent.items()):
            queue.add_metric([agent], depth)
        yield queue
        yield GaugeMetricFamily("a2a_leases", "Leases held by workers", value=d.leased)
        yield CounterMetricFamily("a2a_lease_grants", "Claims granted (leases given)",
                                  value=d.claims)
        yield CounterMetricFamily("a2a_lease_expiries", "Leases that ran out without a "
                                  "heartbeat", value=d.expired)
        yield CounterMetricFamily("a2a_lease_retries", "Tasks queued again after their "
                                  "lease ran out", value=d.retries)
        yield CounterMetricFamily("a2a_stale_writes", "Worker writes refused because their "
                                  "attempt was no longer current (fencing)",
                                  value=d.stale_writes)
        yield GaugeMetricFamily("a2a_workers_connected", "Workers connected (embedded and "
                                "remote)", value=d.workers)
        running = GaugeMetricFamily("a2a_worker_running_tasks", "Leases each connected "
                                    "worker holds", labels=["worker"])
        slots = GaugeMetricFamily("a2a_worker_slots", "Tasks each connected worker may run "
                                  "at once", labels=["worker"])
        for name, held, capacity in d.worker_load:
            running.add_metric([name], held)
            slots.add_metric([name], capacity)
        yield running
        yield slots
        st = s.store.statistics()
        yield GaugeMetricFamily("a2a_store_queued_writes", "Writes waiting for the "
                                "committer", value=st.queued_writes)
        yield CounterMetricFamily("a2a_store_failed_writes", "Writes whose writer got a "
                                  "commit error", value=st.failed_writes)
        p = s.push.statistics()
        yield CounterMetricFamily("a2a_push_deliveries", "Push notifications acknowledged "
                                  "with 2xx", value=p.delivered)
        yield CounterMetricFamily("a2a_push_retries", "Push POSTs that got no 2xx (each is "
                                  "retried until the rules run out)", value=p.failed_attempts)
        yield CounterMetricFamily("a2a_push_failures", "Push events given up after the "
                                  "retries ran out", value=p.dropped_events)
        yield GaugeMetricFamily("a2a_push_in_flight", "Push POSTs waiting for an answer",
                                value=p.in_flight)
        coalesced = sum(w.statistics().coalesced for w in s.workers())
        yield CounterMetricFamily("a2a_output_chunks_coalesced", "Text chunks of the "
                                  "embedded workers' sessions folded into the chunk before "
                                  "(output is coalesced, never dropped)", value=coalesced)
        links = None if s.http_links is None else s.http_links()
        if links is not None:
            yield GaugeMetricFamily("a2a_worker_http_links", "Open worker links on the "
                                    "HTTP binding (/worker/link)", value=links.open_links)
            yield CounterMetricFamily("a2a_worker_link_dropped_pushes", "Pushes dropped "
                                      "because a worker's HTTP stream fell behind (heartbeat "
                                      "replies repeat them)", value=links.dropped_pushes)
        calls = None if s.grpc is None else s.grpc()
        if calls is not None:
            yield GaugeMetricFamily("a2a_grpc_calls_active", "gRPC calls running",
                                    value=calls.active)
            yield CounterMetricFamily("a2a_grpc_calls_started", "gRPC calls started (since "
                                      "the gRPC child last started)", value=calls.started)
            yield CounterMetricFamily("a2a_grpc_calls_cancelled", "gRPC calls cancelled before "
                                      "they finished (client gone, deadline, stop)",
                                      value=calls.cancelled)
            yield GaugeMetricFamily("a2a_grpc_calls_blocked", "gRPC calls waiting for a slow "
                                    "reader", value=calls.blocked)


class ServerMetrics:
    """One server's metrics: the instruments, the scrape-time collector, the text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self._requests = Counter("a2a_requests", "HTTP requests served, by binding, A2A "
                                 "method and outcome", ["binding", "method", "outcome"],
                                 registry=r)
        self._latency = Histogram("a2a_request_duration_seconds", "Time to the end of the "
                                  "response (a stream: to its start)", ["binding", "method"],
                                  buckets=LATENCY_BUCKETS, registry=r)
        self._streams = Gauge("a2a_sse_streams", "Server-Sent Event streams open, by "
                              "binding (clients subscribed to a task; workers on "
                              "/worker/link)", ["binding"], registry=r)
        self._commit_seconds = Histogram("a2a_store_commit_duration_seconds", "Time one "
                                         "batch of writes took to commit",
                                         buckets=LATENCY_BUCKETS, registry=r)
        self._commit_writes = Histogram("a2a_store_commit_batch_writes", "Writes per "
                                        "committed batch", buckets=BATCH_BUCKETS, registry=r)
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._stream_children: dict[str, Any] = {}

    def watch(self, sources: ServerSources) -> None:
        """Read the running server's statistics at every scrape."""
        self.registry.register(ServerCollector(sources))

    def observe_request(self, binding: str, method: str, outcome: str, seconds: float) -> None:
        key = (binding, method, outcome)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (self._requests.labels(*key),
                                          self._latency.labels(binding, method))
        pair[0].inc()
        pair[1].observe(seconds)

    def stream(self, binding: str) -> Any:
        """The gauge child of open streams of a binding (inc on start, dec on end)."""
        child = self._stream_children.get(binding)
        if child is None:
            child = self._stream_children[binding] = self._streams.labels(binding)
        return child

    def observe_commit(self, writes: int, seconds: float) -> None:
        """The store's commit observer port."""
        self._commit_writes.observe(writes)
        self._commit_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
