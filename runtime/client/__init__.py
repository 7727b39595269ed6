"""The A2A client: `open_a2a_client` for any A2A server, and its CLI (`send`, `get`, ...).

May import protocol/ and httpx; nothing of the server, the link or the worker.

The names below are imported on first use (PEP 562), so that `python -m runtime
--help` can register the client commands (`runtime.client.cli_flags`) without
loading httpx and the models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and readers see; at run time, `__getattr__` below
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


def __getattr__(name: str) -> Any:
    """A public name of `runtime.client.client`, imported on first use; or a submodule,
    which `import runtime.client` used to bind along the way (PEP 562)."""
    if name not in __all__:
        return _submodule(name)
    value = getattr(importlib.import_module("runtime.client.client"), name)
    globals()[name] = value
    return value


def _submodule(name: str) -> Any:
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
