"""The HTTP surface: a quart-trio app serving the card, JSON-RPC and HTTP+JSON.

One JSON-RPC endpoint (POST /) serves both generations, chosen per request by
the `A2A-Version` header (or `?A2A-Version=`): missing or empty means 0.3, `1.0`
means 1.0, anything else is -32009. The HTTP+JSON binding lives in
`runtime.rest_binding`; SSE framing in `runtime.sse_stream`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import attrs
import trio
from quart import Response, request
from quart_trio import QuartTrio

from actors.a2a_service import A2AService
from protocol.errors import (
    A2AError,
    ContentTypeNotSupportedError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    MethodNotFoundError,
    VersionNotSupportedError,
)
from protocol.jsonrpc import Request as RpcRequest
from protocol.jsonrpc import error_response, parse_payload
from runtime.auth import TokenAuth
from runtime.card import CardDocument
from runtime.rpc_methods import METHODS, STREAMING_METHODS, CallContext, RpcStream
from runtime.sse_stream import event_frames, sse_response

__all__ = ["AppState", "create_app", "negotiate_version"]

log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = ("1.0", "0.3")
JSON_TYPES = ("application/json", "application/a2a+json", "application/json-rpc")


@attrs.frozen
class AppState:
    service: A2AService
    card: CardDocument
    auth: TokenAuth
    extended_card: dict[str, Any] | None = None
    max_body: int = 10 * 1024 * 1024
    card_cache_control: str = "public, max-age=300"


def negotiate_version(raw: str | None) -> str | None:
    """'1.0' or '0.3' for a supported header value, None for an unsupported one."""
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


def _envelope(req_id: Any, result: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":' + json.dumps(req_id).encode() + b',"result":' + result + b"}"


def _error_bytes(req_id: Any, err: A2AError, version: str) -> bytes:
    return json.dumps(error_response(req_id, err, version=version), separators=(",", ":")).encode()


def unauthorized() -> Response:
    message = "a valid bearer token is required (Authorization: Bearer <token>)"
    body = {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": message}}
    return json_response(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="a2a"'})


def create_app(state: AppState) -> QuartTrio:
    app = QuartTrio("trio_a2a")
    app.config["MAX_CONTENT_LENGTH"] = state.max_body
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 60
    service = state.service

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

    @app.post("/")
    async def jsonrpc() -> Response:
        principal = state.auth.principal(request.headers.get("Authorization"))
        if principal is None:
            return unauthorized()
        raw_version = request.headers.get("A2A-Version")
        if raw_version is None:
            raw_version = request.args.get("A2A-Version")
        version = negotiate_version(raw_version)
        body = await request.get_data(cache=False)
        wire_version = version or "1.0"
        if not is_json_content_type(request.headers.get("Content-Type")):
            err = ContentTypeNotSupportedError(
                f"content type {request.headers.get('Content-Type')!r} is not supported; "
                "send application/json"
            )
            return json_response(_error_bytes(None, err, wire_version))
        parsed = parse_payload(body, version=wire_version)
        last_event_id = request.headers.get("Last-Event-ID")
        ctx_or_err = _call_context(principal, wire_version, last_event_id, state.extended_card)

        async def run(
            item: RpcRequest | dict[str, Any], *, stream_ok: bool
        ) -> bytes | RpcStream | None:
            if isinstance(item, dict):
                return json.dumps(item, separators=(",", ":")).encode()
            try:
                if version is None:
                    raise VersionNotSupportedError(
                        f"A2A version {raw_version!r} is not supported; use one of "
                        f"{', '.join(SUPPORTED_VERSIONS)} (missing header means 0.3)"
                    )
                if isinstance(ctx_or_err, A2AError):
                    raise ctx_or_err
                method = METHODS[wire_version].get(item.method)
                if method is None:
                    raise MethodNotFoundError(_unknown_method(item.method, wire_version))
                if item.method in STREAMING_METHODS and not stream_ok:
                    raise InvalidRequestError(
                        f"{item.method} streams its result and cannot be part of a batch"
                    )
                result = await method(service, item.params, ctx_or_err)
            except A2AError as err:
                result = None
                out = _error_bytes(item.id, err, wire_version)
            except Exception:
                log.exception("internal error in JSON-RPC method", extra={"method": item.method})
                result = None
                out = _error_bytes(item.id, InternalError("internal server error"), wire_version)
            else:
                if isinstance(result, RpcStream):
                    return result
                out = _envelope(item.id, result)
            if item.is_notification:
                return None
            return out

        if not parsed.is_batch:
            item = parsed.items[0] if parsed.items else None
            if item is None:
                return Response(b"", status=204)
            out = await run(item, stream_ok=True)
            if isinstance(out, RpcStream):
                req_id = item.id  # type: ignore[union-attr]
                render = out.render
                return sse_response(event_frames(
                    out.first, out.events,
                    lambda ev: _envelope(req_id, render(ev)),
                    lambda err: _error_bytes(req_id, err, wire_version),
                ))
            if out is None:
                return Response(b"", status=204)
            # A streaming method that fails before its stream starts (unknown task,
            # bad params) answers with a plain JSON-RPC error, which both SDK
            # generations map to the typed error; failures mid-stream come as an
            # SSE `error` event instead.
            return json_response(out)

        results: list[bytes | None] = [None] * len(parsed.items)

        async def run_at(i: int, item: RpcRequest | dict[str, Any]) -> None:
            r = await run(item, stream_ok=False)
            assert not isinstance(r, RpcStream)
            results[i] = r

        async with trio.open_nursery() as nursery:
            for i, item in enumerate(parsed.items):
                nursery.start_soon(run_at, i, item)
        parts = [r for r in results if r is not None]
        if not parts:
            return Response(b"", status=204)
        return json_response(b"[" + b",".join(parts) + b"]")

    from runtime.rest_binding import register_rest_routes

    register_rest_routes(app, state)
    return app


def _call_context(principal: str, version: str, last_event_id: str | None,
                  extended_card: dict[str, Any] | None) -> CallContext | A2AError:
    leid: int | None = None
    if last_event_id is not None and last_event_id.strip():
        try:
            leid = int(last_event_id.strip())
        except ValueError:
            return InvalidParamsError(
                f"Last-Event-ID {last_event_id!r} is not an event id of this server (an integer)"
            )
    return CallContext(principal=principal, version=version, last_event_id=leid,
                       extended_card=extended_card)


def _unknown_method(method: str, version: str) -> str:
    other = "0.3" if version == "1.0" else "1.0"
    if method in METHODS[other]:
        hint = (f"; {method!r} is an A2A {other} method: send header A2A-Version: {other}"
                if other == "1.0" else
                f"; {method!r} is an A2A 0.3 method: omit the A2A-Version header")
    else:
        hint = ""
    return f"method {method!r} not found in A2A {version}{hint}"
