"""`WorkerConfig`: how a worker connects, reconnects, runs its sessions and stops."""

from __future__ import annotations

import attrs

from actors.worker import Backoff, SessionConfig

__all__ = ["WorkerConfig"]


@attrs.frozen
class WorkerConfig:
    heartbeat_interval: float | None = None
    """Seconds between heartbeats; None: what the server says when registering."""
    poll_interval: float = 5.0
    """How soon a claim that failed for a passing reason is tried again."""
    ack_timeout: float = 30.0
    """Seconds without an ack before a frame is in doubt (resent, or the attempt fails)."""
    push_queue: int = 64
    """Pushes read but not yet handled, per connection (offers beyond are dropped)."""
    sessions: SessionConfig = SessionConfig()
    register_retry: Backoff = Backoff()
    """Backoff between registration attempts on one connection."""
    reconnect: Backoff = Backoff(base=0.5, factor=2.0, max=30.0, jitter=0.2)
    """Backoff before connecting again after the connection was lost (or never made)."""
    reconnect_max_restarts: int = 10
    reconnect_window: float = 60.0
    """More than that many reconnects in that many seconds: the connection subtree
    gives up and the worker supervisor starts it afresh."""
    stable_after: float = 30.0
    """A connection that lasted this long resets the reconnect backoff."""
    connect_timeout: float = 10.0
    disconnect_timeout: float = 2.0
    seed: int | None = None
    """Seeds the RNG of all jitter (None: random)."""
    shutdown_grace: float = 20.0
    """Seconds `shutdown()` lets running tasks finish before giving them back: keep it
    below what the process manager waits before it kills (Kubernetes: 30 s)."""
    release_timeout: float = 5.0
    """Seconds `shutdown()` then waits for the server to take the tasks given back."""
    signing_key: tuple[str, bytes] | None = attrs.field(default=None, repr=False)
    """(key id, secret): HMAC-sign the worker link's requests (docs/security.md)."""

