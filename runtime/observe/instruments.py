"""What the agent code records: provider HTTP calls, tool calls, tokens.

The LLM agent and its providers are built before the worker runs and are shared by
its sessions, so they are not handed a metrics object or a tracer: they find the
worker's `WorkerMetrics` in a context variable (`use_worker_metrics`, set around the
worker by the CLI or an embedder) and the session's tracer through
`runtime.observe.tracing`. With neither set, each call here is a context-variable
read and nothing more.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import trio
from opentelemetry import trace

from runtime.observe.tracing import _PROPAGATOR, _SESSION_TRACER, child_span

if TYPE_CHECKING:
    from runtime.observe.worker_metrics import WorkerMetrics

__all__ = ["ProviderCall", "count_tokens", "tool_call", "use_worker_metrics"]

_METRICS: contextvars.ContextVar[WorkerMetrics | None] = contextvars.ContextVar(
    "trio_a2a_worker_metrics", default=None)


@contextlib.contextmanager
def use_worker_metrics(metrics: WorkerMetrics | None) -> Iterator[None]:
    """Tasks started inside the block (the worker's sessions) record into `metrics`."""
    token = _METRICS.set(metrics)
    try:
        yield
    finally:
        _METRICS.reset(token)


def count_tokens(provider: str, model: str, input_tokens: int, output_tokens: int) -> None:
    metrics = _METRICS.get()
    if metrics is not None:
        metrics.tokens(provider, model, input_tokens, output_tokens)


@contextlib.contextmanager
def tool_call(tool: str) -> Iterator[list[str]]:
    """Around one tool call: its span and its count by outcome. The caller may set
    `outcome[0]` ("ok" unless it says otherwise; "error" if the call raises)."""
    outcome = ["ok"]
    with child_span("tool.call", **{"a2a.tool": tool}) as span:
        try:
            yield outcome
        except BaseException:
            outcome[0] = "error"
            raise
        finally:
            if span is not None:
                span.set_attribute("a2a.tool.outcome", outcome[0])
            metrics = _METRICS.get()
            if metrics is not None:
                metrics.tool_call(tool, outcome[0])


class ProviderCall:
    """One HTTP call to an LLM provider: a span (not made current: the call is an
    async generator that yields to its consumer), its `traceparent` on the request,
    its latency and its errors. `end()` exactly once."""

    __slots__ = ("_metrics", "_model", "_provider", "_span", "_started", "error")

    def __init__(self, provider: str, model: str, url: str) -> None:
        self._provider, self._model = provider, model
        self._metrics = _METRICS.get()
        tracer = _SESSION_TRACER.get()
        self._span: Any = None if tracer is None else tracer.start_span(
            "provider.request", kind=trace.SpanKind.CLIENT,
            attributes={"a2a.provider": provider, "a2a.model": model, "url.full": url})
        self._started = trio.current_time() if self._metrics is not None else 0.0
        self.error: str | None = None

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        """The request's headers, with the span's `traceparent` when traced."""
        if self._span is not None:
            _PROPAGATOR.inject(headers, context=trace.set_span_in_context(self._span))
        return headers

    def end(self) -> None:
        if self._metrics is not None:
            self._metrics.provider_call(self._provider, self._model,
                                        trio.current_time() - self._started, self.error)
        if self._span is not None:
            if self.error is not None:
                self._span.set_status(trace.StatusCode.ERROR, self.error)
            self._span.end()
