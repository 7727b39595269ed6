"""The HTTP surface: the quart-trio app, with the JSON-RPC endpoint in front.

`create_asgi(state)` is what hypercorn serves: `runtime.http.jsonrpc`
takes `POST /` (JSON-RPC, both generations) and hands every other request,
through `runtime.http.guard`, to the quart-trio app built here, which serves
the agent card and the HTTP+JSON binding (`runtime.http.rest`).
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from quart import Response, request
from quart_trio import QuartTrio

from runtime.http.card import CardDocument
from runtime.http.common import AppState, ASGIApp, json_response, too_large_error
from runtime.http.gateway_routes import register_gateway_routes
from runtime.http.guard import QuartGuard
from runtime.http.jsonrpc import JsonRpcASGI
from runtime.http.mount import PathMount
from runtime.http.rest import register_rest_routes

__all__ = ["create_app", "create_asgi"]


def create_app(state: AppState) -> QuartTrio:
    """The quart-trio app: agent card, HTTP+JSON binding, error pages."""
    app = QuartTrio("trio_a2a")
    app.config["MAX_CONTENT_LENGTH"] = state.max_body
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 60

    async def serve_card() -> Response:
        card = state.card.document
        headers = {"ETag": card.etag, "Last-Modified": card.last_modified,
                   "Cache-Control": state.card_cache_control}
        if _not_modified(card, request.headers.get("If-None-Match"),
                         request.headers.get("If-Modified-Since")):
            return Response(b"", status=304, headers=headers)
        return json_response(card.body, headers=headers)

    async def healthz() -> Response:
        return json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})

    async def readyz() -> Response:
        reasons = state.not_ready() if state.not_ready is not None else []
        body: dict[str, object] = {"status": "not ready" if reasons else "ready"}
        if reasons:
            body["reasons"] = reasons
        return json_response(body, status=503 if reasons else 200,
                             headers={"Cache-Control": "no-store"})

    # Probes (docs/deployment.md): /healthz answers while the process serves HTTP;
    # /readyz says whether it should get traffic, and why not.
    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", readyz, methods=["GET"])
    app.add_url_rule("/.well-known/agent-card.json", "card", serve_card, methods=["GET"])
    app.add_url_rule("/.well-known/agent.json", "card_legacy", serve_card, methods=["GET"])
    app.add_url_rule("/agent/card", "card_gateway", serve_card, methods=["GET"])  # 0.1 gateways

    @app.errorhandler(413)
    async def too_large(_: Exception) -> Response:
        return json_response(too_large_error(state.max_body), status=413)

    register_rest_routes(app, state)
    register_gateway_routes(app, state)
    for add_routes in state.routes:
        add_routes(app)
    return app


def create_asgi(state: AppState) -> ASGIApp:
    """The ASGI application hypercorn serves: JSON-RPC (``POST /``) and the
    WebSocket paths of ``state.websockets`` in front of the quart-trio app, which
    `QuartGuard` keeps from wedging connections and from reading refused bodies;
    all of it also under ``state.base_path`` and the CodeTether paths (`PathMount`)."""
    asgi = JsonRpcASGI(state, QuartGuard(create_app(state), state.max_body))
    if state.base_path or state.path_aliases:
        return PathMount(asgi, base_path=state.base_path, aliases=state.path_aliases)
    return asgi


def _not_modified(card: CardDocument, if_none_match: str | None,
                  if_modified_since: str | None) -> bool:
    """RFC 9110 §13.1: If-None-Match decides when present; else If-Modified-Since."""
    if if_none_match:
        tags = [t.strip() for t in if_none_match.split(",")]
        return "*" in tags or card.etag in tags or f"W/{card.etag}" in tags
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False  # an unparsable date is ignored (§13.1.3)
        if since.tzinfo is None:
            return False
        return int(card.modified) <= since.timestamp()
    return False
