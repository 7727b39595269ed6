"""What every part of the HTTP face shares: the app's state, ASGI types, JSON helpers.

The JSON-RPC endpoint, the HTTP+JSON binding, the card and the worker link's
routes (in `runtime.link`) all import this module and nothing of each other.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import attrs
from quart import Response

from actors.a2a_service import A2AService
from protocol.limits import Limits
from runtime.http.auth import TokenAuth
from runtime.http.card import LiveCard
from runtime.http.extension_methods import ExtensionMethod
from runtime.http.identity import Authenticator
from runtime.http.rate_limit import RateLimiter
from runtime.http.signing_settings import SigningSettings

if TYPE_CHECKING:
    from quart_trio import QuartTrio

__all__ = [
    "ASGIApp",
    "AppState",
    "ExtensionRpc",
    "Receive",
    "Scope",
    "Send",
    "is_json_content_type",
    "json_response",
    "negotiate_version",
    "too_large_error",
    "unauthorized",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ExtensionRpc = Callable[[list[str], bytes, str | None], Awaitable[tuple[int, bytes] | None]]
"""(the request's Authorization headers, its body, the key that signed it or None) ->
(HTTP status, JSON body) or None."""

SUPPORTED_VERSIONS = ("1.0", "0.3")
JSON_TYPES = ("application/json", "application/a2a+json", "application/json-rpc")


@attrs.frozen
class AppState:
    """Everything the HTTP face serves from; built once by `runtime.server`."""

    service: A2AService
    card: LiveCard
    """The public card as it is now (`card.document`)."""
    auth: TokenAuth
    extended_card: bool = False
    """Serve the card to authenticated callers as the extended card (GetExtendedAgentCard)."""
    max_body: int = 10 * 1024 * 1024
    limits: Limits = Limits()
    """What one request may hold (parts, nesting, strings, members), checked on the
    decoded JSON of every JSON-RPC call and HTTP+JSON body before models are built."""
    card_cache_control: str = "public, max-age=300"
    worker_auth: TokenAuth | None = None
    """Worker tokens, separate from the client tokens of `auth` (refused as clients)."""
    routes: tuple[Callable[[QuartTrio], None], ...] = ()
    """More routes for the quart-trio app (the worker link's HTTP binding)."""
    not_ready: Callable[[], list[str]] | None = None
    """Why the server should get no traffic now (empty: ready), for ``/readyz``."""
    websockets: Mapping[str, ASGIApp] = attrs.field(factory=dict)
    """WebSocket paths served as plain ASGI in front of the app (``/worker/ws``)."""
    mounts: Mapping[str, ASGIApp] = attrs.field(factory=dict)
    """HTTP paths served as plain ASGI in front of the app, every method (``/mcp``)."""
    base_path: str = ""
    """Serve everything also under this path, e.g. ``/api/a2a/v1`` (`runtime.http.mount`)."""
    path_aliases: bool = False
    """Serve also the CodeTether paths ``/a2a/jsonrpc`` and ``/a2a/rest/...``."""
    authenticator: Authenticator | None = None
    """Identities (principal, tenant, roles) and permissions (`runtime.http.gate`);
    None: `auth` alone, every caller an operator."""
    rate_limiter: RateLimiter | None = None
    """Per-principal and per-tenant request rates; None: unlimited."""
    signing: SigningSettings | None = None
    """Request-signing keys bound to principals, for `gate.authorize` (the signatures
    themselves are checked by `request_signing.SignatureCheck` in front of the app)."""
    signature_verifier: Any = None
    """A `request_signing.RequestVerifier` (untyped here: that module imports this one):
    checks signatures and records their nonces for the bindings outside the ASGI app
    (gRPC's call metadata); the same one `SignatureCheck` uses. None: signing off."""
    extension_methods: Mapping[str, ExtensionMethod] = attrs.field(factory=dict)
    """JSON-RPC methods beside A2A's, in both generations (the token service)."""
    extension_rpc: ExtensionRpc | None = None
    """Answers the JSON-RPC calls of an extension with an auth of its own (the admin
    methods), before client auth: (status, body), or None for the A2A methods."""


def negotiate_version(raw: str | None) -> str | None:
    """'1.0' or '0.3' for a supported `A2A-Version` value, None for an unsupported one."""
    value = (raw or "").strip()
    if not value:
        return "0.3"
    if value in SUPPORTED_VERSIONS:
        return value
    if value in ("0.3.0", "1.0.0"):
        return value[:3]
    return None


def is_json_content_type(value: str | None) -> bool:
    if not value:
        return True  # no header: read the body as JSON
    media = value.split(";", 1)[0].strip().lower()
    return media in JSON_TYPES or media.endswith("+json")


def json_response(body: bytes | dict[str, Any] | list[Any], status: int = 200,
                  headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> Response:
    data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return Response(data, status=status, content_type=content_type, headers=headers)


def too_large_error(limit: int) -> dict[str, Any]:
    """The body of a 413, on every path."""
    return {"error": {"code": 413, "status": "INVALID_ARGUMENT",
                      "message": f"request body exceeds the limit of {limit} bytes"}}


def unauthorized() -> Response:
    message = "a valid bearer token is required (Authorization: Bearer <token>)"
    body = {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": message}}
    return json_response(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="a2a"'})
