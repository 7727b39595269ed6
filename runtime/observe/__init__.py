"""Operations: Prometheus metrics of the server and of workers, OpenTelemetry tracing,
and the HTTP layer that serves `/metrics` and observes every request
(docs/operations.md)."""

from runtime.observe.http import ObservedASGI
from runtime.observe.instruments import use_worker_metrics
from runtime.observe.server_hooks import ServerObservability
from runtime.observe.server_metrics import ServerMetrics, ServerSources
from runtime.observe.tracing import (
    Tracing,
    child_span,
    configure_tracing,
    inject_traceparent,
    tracing_requested,
)
from runtime.observe.worker_metrics import WorkerMetrics, serve_metrics

__all__ = ["ObservedASGI", "ServerMetrics", "ServerObservability", "ServerSources", "Tracing",
           "WorkerMetrics", "child_span", "configure_tracing", "inject_traceparent",
           "serve_metrics", "tracing_requested", "use_worker_metrics"]
