"""OpenTelemetry tracing: the spans of requests, store writes, sessions, tool calls and
provider HTTP calls, and the W3C `traceparent` that ties them into one trace.

Off by default, and then free: the server and workers hold no `Tracing` and pass
the actors no ports. On (`--otel`, or the standard OTEL_TRACES_EXPORTER /
OTEL_EXPORTER_OTLP_ENDPOINT variables), `configure_tracing` builds an SDK tracer
provider with the exporter the environment names; the SDK and the OTLP exporter are
the optional extra `otel`. Embedders and tests pass their own provider instead
(`ServerConfig.tracer_provider`, `open_worker(..., tracer_provider=)`), so two servers in
one process never share a global one.

Inside a worker's session the tracer is also kept in a context variable, so the
code that calls a tool or a provider (`child_span`) finds it without being handed it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

import attrs
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["Tracing", "child_span", "configure_tracing", "inject_traceparent",
           "tracing_requested"]

_PROPAGATOR = TraceContextTextMapPropagator()
_SESSION_TRACER: contextvars.ContextVar[trace.Tracer | None] = contextvars.ContextVar(
    "trio_a2a_session_tracer", default=None)
_NOTHING: AbstractContextManager[Any] = contextlib.nullcontext()


def tracing_requested(flag: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """--otel, or an OTEL_* variable that names a traces exporter or endpoint."""
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return flag or bool(exporter) or bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                                         or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_tracing(service_name: str, *, flag: bool,
                      environ: Mapping[str, str] = os.environ) -> Any:
    """An SDK TracerProvider exporting as OTEL_TRACES_EXPORTER says (otlp, the default,
    over HTTP/protobuf; or console), None if tracing was not asked for. RuntimeError
    naming the extra if the SDK is not installed."""
    if not tracing_requested(flag, environ):
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise RuntimeError("tracing needs the OpenTelemetry SDK: pip install "
                           "'trio-a2a[otel]'") from None
    kinds = [k.strip().lower() for k in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    provider = TracerProvider(resource=Resource.create(
        {"service.name": environ.get("OTEL_SERVICE_NAME", service_name)}))
    for kind in kinds:
        if kind == "console":
            exporter: Any = ConsoleSpanExporter()
        elif kind in ("otlp", ""):
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                raise RuntimeError("OTLP export needs opentelemetry-exporter-otlp-proto-http: "
                                   "pip install 'trio-a2a[otel]'") from None
            exporter = OTLPSpanExporter()  # endpoint, headers: the OTEL_EXPORTER_OTLP_* vars
        else:
            raise RuntimeError(f"OTEL_TRACES_EXPORTER={kind!r} is not supported here; use "
                               "otlp or console")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _extract(traceparent: str | None) -> Any:
    return None if not traceparent else _PROPAGATOR.extract({"traceparent": traceparent})


def inject_traceparent(headers: dict[str, str]) -> None:
    """Add the current span's `traceparent` (if one is recording) to outgoing headers."""
    if trace.get_current_span().get_span_context().is_valid:
        _PROPAGATOR.inject(headers)


def child_span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    """A span under the current one inside a traced session; nothing otherwise."""
    tracer = _SESSION_TRACER.get()
    if tracer is None:
        return _NOTHING
    return tracer.start_as_current_span(name, attributes=attributes)


class Tracing:
    """The spans of one server or worker, from its tracer provider."""

    def __init__(self, provider: Any) -> None:
        self.tracer: trace.Tracer = provider.get_tracer("trio-a2a")

    def request(self, traceparent: str | None, name: str) -> AbstractContextManager[Any]:
        """The span of one HTTP request, continuing the caller's trace if it sent one."""
        return self.tracer.start_as_current_span(name, context=_extract(traceparent),
                                                 kind=trace.SpanKind.SERVER)

    def traceparent(self) -> str | None:
        """The current span's context as a `traceparent` (the service's port)."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    def store(self, operation: str, task_id: str) -> AbstractContextManager[Any]:
        """The store's port: one create or waited-for write, inside a traced request
        or link frame (not a root span of its own: reaper and housekeeping writes)."""
        if not trace.get_current_span().get_span_context().is_valid:
            return _NOTHING
        return self.tracer.start_as_current_span(f"store.{operation}",
                                                 attributes={"a2a.task_id": task_id})

    def link_frame(self, op: str, task_id: str, traceparent: str | None
                   ) -> AbstractContextManager[Any]:
        """The worker link's port: a worker's output, status or release frame, in the
        trace of the request that queued the task (its stored traceparent)."""
        if traceparent is None:
            return _NOTHING
        return self.tracer.start_as_current_span(
            f"link.{op}", context=_extract(traceparent), kind=trace.SpanKind.SERVER,
            attributes={"a2a.task_id": task_id})

    def session_config(self, config: Any) -> Any:
        """A worker's `SessionConfig` with tracing on: sessions run in spans
        (`session`) and stamp their frames with the trace context (`traceparent`)."""
        return attrs.evolve(config, span=self.session, traceparent=self.traceparent)

    @contextlib.contextmanager
    def session(self, task_id: str, attempt_id: str, traceparent: str | None
                ) -> Iterator[Any]:
        """The sessions' port: an agent session, under the request that queued its task."""
        token = _SESSION_TRACER.set(self.tracer)
        try:
            with self.tracer.start_as_current_span(
                    "agent.session", context=_extract(traceparent),
                    kind=trace.SpanKind.CONSUMER,
                    attributes={"a2a.task_id": task_id, "a2a.attempt_id": attempt_id}) as span:
                yield span
        finally:
            _SESSION_TRACER.reset(token)
