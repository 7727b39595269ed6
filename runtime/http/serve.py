"""Serving the ASGI app on one listening socket: hypercorn's trio worker loop, with
our per-connection server.

`hypercorn.trio.run.worker_serve` builds its connection handler inside itself, so
it cannot be changed from outside except by patching hypercorn's modules.
Nor can its listener: trio's `serve_listeners` over a plain `SocketListener`.
`serve_asgi` is the same loop for one plain TCP socket (no TLS, no QUIC, no
multiprocess shutdown trigger: the supervisor cancels it), built from hypercorn's
own parts (its Lifespan, WorkerContext and HTTP protocols) with
`runtime.http.tcp.serve_connection` (our `TimedTCPServer`) for each connection and
`runtime.http.listener.PatientListener` accepting them.
"""

from __future__ import annotations

import functools
import logging
import math
import socket

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState, LifespanState
from hypercorn.utils import wrap_app

from runtime.http.coalesce import install as install_coalescing
from runtime.http.common import ASGIApp
from runtime.http.h2_close import install as install_h2_close
from runtime.http.listener import AcceptMonitor, PatientListener
from runtime.http.tcp import serve_connection

__all__ = ["hypercorn_config", "serve_asgi"]

KEEP_ALIVE_TIMEOUT = 75.0
"""Seconds an idle keep-alive connection stays open."""


def hypercorn_config() -> HyperConfig:
    install_coalescing()
    install_h2_close()
    hc = HyperConfig()
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
    hc.graceful_timeout = 3
    hc.backlog = 1024
    return hc


async def serve_asgi(app: ASGIApp, sock: socket.socket, *, config: HyperConfig | None = None,
                     header_timeout: float = math.inf, accept: AcceptMonitor | None = None,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `app` on the listening socket `sock` until cancelled (then the
    connections get hypercorn's `graceful_timeout` to finish). `accept` records
    what the accept loop goes through (out of file descriptors)."""
    config = config or hypercorn_config()
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            listener = PatientListener(trio.SocketListener(trio.socket.from_stdlib_socket(sock)),
                                       accept or AcceptMonitor())
            handler = functools.partial(serve_connection, wrapped, config, context,
                                        ConnectionState(lifespan_state.copy()),
                                        header_timeout=header_timeout)
            task_status.started()
            try:
                await trio.serve_listeners(handler, [listener], handler_nursery=server_nursery)
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = (trio.current_time()
                                                        + config.graceful_timeout)
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
