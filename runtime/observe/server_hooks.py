"""What `open_server` plugs in for metrics and tracing, in one object, so the wiring
in `runtime.server` stays a few lines: the store's ports, the service's, the worker
link's, the embedded workers' session config, and the ASGI layer around the app."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from runtime.observe.http import ObservedASGI
from runtime.observe.server_metrics import ServerMetrics, ServerSources
from runtime.observe.tracing import Tracing

__all__ = ["ServerObservability"]


class ServerObservability:
    """One server's metrics (always) and tracing (with a tracer provider)."""

    def __init__(self, tracer_provider: Any = None, *, access_log: bool = False) -> None:
        self.metrics = ServerMetrics()
        self.tracing = None if tracer_provider is None else Tracing(tracer_provider)
        self._access_log = access_log

    def store_ports(self) -> dict[str, Any]:
        """`ServerTaskStore` keyword arguments: the commit observer and store spans."""
        return {"observe_commit": self.metrics.observe_commit,
                "span": None if self.tracing is None else self.tracing.store}

    @property
    def traceparent(self) -> Callable[[], str | None] | None:
        """`ServiceSettings.traceparent`."""
        return None if self.tracing is None else self.tracing.traceparent

    def sessions(self, config: Any) -> Any:
        """An embedded worker's `SessionConfig`, traced when tracing is on."""
        return config if self.tracing is None else self.tracing.session_config(config)

    def wrap(self, app: Any, dispatcher: Any, store: Any, push: Any,
             workers: Sequence[Any], endpoint: Any, grpc: Any = None) -> ObservedASGI:
        """The app behind `/metrics` and the per-request layer; the worker link's
        frames traced; the running parts read at every scrape."""
        if self.tracing is not None:
            endpoint.frame_span = self.tracing.link_frame
        self.metrics.watch(ServerSources(
            dispatcher, store, push, workers=lambda: workers,
            http_links=lambda: endpoint.http_links and endpoint.http_links.statistics(),
            grpc=None if grpc is None else grpc.monitor.statistics))
        return ObservedASGI(app, self.metrics, tracing=self.tracing,
                            log_access=self._access_log)


