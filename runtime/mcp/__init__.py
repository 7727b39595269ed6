"""The MCP face: ``/mcp`` (Streamable HTTP) on the official `mcp` SDK, an adapter at the
edge onto the same A2A service as the JSON-RPC and HTTP+JSON bindings (docs/mcp.md).

`McpEndpoint` is the ASGI app and the supervised child that runs the SDK's session
manager; `McpTools` the tools; `mount_mcp` adds the endpoint to the HTTP face.
"""

from runtime.mcp.endpoint import MCP_PATH, McpEndpoint
from runtime.mcp.handlers import McpTools
from runtime.mcp.mount import mount_mcp

__all__ = ["MCP_PATH", "McpEndpoint", "McpTools", "mount_mcp"]
