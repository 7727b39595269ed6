"""The admin API (JSON-RPC and HTTP+JSON) and the dashboard, added to the HTTP face.

`mount_admin(state, settings, dispatcher, service, links, replica_id)` returns the
`AppState` with the admin routes, the JSON-RPC admin methods and (unless
`settings.ui` is False) the ``/ui`` page; see docs/admin.md.
"""

from __future__ import annotations

import attrs
from quart_trio import QuartTrio

from actors.a2a_service import A2AService
from actors.admin import AdminService, WorkerLinks
from actors.dispatcher import Dispatcher
from runtime.admin.feed import Throughput
from runtime.admin.gate import AdminGate
from runtime.admin.routes import register_admin_routes
from runtime.admin.rpc import ADMIN_PREFIX, AdminRpc
from runtime.admin.ui import register_ui_routes
from runtime.http.common import AppState

__all__ = ["ADMIN_PREFIX", "AdminSettings", "mount_admin"]


@attrs.frozen
class AdminSettings:
    """The admin API and dashboard of a server (`ServerConfig.admin`)."""

    token: str | None = attrs.field(default=None, repr=False)
    """The bearer token of the admin API and dashboard (`--admin-token`); None: the
    admin API is off (its paths answer 404, its methods -32601)."""
    ui: bool = True
    """Serve the dashboard page at /ui (`--no-ui`: not)."""
    interval: float = 1.0
    """Seconds between the dashboard stream's snapshots."""


def mount_admin(state: AppState, settings: AdminSettings, dispatcher: Dispatcher,
                service: A2AService, links: WorkerLinks, replica_id: str) -> AppState:
    """`state` serving the admin API over the dispatcher, the service's store and
    the worker link `links`, and the dashboard."""
    admin = AdminService(dispatcher, service.store, service, links, replica_id=replica_id)
    gate = AdminGate(settings.token, state.authenticator, state.rate_limiter, state.signing)
    throughput = Throughput(admin.store)

    def add_routes(app: QuartTrio) -> None:
        register_admin_routes(app, admin, gate, throughput=throughput,
                              interval=settings.interval)
        if settings.ui:
            register_ui_routes(app)

    return attrs.evolve(state, routes=(*state.routes, add_routes),
                        extension_rpc=AdminRpc(admin, gate))
