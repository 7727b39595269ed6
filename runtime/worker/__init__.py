"""The worker process: `open_worker` (its supervision tree) and its link transports.

May import actors/, protocol/, runtime.agents and runtime.supervisor; never the server side.
"""

from runtime.worker.config import WorkerConfig
from runtime.worker.errors import WorkerRejected
from runtime.worker.process import (
    AGENTS,
    RunningWorker,
    WorkerStatistics,
    check_server_urls,
    open_worker,
)
from runtime.worker.ws_link import Connection, WebSocketLink, link_url, open_websocket_link

__all__ = [
    "AGENTS",
    "Connection",
    "RunningWorker",
    "WebSocketLink",
    "WorkerConfig",
    "WorkerRejected",
    "WorkerStatistics",
    "check_server_urls",
    "link_url",
    "open_websocket_link",
    "open_worker",
]
