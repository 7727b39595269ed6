"""The JSON-RPC endpoint (POST /, and the 0.1/0.2 gateways' POST /tasks/send ...)
as a lean ASGI handler.

It sits in front of the quart-trio app and takes only `POST /` (and hands the
WebSocket paths of `AppState.websockets`, the worker link's ``/worker/ws``, to their
handlers); everything else (the card, the HTTP+JSON binding, error pages) goes on to
Quart. The reason is cost: Quart's per-request machinery (request and app contexts,
signals, routing, response objects, a nursery of two tasks per request) costs about
as much CPU as all of the A2A work of a blocking SendMessage, and this is the
endpoint every A2A client calls (see docs/benchmarks.md). The handler speaks plain
ASGI, which hypercorn serves directly.

`dispatch()` is transport-neutral: headers and body in, a reply out. The
generation is chosen per request by the `A2A-Version` header (or query
parameter): missing or empty means 0.3, `1.0` means 1.0, anything else -32009.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qs

import attrs
import trio

from protocol.errors import (
    A2AError,
    ContentTypeNotSupportedError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    MethodNotFoundError,
    VersionNotSupportedError,
)
from protocol.identity import owner_key
from protocol.jsonrpc import Request as RpcRequest
from protocol.jsonrpc import error_response, parse_payload
from protocol.limits import Limits
from protocol.permissions import permission_for_method
from runtime.http.auth import RepeatedAuthorization, one_authorization
from runtime.http.common import (
    SUPPORTED_VERSIONS,
    ASGIApp,
    Receive,
    Scope,
    Send,
    is_json_content_type,
    negotiate_version,
    too_large_error,
)
from runtime.http.extension_methods import ANONYMOUS_CALLER, client_address, only_public
from runtime.http.gate import authorize, identify
from runtime.http.guard import no_websocket_here, refuse
from runtime.http.rpc_legacy import (
    GATEWAY_PATHS,
    METHODS,
    STREAMING_METHODS,
    check_gateway_method,
)
from runtime.http.rpc_methods import CallContext, RpcStream
from runtime.http.signing_settings import SIGNED_BY
from runtime.http.sse import error_frame, event_frames, send_stream

__all__ = ["JsonRpcASGI", "Reply", "dispatch"]

log = logging.getLogger(__name__)

BODY_TIMEOUT = 60.0


@attrs.frozen
class Reply:
    """What the endpoint answers: a JSON body, nothing (204), or an SSE stream."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    stream: AsyncIterator[bytes] | None = None


_JSON = ((b"content-type", b"application/json"),)


def _json(body: bytes | dict[str, Any], status: int = 200,
          headers: tuple[tuple[bytes, bytes], ...] = ()) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return Reply(status=status, body=data, headers=_JSON + headers)


def _envelope(req_id: Any, result: bytes) -> bytes:
    rid = str(req_id).encode() if type(req_id) is int else json.dumps(req_id).encode()  # int: as is
    return b'{"jsonrpc":"2.0","id":' + rid + b',"result":' + result + b"}"


def _error_bytes(req_id: Any, err: A2AError, version: str) -> bytes:
    return json.dumps(error_response(req_id, err, version=version), separators=(",", ":")).encode()


def unauthorized_reply() -> Reply:
    message = "a valid bearer token is required (Authorization: Bearer <token>)"
    body = {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": message}}
    return _json(body, 401, ((b"www-authenticate", b'Bearer realm="a2a"'),))


def _bad_request(message: str) -> Reply:
    """HTTP 400 before any JSON-RPC: the request itself is malformed (not its payload)."""
    return _json(InvalidRequestError(message).to_http()[1], 400)


async def dispatch(
    state: Any,
    *,
    authorization: str | None,
    version_header: str | None,
    content_type: str | None,
    last_event_id: str | None,
    body: bytes,
    gateway_path: str | None = None,
    signed_by: str | None = None,
    note: MutableMapping[str, Any] | None = None,  # runtime.observe's: method, outcome
    address: str = "",
) -> Reply:
    """Answer one JSON-RPC payload (a request, a notification or a batch); with
    `gateway_path` (``/tasks/send``...), only that path's method. `signed_by`: the
    key that signed the request (`runtime.http.request_signing`); `address`: the
    client's, for the extension methods that rate-limit by it (login)."""
    note = {} if note is None else note
    identity = await identify(state, authorization)
    version = negotiate_version(version_header)
    wire_version = version or "1.0"
    if identity is None and not is_json_content_type(content_type):
        return unauthorized_reply()
    if not is_json_content_type(content_type):
        err = ContentTypeNotSupportedError(
            f"content type {content_type!r} is not supported; send application/json"
        )
        return _json(_error_bytes(None, err, wire_version))
    parsed = parse_payload(body, version=wire_version)
    extensions = state.extension_methods
    if identity is None:
        if not only_public(parsed.items, extensions):
            return unauthorized_reply()
        identity = ANONYMOUS_CALLER
    principal = owner_key(identity)
    note["principal"] = principal
    ctx = _call_context(principal, wire_version, last_event_id,
                        state.card.document.data if state.extended_card else None,
                        gateway_path)
    service = state.service
    refused = _over_limits(parsed.items, state.limits)

    async def run(item: RpcRequest | dict[str, Any], *, stream_ok: bool
                  ) -> bytes | RpcStream | None:
        if isinstance(item, dict):  # already an error response from parsing
            note.setdefault("outcome", "client_error")
            return json.dumps(item, separators=(",", ":")).encode()
        try:
            if version is None:
                raise VersionNotSupportedError(
                    f"A2A version {version_header!r} is not supported; use one of "
                    f"{', '.join(SUPPORTED_VERSIONS)} (missing header means 0.3)"
                )
            if isinstance(ctx, A2AError):
                raise ctx
            if gateway_path is not None:
                check_gateway_method(gateway_path, item.method)
            extension = extensions.get(item.method)
            if extension is not None:
                authorize(state, identity, extension.permission, item.method,
                          signed_by=signed_by, limit=not extension.own_limits)
                out = _envelope(item.id, await extension(item.params, identity, address))
                return None if item.is_notification else out
            method = METHODS[wire_version].get(item.method)
            if method is None:
                raise MethodNotFoundError(_unknown_method(item.method, wire_version))
            if item.method in STREAMING_METHODS and not stream_ok:
                raise InvalidRequestError(
                    f"{item.method} streams its result and cannot be part of a batch"
                )
            tenant = item.params.get("tenant") if isinstance(item.params, dict) else None
            authorize(state, identity, permission_for_method(item.method), item.method,
                      tenant if isinstance(tenant, str) else None, signed_by)
            if id(item) in refused:
                raise refused[id(item)]
            result = await method(service, item.params, ctx)
        except A2AError as err:
            note.setdefault("outcome", "server_error" if isinstance(err, InternalError)
                            else "client_error")  # a JSON-RPC error answers 200
            out = _error_bytes(item.id, err, wire_version)
        except Exception:
            log.exception("internal error in JSON-RPC method", extra={"method": item.method})
            note["outcome"] = "server_error"
            out = _error_bytes(item.id, InternalError("internal server error"), wire_version)
        else:
            if isinstance(result, RpcStream):
                return result
            out = _envelope(item.id, result)
        return None if item.is_notification else out

    if not parsed.is_batch:
        if not parsed.items:
            return Reply(status=204)
        item = parsed.items[0]
        out = await run(item, stream_ok=True)
        note["method"] = (item.method if isinstance(item, RpcRequest) and (
            item.method in METHODS[wire_version] or item.method in extensions) else "invalid")
        if isinstance(out, RpcStream):
            req_id = item.id  # type: ignore[union-attr]
            render = out.render
            frames = event_frames(
                out.first, out.events,
                lambda ev: _envelope(req_id, render(ev)),
                lambda err: _error_bytes(req_id, err, wire_version),
                error_event="error" if wire_version == "1.0" else None,
            )
            return Reply(stream=frames)
        if out is None:
            return Reply(status=204)
        if (wire_version == "0.3" and isinstance(item, RpcRequest)
                and item.method in STREAMING_METHODS):
            # A2A 0.3 (§7.2, §7.9): a streaming call that fails answers in the stream,
            # with a JSON-RPC error response as its event, never a 200 JSON body.
            return Reply(stream=error_frame(out, event=None))
        # A 1.0 streaming method refused before its stream starts (unknown task, bad
        # params) answers with a plain JSON-RPC error, which the 1.0 SDK maps to the
        # typed error; failures mid-stream come as an SSE `error` event.
        return _json(out)

    results: list[bytes | None] = [None] * len(parsed.items)

    async def run_at(i: int, item: RpcRequest | dict[str, Any]) -> None:
        r = await run(item, stream_ok=False)
        assert not isinstance(r, RpcStream)
        results[i] = r

    async with trio.open_nursery() as nursery:
        for i, item in enumerate(parsed.items):
            nursery.start_soon(run_at, i, item)
    note["method"] = "batch"
    parts = [r for r in results if r is not None]
    if not parts:
        return Reply(status=204)
    return _json(b"[" + b",".join(parts) + b"]")


def _over_limits(items: Sequence[RpcRequest | dict[str, Any]], limits: Limits
                 ) -> dict[int, InvalidParamsError]:
    """The calls whose params break a request limit, by id(): each gets -32602.

    Checked in request order before any call runs, on the decoded JSON (before a
    model is built), so the parts of a batch's calls share one budget: a batch is
    one request, and the limit bounds what one request may cost."""
    refused: dict[int, InvalidParamsError] = {}
    parts = 0
    for item in items:
        if isinstance(item, RpcRequest):
            try:
                parts += limits.check(item.params, parts_left=limits.max_parts - parts)
            except InvalidParamsError as err:
                refused[id(item)] = err
    return refused


def _call_context(principal: str, version: str, last_event_id: str | None,
                  extended_card: dict[str, Any] | None,
                  gateway_path: str | None = None) -> CallContext | A2AError:
    leid: int | None = None
    if last_event_id is not None and last_event_id.strip():
        try:
            leid = int(last_event_id.strip())
        except ValueError:
            return InvalidParamsError(
                f"Last-Event-ID {last_event_id!r} is not an event id of this server (an integer)"
            )
    return CallContext(principal=principal, version=version, last_event_id=leid,
                       extended_card=extended_card, gateway_path=gateway_path)


def _unknown_method(method: str, version: str) -> str:
    other = "0.3" if version == "1.0" else "1.0"
    if method in METHODS[other]:
        hint = (f"; {method!r} is an A2A {other} method: send header A2A-Version: {other}"
                if other == "1.0" else
                f"; {method!r} is an A2A 0.3 method: omit the A2A-Version header")
    else:
        hint = ""
    return f"method {method!r} not found in A2A {version}{hint}"


class _BodyTooLarge(Exception):
    pass


class JsonRpcASGI:
    """ASGI app: `POST /` is JSON-RPC, handled here; everything else goes to `app`."""

    def __init__(self, state: Any, app: ASGIApp) -> None:
        self._state = state
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope["method"] != "POST" or (
                path != "/" and path not in GATEWAY_PATHS):
            mounted = self._state.mounts.get(path) if scope["type"] == "http" else None
            if mounted is not None:
                await mounted(scope, receive, send)
                return
            if scope["type"] != "websocket":
                await self._app(scope, receive, send)
                return
            handler = self._state.websockets.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
            else:
                await no_websocket_here(scope, receive, send)
            return
        if (note := scope.get("a2a.notes")) is not None:  # runtime.observe's, in front
            note["binding"] = "jsonrpc"
        headers: dict[bytes, bytes] = {}
        authorizations: list[str] = []
        for name, value in scope["headers"]:
            headers[name] = value  # names arrive lower-cased (ASGI)
            if name == b"authorization":
                authorizations.append(value.decode("latin-1"))
        try:
            authorization = one_authorization(authorizations)
        except RepeatedAuthorization as exc:
            await _send_reply(send, _bad_request(str(exc)))
            return
        limit = self._state.max_body
        declared = headers.get(b"content-length")
        expected = int(declared) if declared is not None and declared.isdigit() else None
        # A refused body is not read: the answer closes the connection (refuse).
        if expected is not None and expected > limit:
            await refuse(receive, send, 413, too_large_error(limit))
            return
        try:  # a bare deadline scope: fail_after wraps one in two generator context managers
            with trio.CancelScope(deadline=trio.current_time() + BODY_TIMEOUT) as reading:
                body = await _read_body(receive, limit, expected)
        except _BodyTooLarge:
            await refuse(receive, send, 413, too_large_error(limit))
            return
        if reading.cancelled_caught:
            await refuse(receive, send, 408, {"error": {
                "code": 408, "status": "DEADLINE_EXCEEDED",
                "message": f"request body not received within {BODY_TIMEOUT:g} s"}})
            return
        if body is None:
            return  # the client went away
        extension = self._state.extension_rpc
        if extension is not None:  # the admin methods: their own auth (runtime.admin)
            answered = await extension(authorizations, body, scope.get(SIGNED_BY))
            if answered is not None:
                await _send_reply(send, _json(answered[1], answered[0]))
                return
        version = _header(headers, b"a2a-version")
        if version is None and scope.get("query_string"):
            values = parse_qs(scope["query_string"].decode("latin-1")).get("A2A-Version")
            version = values[0] if values else None
        reply = await dispatch(
            self._state,
            authorization=authorization,
            version_header=version,
            content_type=_header(headers, b"content-type"),
            last_event_id=_header(headers, b"last-event-id"),
            body=body,
            gateway_path=None if path == "/" else path,
            signed_by=scope.get(SIGNED_BY),
            note=note,
            address=client_address(scope),
        )
        if reply.stream is None:
            await _send_reply(send, _in_kind(reply, headers.get(b"content-type")))
        else:
            await send_stream(scope, receive, send, reply.stream)


_A2A_JSON = ((b"content-type", b"application/a2a+json"),)


def _in_kind(reply: Reply, content_type: bytes | None) -> Reply:
    """A JSON reply in the media type of the request: ``application/a2a+json`` is
    answered in kind, anything else with ``application/json`` (A2A 1.0.1 §11.1;
    clients written against 1.0.0 check for ``application/json``)."""
    if (content_type is None or reply.headers[:1] != _JSON
            or content_type.split(b";", 1)[0].strip().lower() != b"application/a2a+json"):
        return reply
    return attrs.evolve(reply, headers=_A2A_JSON + reply.headers[1:])


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


async def _read_body(receive: Receive, limit: int, expected: int | None = None
                     ) -> bytes | None:
    """The request body; None if the client went away. With `expected` (its
    Content-Length) it returns once that many bytes are in, without waiting for
    the server's empty end-of-body message."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False) or size == expected:
            return b"".join(chunks)


async def _send_reply(send: Send, reply: Reply) -> None:
    headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})
