"""The HTTP surface: the quart-trio app, with the JSON-RPC endpoint in front.

`create_asgi(state)` is what hypercorn serves: `runtime.jsonrpc_endpoint`
takes `POST /` (JSON-RPC, both generations) and hands every other request to
the quart-trio app built here, which serves the agent card and the HTTP+JSON
binding (`runtime.rest_binding`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs
from quart import Response, request
from quart_trio import QuartTrio

from actors.a2a_service import A2AService
from actors.dispatcher import Dispatcher
from runtime.auth import TokenAuth
from runtime.card import CardDocument

if TYPE_CHECKING:
    from runtime.worker_endpoint import WorkerLinkEndpoint
from runtime.jsonrpc_endpoint import (
    JsonRpcASGI,
    is_json_content_type,
    negotiate_version,
)

__all__ = [
    "AppState",
    "create_app",
    "create_asgi",
    "is_json_content_type",
    "json_response",
    "negotiate_version",
    "unauthorized",
]


@attrs.frozen
class AppState:
    service: A2AService
    card: CardDocument
    auth: TokenAuth
    extended_card: dict[str, Any] | None = None
    max_body: int = 10 * 1024 * 1024
    card_cache_control: str = "public, max-age=300"
    dispatcher: Dispatcher | None = None
    """Serves the worker link (/worker/ws) when set."""
    worker_auth: TokenAuth | None = None
    """Worker tokens, separate from the client tokens of `auth`."""
    worker_endpoint: WorkerLinkEndpoint | None = None
    """The server's end of the worker link, shared with the embedded workers
    (made from `dispatcher` and `worker_auth` when not given)."""


def json_response(body: bytes | dict[str, Any] | list[Any], status: int = 200,
                  headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> Response:
    data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return Response(data, status=status, content_type=content_type, headers=headers)


def unauthorized() -> Response:
    message = "a valid bearer token is required (Authorization: Bearer <token>)"
    body = {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": message}}
    return json_response(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="a2a"'})


def create_app(state: AppState) -> QuartTrio:
    """The quart-trio app: agent card, HTTP+JSON binding, error pages."""
    app = QuartTrio("trio_a2a")
    app.config["MAX_CONTENT_LENGTH"] = state.max_body
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 60

    async def serve_card() -> Response:
        card = state.card
        headers = {"ETag": card.etag, "Cache-Control": state.card_cache_control}
        inm = request.headers.get("If-None-Match")
        if inm and (inm.strip() == "*" or card.etag in [t.strip() for t in inm.split(",")]):
            return Response(b"", status=304, headers=headers)
        return json_response(card.body, headers=headers)

    app.add_url_rule("/.well-known/agent-card.json", "card", serve_card, methods=["GET"])
    app.add_url_rule("/.well-known/agent.json", "card_legacy", serve_card, methods=["GET"])

    @app.errorhandler(413)
    async def too_large(_: Exception) -> Response:
        body = {"error": {"code": 413, "status": "INVALID_ARGUMENT",
                          "message": f"request body exceeds the limit of {state.max_body} bytes"}}
        return json_response(body, status=413)

    from runtime.rest_binding import register_rest_routes

    register_rest_routes(app, state)
    from runtime.worker_endpoint import register_worker_routes

    register_worker_routes(app, state)
    return app


def create_asgi(state: AppState) -> JsonRpcASGI:
    """The ASGI application hypercorn serves: JSON-RPC (``POST /``) and the worker
    link's WebSocket (``/worker/ws``) in front of the quart-trio app."""
    from runtime.worker_endpoint import with_worker_endpoint

    state = with_worker_endpoint(state)
    return JsonRpcASGI(state, create_app(state))
