"""The admin API (JSON-RPC and HTTP+JSON) and the dashboard, added to the HTTP face.

`mount_admin(state, admin, token=..., ui=...)` returns the `AppState` with the admin
routes, the JSON-RPC admin methods and (unless `ui` is False) the ``/ui`` page; see
docs/admin.md.
"""

from __future__ import annotations

import attrs
from quart_trio import QuartTrio

from actors.admin import AdminService
from runtime.admin.feed import Throughput
from runtime.admin.gate import AdminGate
from runtime.admin.routes import register_admin_routes
from runtime.admin.rpc import ADMIN_PREFIX, AdminRpc
from runtime.admin.ui import register_ui_routes
from runtime.http.common import AppState

__all__ = ["ADMIN_PREFIX", "mount_admin"]


def mount_admin(state: AppState, admin: AdminService, *, token: str | None,
                ui: bool = True, interval: float = 1.0) -> AppState:
    """`state` serving the admin API (off, answering 404, without `token`) and the
    dashboard. `interval` is how often the dashboard's stream sends a snapshot."""
    gate = AdminGate(token)
    throughput = Throughput(admin.store)

    def add_routes(app: QuartTrio) -> None:
        register_admin_routes(app, admin, gate, throughput=throughput, interval=interval)
        if ui:
            register_ui_routes(app)

    return attrs.evolve(state, routes=(*state.routes, add_routes),
                        extension_rpc=AdminRpc(admin, gate))
