"""Mounting the MCP endpoint on the HTTP face: `runtime.http` serves whatever plain
ASGI paths its `AppState` carries; this adds ``/mcp``."""

from __future__ import annotations

import attrs

from runtime.http.common import AppState
from runtime.mcp.endpoint import MCP_PATH, McpEndpoint

__all__ = ["mount_mcp"]


def mount_mcp(state: AppState, endpoint: McpEndpoint) -> AppState:
    """`state` serving `endpoint` at ``/mcp``, every method, in front of the app."""
    return attrs.evolve(state, mounts={**state.mounts, MCP_PATH: endpoint})
