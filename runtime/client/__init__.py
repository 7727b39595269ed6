"""The A2A client: `open_a2a_client` for any A2A server, and its CLI (`send`, `get`, ...).

May import protocol/ and httpx; nothing of the server, the link or the worker.
"""

from runtime.client.client import (
    CARD_PATHS,
    USAGE_KEY,
    A2AClient,
    A2AClientError,
    A2AConnectionError,
    A2AHTTPError,
    A2AResponseError,
    A2ARpcError,
    A2AUnsupportedError,
    EventStream,
    Protocol,
    RequestMetrics,
    metrics_to_json,
    open_a2a_client,
    select_interface,
)

__all__ = [
    "CARD_PATHS",
    "USAGE_KEY",
    "A2AClient",
    "A2AClientError",
    "A2AConnectionError",
    "A2AHTTPError",
    "A2AResponseError",
    "A2ARpcError",
    "A2AUnsupportedError",
    "EventStream",
    "Protocol",
    "RequestMetrics",
    "metrics_to_json",
    "open_a2a_client",
    "select_interface",
]
