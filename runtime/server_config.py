"""What `python -m runtime server` can be told: `ServerConfig`, checked when made.

Defaults serve out of the box; each field's docstring says what it changes. A
value the server could only fail on later (a port out of range, a bad request
limit, a token both client and worker) is a ValueError here, naming the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import attrs

from actors.agent import AgentSpec
from protocol.limits import Limits
from runtime.admin import AdminSettings
from runtime.agents import echo_agent
from runtime.http.card import CardSettings
from runtime.security import SecurityConfig

__all__ = ["ServerConfig"]

_LIMITS = Limits()  # the defaults


@attrs.frozen
class ServerConfig:
    """Everything `python -m runtime server` can be told; defaults serve out of the box."""

    host: str = "127.0.0.1"
    port: int = attrs.field(default=8000)
    """0 picks a free port (tests, embedding)."""
    public_url: str | None = None
    """Base URL published in the agent card; default http://host:port."""
    base_path: str = ""
    """Serve A2A also under this path (``/api/a2a/v1``); the card's interfaces name it."""
    codetether_paths: bool = False
    """Serve also ``/a2a/jsonrpc`` and ``/a2a/rest/...`` (the CodeTether migration guide's)."""
    card: CardSettings = CardSettings()
    """What the agent card says (name, description, provider, skills, ...); unset
    fields come from `agent` when `local_workers` run it."""
    store: Literal["sqlite", "memory", "postgres"] = "sqlite"
    database_url: str | None = None
    """postgresql://... for `store="postgres"` (docs/deployment.md)."""
    database_pool_size: int = 10
    """Connections to PostgreSQL this server keeps at most."""
    store_poll_interval: float = 5.0
    """With PostgreSQL: seconds between comparisons of the cached tasks with the database,
    the fallback should a change notification of another replica be lost."""
    replica_id: str | None = None
    """This server among the replicas on one PostgreSQL database, stable across its
    restarts and unique among them; default HOSTNAME:PORT. The leases of the embedded
    workers carry it, so a restarted replica queues their tasks again at once and
    leaves other replicas' embedded workers' leases alone."""
    queue_rescan_interval: float = 10.0
    """With PostgreSQL: seconds between reconciliations of the dispatch queue with the
    database's unfinished tasks, the fallback should the notification of a task another
    replica queued be lost."""
    data_dir: Path = Path("data")
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    tokens: dict[str, str] = attrs.field(factory=dict)
    """{token: principal}; empty means auth is off."""
    worker_tokens: dict[str, str] = attrs.field(factory=dict)
    """{token: principal} for the worker link (/worker/ws, /worker/link), never valid as
    client tokens. Empty with client auth off: the link accepts any worker (a warning
    is logged). Empty with client auth on: see `open_worker_link`."""
    open_worker_link: bool = False
    """With client tokens but no worker tokens, let any remote worker on the link, on
    purpose (a trusted network). Off, such a server never serves a tokenless remote
    worker: anyone could take a principal's task, read its prompt and forge its
    result. It keeps the link closed to remote workers (its embedded ones need no
    token), and with no embedded workers it refuses to start (`worker_link_refusal`)."""
    admin: AdminSettings = AdminSettings()  # the admin API and /ui (docs/admin.md)
    agent: AgentSpec = echo_agent
    push_notifications: bool = True
    allow_private_push_urls: bool = False
    max_body: int = 10 * 1024 * 1024
    max_parts: int = _LIMITS.max_parts
    """Parts of the message of one request (a JSON-RPC batch: of all its calls)."""
    max_depth: int = _LIMITS.max_depth
    """JSON nesting in one request, counted from the JSON-RPC params or HTTP+JSON body."""
    max_string: int = _LIMITS.max_string
    """Characters in any one string of a request."""
    max_items: int = _LIMITS.max_items
    """Members of one object or elements of one array in a request."""
    header_timeout: float = attrs.field(default=20.0)
    """Seconds a request head may take from its first byte; then the connection is
    closed (a client dribbling a header no longer holds a connection for long)."""
    shutdown_grace: float = attrs.field(default=20.0)
    """Seconds a stopping server gives in-flight blocking sends and open streams to
    finish (below Kubernetes' 30 s before it kills); then streams end with a final
    notice and blocking sends answer with the task as it stands (docs/deployment.md)."""
    keepalive: float = 15.0
    max_concurrent_tasks: int = 256
    """Agent runs in parallel per local worker."""
    local_workers: int = 1
    """Workers inside the server process running `agent`; 0 for remote-only deployments."""
    lease_ttl: float = 90.0
    """How long a claimed task stays with its worker without a heartbeat; workers
    heartbeat every third of it (30 s by default)."""
    reap_interval: float = 5.0
    """How often expired leases are looked for."""
    max_attempts: int = 3
    """Claims each run of a task gets (the first, and each one a client's continuation
    starts) before a lost lease fails it."""
    max_output_bytes: int | None = 64 << 20
    """Output one attempt of a task may write (text as UTF-8, file bytes, as
    `protocol.output_size.output_bytes` counts): past it the task fails with the
    reason, once. Workers are told it when they register and stop there. None: no cap."""
    max_restarts: int = 5
    restart_window: float = 30.0
    """More than `max_restarts` actor restarts within `restart_window` seconds stop the server."""
    cancel_timeout: float = 10.0
    drain_timeout: float = 0.5
    """Seconds a stopping server gives its remote workers' links to send them a drain."""
    handover_timeout: float = 5.0
    """Seconds a stopping server waits for its embedded workers to stop, then again for
    its remote workers to move to another replica (``goaway``) before it cuts them off."""
    push_timeout: float = 15.0
    push_max_attempts: int = 8
    grpc_port: int | None = None
    """Also serve the A2A 1.0 gRPC binding on this port (0: a free one); None: off."""
    grpc_host: str | None = None
    """Where gRPC listens; default `host`."""
    grpc_max_calls: int = 100
    """gRPC calls at once (a stream holds one); more get RESOURCE_EXHAUSTED."""
    mcp: bool = True
    """Serve ``/mcp``: the MCP tools over the same service and auth (docs/mcp.md)."""
    push_lease_ttl: float = 30.0
    """How long a replica's claim on delivering a push config lasts unrenewed (renewed
    every third of it). With several replicas, one whose replica died is taken over by
    another within about 4/3 of it; a replica that stops gracefully hands its over at once."""
    security: SecurityConfig = SecurityConfig()  # identities, limits... (docs/security.md)
    access_log: bool = False
    """Log one line per HTTP request (logger `runtime.access`)."""
    tracer_provider: Any = None
    """An OpenTelemetry TracerProvider: spans of requests, store writes and the
    embedded workers' sessions (`runtime.observe.tracing`). None: no tracing, at no cost."""

    @port.validator
    def _port_in_range(self, _: attrs.Attribute[int], value: int) -> None:
        # bind() would raise OverflowError only once the server starts
        if not 0 <= value <= 65535:
            raise ValueError(f"port must be in 0-65535, not {value}")

    @property
    def limits(self) -> Limits:
        """The request limits; checked when the config is made (ValueError naming one)."""
        return Limits(max_parts=self.max_parts, max_depth=self.max_depth,
                      max_string=self.max_string, max_items=self.max_items)

    def __attrs_post_init__(self) -> None:
        _ = self.limits  # a bad limit fails here, not on the first request

    @header_timeout.validator
    def _positive_seconds(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{attribute.name} must be a positive number of seconds, "
                             f"not {value}")

    @shutdown_grace.validator
    def _grace(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{attribute.name} must be 0 or more seconds, not {value}")

    @worker_tokens.validator
    def _tokens_disjoint(self, _: attrs.Attribute[dict[str, str]], value: dict[str, str]) -> None:
        shared = sorted(self.tokens.keys() & value.keys())
        if shared:
            raise ValueError(f"{len(shared)} token(s) are both client and worker tokens")
