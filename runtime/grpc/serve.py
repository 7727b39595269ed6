"""Serving the gRPC binding on its own port, as one child of the server's tree.

grpcio's threaded server does the HTTP/2 and runs each call's handler on a thread
of a pool we own (`max_calls` of them: a streaming call holds one for its life,
and grpcio refuses calls beyond it with RESOURCE_EXHAUSTED rather than queueing
them); the handlers hand the work to trio (`runtime.grpc.bridge`). The port is
bound when the listener is made, before the tree starts, so `open_server` knows
it (port 0 picks one) and the card can name it; a restart binds it again.

Stopping: no more calls are started, every call's task is cancelled, grpcio
cancels what is still on the wire and stops, and the thread pool is joined, so
nothing is left running after the child ends.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import attrs
import grpc
import trio
from grpc_reflection.v1alpha import reflection

from runtime.grpc.bridge import BridgeStatistics, TrioBridge
from runtime.grpc.codec import SERVICE_NAME
from runtime.grpc.service import A2AGrpcService, RequestSpan
from runtime.http.common import AppState

__all__ = ["GrpcListener", "GrpcMonitor", "bind_grpc", "serve_grpc"]

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0
"""Seconds a stop waits for grpcio and the call threads; past it they are left
(logged) rather than holding the server's shutdown."""


@attrs.define
class GrpcListener:
    """A bound, not yet started, grpcio server and the thread pool of its calls."""

    server: grpc.Server
    executor: ThreadPoolExecutor
    host: str
    port: int


def _target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_grpc(host: str, port: int, *, max_calls: int, max_message: int,
              keepalive: float = 15.0) -> GrpcListener:
    """Bind `host:port` (0: a free port) for gRPC; OSError naming it if it cannot.

    HTTP/2 pings every `keepalive` seconds keep a quiet stream's connection open
    through proxies, as the SSE keep-alive comments do for the HTTP bindings."""
    executor = ThreadPoolExecutor(max_workers=max_calls, thread_name_prefix="grpc-call")
    server = grpc.server(
        executor,
        options=[
            ("grpc.so_reuseport", 0),  # a port in use is an error, not shared
            ("grpc.max_receive_message_length", max_message),
            ("grpc.keepalive_time_ms", int(keepalive * 1000)),
        ],
        maximum_concurrent_rpcs=max_calls,
    )
    try:
        bound = server.add_insecure_port(_target(host, port))
    except RuntimeError:
        bound = 0
    if not bound:
        server.stop(None)
        executor.shutdown(wait=True)
        raise OSError(f"cannot listen for gRPC on {_target(host, port)}")
    return GrpcListener(server=server, executor=executor, host=host, port=bound)


class GrpcMonitor:
    """The gRPC child's call statistics, across its restarts."""

    def __init__(self) -> None:
        self.bridge: TrioBridge | None = None

    def statistics(self) -> BridgeStatistics | None:
        return self.bridge.statistics() if self.bridge is not None else None


def _stop(listener: GrpcListener) -> None:
    listener.server.stop(None).wait()  # cancels the calls still on the wire
    listener.executor.shutdown(wait=True)


async def serve_grpc(state: AppState, listener: GrpcListener, *, buffer: int = 8,
                     monitor: GrpcMonitor | None = None,
                     request_span: RequestSpan | None = None,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `lf.a2a.v1.A2AService` on `listener` until cancelled."""
    async with trio.open_nursery() as calls:
        bridge = TrioBridge(calls, trio.lowlevel.current_trio_token(), buffer=buffer)
        if monitor is not None:
            monitor.bridge = bridge
        try:
            listener.server.add_generic_rpc_handlers(
                (A2AGrpcService(state, bridge, request_span).handler(),))
            # server reflection: tools such as grpcurl list and call the service without
            # a copy of a2a.proto (it is the public spec; served from the same pool)
            reflection.enable_server_reflection((SERVICE_NAME, reflection.SERVICE_NAME),
                                                listener.server)
            listener.server.start()
            log.info("gRPC listening", extra={"host": listener.host, "port": listener.port})
            task_status.started()
            await trio.sleep_forever()
        finally:
            bridge.close()
            calls.cancel_scope.cancel()
            with trio.CancelScope(shield=True), trio.move_on_after(STOP_TIMEOUT) as waited:
                await trio.to_thread.run_sync(_stop, listener, abandon_on_cancel=True)
            if waited.cancelled_caught:
                log.warning("gRPC server did not stop in time; its threads are left",
                            extra={"port": listener.port, "timeout": STOP_TIMEOUT})
