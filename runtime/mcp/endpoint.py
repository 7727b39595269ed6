"""The MCP endpoint: ``/mcp``, Streamable HTTP, on the official `mcp` SDK.

The SDK's low-level `Server` holds the tools (`runtime.mcp.handlers`); its
`StreamableHTTPSessionManager` speaks the transport. The manager runs a task
group for its lifetime and cannot be started twice, so `McpEndpoint.run` is a
supervised child of the server that makes a fresh one each time it starts;
the ASGI handler serves through whichever runs now (503 while none does).

The manager runs **stateless**: every request stands alone (no `Mcp-Session-Id`),
since everything a tool touches lives in the task store. So any replica on a
shared database serves any request, and a restart loses no MCP session.
Progress notifications ride each call's own SSE response.

Auth is the server's (`runtime.http.gate`, as on JSON-RPC and HTTP+JSON): the
bearer token of every request proves an identity — a static token, a JWT, a
token-service access token — (401 with ``WWW-Authenticate: Bearer`` otherwise, or
400 for several Authorization headers); each tool call needs its permission
(`protocol.permissions.MCP_OPERATIONS`), refused as a tool error
(`PermissionDenied`), and acts as the identity's owner key, so one principal (or
tenant) never sees another's tasks. A request from a browser page of another
origin (an ``Origin`` header whose host is not the request's ``Host``) is
refused with 403, as the MCP transport asks of servers against DNS rebinding.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any
from urllib.parse import urlsplit

import mcp_types as types
import trio
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError

from protocol.identity import Identity, owner_key
from protocol.security_errors import SignatureRequiredError
from runtime.http.auth import RepeatedAuthorization, one_authorization
from runtime.http.common import Receive, Scope, Send, too_large_error
from runtime.http.gate import authorize, identify
from runtime.http.guard import refuse
from runtime.http.signing_settings import SIGNED_BY
from runtime.mcp.handlers import McpTools, UnknownTool
from runtime.mcp.tools import TOOLS

__all__ = ["MCP_PATH", "McpEndpoint"]

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
IDENTITY = "trio_a2a.identity"
"""The ASGI scope key carrying the caller's `Identity` to the tool handler."""

INSTRUCTIONS = (
    "Tools of an Agent2Agent (A2A) server: send_task runs a task on one of its agents and "
    "returns the result; list_agents shows the agents and skills on offer. A task in state "
    "input-required is answered with send_task and its task_id.")


class McpEndpoint:
    """``/mcp`` as an ASGI app, over `tools`, behind the checks of `runtime.http.gate`
    on `security` (the server's `AppState`: its authenticator, rate limiter and
    signing keys). `max_body` bounds a request's body."""

    def __init__(self, tools: McpTools, security: Any, *, max_body: int = 10 * 1024 * 1024,
                 name: str = "trio-a2a", version: str | None = None) -> None:
        self._tools = tools
        self._security = security
        self._max_body = max_body
        self._name = name
        self._version = _package_version() if version is None else version
        self._manager: StreamableHTTPSessionManager | None = None

    def _server(self) -> Server[Any]:
        tools = self._tools
        security = self._security

        async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None
                             ) -> types.ListToolsResult:
            return types.ListToolsResult(tools=list(TOOLS))

        async def call_tool(ctx: Any, params: types.CallToolRequestParams
                            ) -> types.CallToolResult:
            request = ctx.request
            identity = request.scope.get(IDENTITY) if request is not None else None
            if not isinstance(identity, Identity):  # not through our ASGI handler
                raise MCPError(types.INVALID_REQUEST, "unauthenticated call")
            signed_by = request.scope.get(SIGNED_BY)

            def allow(permission: str) -> None:
                authorize(security, identity, permission, f"tool {params.name}",
                          signed_by=signed_by)

            try:
                return await tools.call(params.name, params.arguments, owner_key(identity),
                                        ctx.session.report_progress, authorize=allow)
            except UnknownTool:
                names = ", ".join(t.name for t in TOOLS)
                raise MCPError(types.INVALID_PARAMS,
                               f"unknown tool {params.name!r}; the tools are: {names}") from None
            except Exception:  # a bug: logged with its traceback, never shown to the caller
                log.exception("internal error in an MCP tool", extra={"tool": params.name})
                raise MCPError(types.INTERNAL_ERROR, "internal server error") from None

        return Server(self._name, version=self._version, instructions=INSTRUCTIONS,
                      on_list_tools=list_tools, on_call_tool=call_tool)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve MCP until cancelled: a supervised child (see the module docstring)."""
        manager = StreamableHTTPSessionManager(self._server(), stateless=True,
                                               max_request_body_size=self._max_body)
        async with manager.run():
            self._manager = manager
            try:
                log.info("MCP endpoint serving", extra={"path": MCP_PATH, "tools": len(TOOLS)})
                task_status.started()
                await trio.sleep_forever()
            finally:
                if self._manager is manager:
                    self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            # Stateless: no session for a GET stream to belong to (the transport lets a
            # server answer 405 there) or for a DELETE to end; such a GET would stay
            # open with nothing ever to send.
            await _answer(receive, send, 405, "METHOD_NOT_ALLOWED",
                          f"{scope['method']} is not served at {MCP_PATH}: MCP requests are "
                          "POSTed (stateless Streamable HTTP)", ((b"allow", b"POST"),))
            return
        authorizations = [v.decode("latin-1") for k, v in scope["headers"]
                          if k == b"authorization"]
        try:
            identity = await identify(self._security, one_authorization(authorizations))
        except RepeatedAuthorization as exc:
            await _answer(receive, send, 400, "INVALID_ARGUMENT", str(exc))
            return
        if identity is None:
            await _answer(receive, send, 401, "UNAUTHENTICATED",
                          "a valid bearer token is required (Authorization: Bearer <token>)",
                          ((b"www-authenticate", b'Bearer realm="a2a"'),))
            return
        signing = getattr(self._security, "signing", None)
        try:
            if signing is not None:
                signing.check_caller(identity.principal, scope.get(SIGNED_BY))
        except SignatureRequiredError as err:
            await _answer(receive, send, 401, err.reason, err.message)
            return
        if not _same_origin(scope):
            await _answer(receive, send, 403, "PERMISSION_DENIED",
                          "requests from a web page of another origin are refused")
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._max_body:
            # refused unread, as on every path (a chunked body over it: the SDK's 413)
            await refuse(receive, send, 413, too_large_error(self._max_body))
            return
        manager = self._manager
        if manager is None:
            await _answer(receive, send, 503, "UNAVAILABLE", "the MCP endpoint is starting; retry")
            return
        scope[IDENTITY] = identity
        await manager.handle_request(scope, receive, send)


def _package_version() -> str:
    """The installed trio-a2a's version, for the MCP server info."""
    try:
        return importlib.metadata.version("trio-a2a")
    except importlib.metadata.PackageNotFoundError:
        return ""


def _same_origin(scope: Scope) -> bool:
    """No Origin header (not a browser), or one naming the host the request went to."""
    headers = dict(scope["headers"])
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = headers.get(b"host", b"").decode("latin-1").lower()
    try:
        parts = urlsplit(origin.decode("latin-1").lower())
    except ValueError:
        return False
    return bool(parts.netloc) and parts.netloc == host


async def _answer(receive: Receive, send: Send, status: int, code: str, message: str,
                  headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """Refuse the request before reading its body: the answer closes the connection."""
    await refuse(receive, send, status,
                 {"error": {"code": status, "status": code, "message": message}}, headers)
