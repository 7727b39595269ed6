"""The gRPC binding as one child of the server's tree, bound before the tree starts.

`open_server` makes a `GrpcChild` before it renders the card: the port is bound
then (port 0 picks one), so the card can name the `GRPC` interface's address.
The child serves that listener; a restart of the child binds the same port again.
grpcio is imported only here and below, so a server without gRPC never loads it.
"""

from __future__ import annotations

import functools
import urllib.parse
from typing import TYPE_CHECKING

import trio

from runtime.http.common import AppState
from runtime.supervisor import ChildSpec

if TYPE_CHECKING:
    from runtime.grpc.serve import GrpcListener, GrpcMonitor
    from runtime.grpc.service import RequestSpan

__all__ = ["GrpcChild", "grpc_missing", "grpc_url"]


def grpc_missing() -> str | None:
    """Why the gRPC binding cannot run here (its extra is not installed), or None."""
    try:
        import grpc  # noqa: F401
        import grpc_reflection  # noqa: F401
        from a2a.types import a2a_pb2  # noqa: F401
    except ImportError as exc:
        return f"the gRPC binding needs the grpc extra (pip install 'trio-a2a[grpc]'): {exc}"
    return None


def grpc_url(host: str, port: int, base_url: str) -> str:
    """The interface address the card gives (a `host:port` target, as gRPC clients
    take it): the listening host, or the public URL's host for a wildcard one."""
    if host in ("0.0.0.0", "::", ""):
        host = urllib.parse.urlsplit(base_url).hostname or host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcChild:
    """A bound gRPC listener, and the child spec that serves it."""

    def __init__(self, host: str, port: int, *, max_calls: int, max_message: int,
                 keepalive: float, base_url: str) -> None:
        missing = grpc_missing()
        if missing:
            raise ValueError(missing)
        from runtime.grpc.serve import GrpcMonitor, bind_grpc

        self._bind = functools.partial(bind_grpc, host, max_calls=max_calls,
                                       max_message=max_message, keepalive=keepalive)
        self._unused: list[GrpcListener] = [self._bind(port)]
        self.port = self._unused[0].port
        self.url = grpc_url(host, self.port, base_url)
        self.monitor: GrpcMonitor = GrpcMonitor()
        self.request_span: RequestSpan | None = None
        """Set to trace each call (`runtime.observe.Tracing.request`); None: untraced."""

    def spec(self, state: AppState) -> ChildSpec:
        return ChildSpec("grpc", functools.partial(self._run, state), shutdown_timeout=10.0)

    async def _run(self, state: AppState, *, task_status: trio.TaskStatus[None]) -> None:
        from runtime.grpc.serve import serve_grpc

        listener = self._unused.pop() if self._unused else self._bind(self.port)
        await serve_grpc(state, listener, monitor=self.monitor, request_span=self.request_span,
                         task_status=task_status)

    def close(self) -> None:
        """Release a listener the tree never served (open_server failed first)."""
        while self._unused:
            listener = self._unused.pop()
            listener.server.stop(None)
            listener.executor.shutdown(wait=True)
