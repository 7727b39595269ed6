"""Mounting the worker link on the HTTP face: the one place the two meet.

`runtime.http` knows nothing of the link; it serves whatever routes and
WebSocket handlers its `AppState` carries. This module adds the link's.
"""

from __future__ import annotations

import functools

import attrs

from runtime.http.common import AppState
from runtime.link.endpoint import WS_PATH, WorkerLinkEndpoint
from runtime.link.http import register_worker_http_routes
from runtime.link.ws import serve_worker_websocket

__all__ = ["mount_worker_link"]


def mount_worker_link(state: AppState, endpoint: WorkerLinkEndpoint) -> AppState:
    """`state` serving the worker link: ``/worker/ws`` in front of the app and
    ``/worker/link`` (HTTP + SSE) among its routes."""
    routes = functools.partial(register_worker_http_routes, endpoint=endpoint,
                               keepalive=state.service.settings.keepalive)
    websockets = {**state.websockets, WS_PATH: functools.partial(serve_worker_websocket,
                                                                  endpoint)}
    return attrs.evolve(state, routes=(*state.routes, routes), websockets=websockets)
