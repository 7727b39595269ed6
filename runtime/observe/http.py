"""The outermost ASGI layer: `GET /metrics`, and per request its metrics, its span and
(with --access-log) one access log line.

The bindings say what a request was in a small dict this layer puts in the ASGI
scope (`a2a.notes`: `binding`, `method`, `outcome`, `principal`; the JSON-RPC endpoint
and the HTTP+JSON binding fill it in). A dict, not keys of the scope itself: a layer
that rewrites the path (`--base-path`) passes a copy of the scope on, which shares it.
Other paths are named from the path itself. With no access log
and no tracing, a request costs this layer one small object, a clock read on each
end and the metric updates.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from runtime.observe.server_metrics import ServerMetrics
from runtime.observe.tracing import Tracing

__all__ = ["METRICS_PATH", "ObservedASGI", "access_log"]

METRICS_PATH = "/metrics"
access_log = logging.getLogger("runtime.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_METRICS_HEADERS = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8"),
                    (b"cache-control", b"no-store")]


def _binding_of(path: str) -> str:
    if path.endswith(("/healthz", "/readyz")):
        return "probe"
    if "/.well-known/" in path:
        return "card"
    if "/worker/" in path:
        return "worker_link"
    if path.endswith("/mcp"):
        return "mcp"
    return "other"


# Probes would start a trace every few seconds, and the worker link's frames have
# spans of their own in their task's trace (`Tracing.link_frame`).
_UNTRACED = frozenset({"probe", "worker_link"})


_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _http_method(method: str) -> str:
    """The method as a label: any other token a client sends is "OTHER", so no client
    can mint series."""
    return method if method in _HTTP_METHODS else "OTHER"


def _outcome(status: int) -> str:
    return "ok" if status < 400 else "client_error" if status < 500 else "server_error"


class _Exchange:
    """What this layer learns of one response as it passes: its status and, for an
    event stream, when it started (streams are timed to their start, and counted in
    the open-streams gauge until they end)."""

    __slots__ = ("_metrics", "_send", "notes", "path", "status", "stream", "stream_started")

    def __init__(self, send: Send, path: str, metrics: ServerMetrics) -> None:
        self._send = send
        self.path = path
        self.notes: dict[str, str] = {}
        self._metrics = metrics
        self.status = 500  # the app raised before answering
        self.stream: Any = None
        self.stream_started = 0.0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", ()):
                if name == b"content-type" and value.startswith(b"text/event-stream"):
                    self.stream_started = trio.current_time()
                    self.stream = self._metrics.stream(self.binding)
                    self.stream.inc()
                    break
        await self._send(message)

    @property
    def binding(self) -> str:
        return self.notes.get("binding") or _binding_of(self.path)


class ObservedASGI:
    """Wraps the server's ASGI app; see the module docstring."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, *, tracing: Tracing | None = None,
                 log_access: bool = False) -> None:
        self._app = app
        self._metrics = metrics
        self._tracing = tracing
        self._log_access = log_access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if scope["path"] == METRICS_PATH and scope["method"] in ("GET", "HEAD"):
            await self._serve_metrics(scope, send)
            return
        if self._tracing is None or _binding_of(scope["path"]) in _UNTRACED:
            await self._observe(scope, receive, send, None)
            return
        traceparent = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
        with self._tracing.request(traceparent, f"{scope['method']} {scope['path']}") as span:
            await self._observe(scope, receive, send, span)

    async def _observe(self, scope: Scope, receive: Receive, send: Send, span: Any) -> None:
        exchange = _Exchange(send, scope["path"], self._metrics)
        scope["a2a.notes"] = notes = exchange.notes
        started = trio.current_time()
        try:
            await self._app(scope, receive, exchange.send)
        finally:
            binding = exchange.binding
            method = notes.get("method") or _http_method(scope["method"])
            outcome = notes.get("outcome") or _outcome(exchange.status)
            if exchange.stream is not None:
                exchange.stream.dec()
                elapsed = exchange.stream_started - started
            else:
                elapsed = trio.current_time() - started
            self._metrics.observe_request(binding, method, outcome, elapsed)
            if span is not None:
                span.update_name(f"A2A {method}" if binding in ("jsonrpc", "rest")
                                 else f"{scope['method']} {binding}")
                span.set_attribute("http.request.method", scope["method"])
                span.set_attribute("url.path", scope["path"])
                span.set_attribute("http.response.status_code", exchange.status)
                span.set_attribute("a2a.binding", binding)
                span.set_attribute("a2a.outcome", outcome)
            if self._log_access:  # the whole exchange, a stream's too
                total = trio.current_time() - started
                access_log.info("%s %s %d", scope["method"], scope["path"], exchange.status,
                                extra={"binding": binding, "a2a_method": method,
                                       "status": exchange.status, "outcome": outcome,
                                       "duration_ms": round(total * 1000, 3),
                                       "client": _client(scope),
                                       "principal": notes.get("principal", "")})

    async def _serve_metrics(self, scope: Scope, send: Send) -> None:
        body = self._metrics.render()
        await send({"type": "http.response.start", "status": 200, "headers": [
            *_METRICS_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else body, "more_body": False})


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else ""
