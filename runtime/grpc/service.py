"""The A2A 1.0 gRPC service: each rpc is the 1.0 JSON-RPC method of the same name.

An rpc's request is turned into the `params` dict a JSON-RPC call carries, checked
against the same request limits, and handed to the same method
(`runtime.http.rpc_methods`) over the same `A2AService`, as the same identity the
bearer token proves (`runtime.http.gate`: static tokens, JWTs, the token service's
access tokens), checked against the same permission, tenant and rate limits: no
second task model, no second store path, no second security model. The gRPC thread
does the decoding and the limits (pure work, no trio state); the identity (which may
fetch a JWKS) and the method run in trio through `TrioBridge`.

Metadata: `authorization: Bearer <token>` (one; refused as UNAUTHENTICATED, with
the A2A error details, when auth is on and it is missing or not valid; a role short
of the rpc's permission is PERMISSION_DENIED), `a2a-version` (missing or `1.0`; another
value is VersionNotSupported), and on SubscribeToTask `last-event-id: <n>` to
replay the task's log after event n; `x-a2a-key-id`, `x-a2a-timestamp`, `x-a2a-nonce`,
`x-a2a-signature` sign the call as the HTTP headers sign a request (`runtime.grpc.signing`:
the body signed is the request's wire bytes). Every streaming rpc sends its first event's
id in the initial metadata `a2a-event-id`; the events that follow are numbered
one by one from it (the same numbers as the SSE `id:` of the HTTP bindings).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, NoReturn

import attrs
import grpc
import trio
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from protocol.errors import A2AError, InternalError, InvalidParamsError, VersionNotSupportedError
from protocol.identity import owner_key
from protocol.permissions import permission_for_method
from protocol.security_errors import UnauthenticatedError
from runtime.grpc.bridge import END, CallHandle, TrioBridge
from runtime.grpc.codec import (
    SERVICE_NAME,
    RpcShape,
    grpc_status,
    params_from_proto,
    proto_from_json,
    service_methods,
    status_trailer,
)
from runtime.grpc.signing import NoncesUnavailable, signature_metadata, verify_call
from runtime.http.auth import RepeatedAuthorization, one_authorization
from runtime.http.common import AppState
from runtime.http.gate import authorize, identify
from runtime.http.rpc_methods import METHODS, CallContext, Method, RpcStream

__all__ = ["A2AGrpcService", "EVENT_ID_KEY", "LAST_EVENT_ID_KEY"]

log = logging.getLogger(__name__)

EVENT_ID_KEY = "a2a-event-id"
LAST_EVENT_ID_KEY = "last-event-id"
_VERSIONS = ("1.0", "1.0.0")
RequestSpan = Callable[[str | None, str], AbstractContextManager[Any]]
"""Opens a call's tracing span: (the caller's traceparent, span name) (`runtime.observe`)."""

UNAUTHENTICATED = ("a valid bearer token is required: send metadata "
                   "'authorization: Bearer <token>'")


@attrs.frozen
class _Metadata:
    """What a call's metadata says, beside its request."""

    authorization: str | None
    last_event_id: int | None
    traceparent: str | None
    signature: dict[str, str]
    """The request-signature values (`runtime.grpc.signing`); empty: unsigned."""


class _Refused(Exception):
    """A call refused before it reaches the service, with its gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class A2AGrpcService:
    """`lf.a2a.v1.A2AService` over the server's `AppState`, as grpcio method handlers."""

    def __init__(self, state: AppState, bridge: TrioBridge,
                 request_span: RequestSpan | None = None) -> None:
        self._state = state
        self._bridge = bridge
        self._span = request_span

    def handler(self) -> grpc.GenericRpcHandler:
        handlers: dict[str, grpc.RpcMethodHandler] = {}
        for shape in service_methods().values():
            method = METHODS["1.0"][shape.name]
            if shape.streaming:
                handlers[shape.name] = grpc.unary_stream_rpc_method_handler(
                    functools.partial(self._stream, shape, method),
                    request_deserializer=None,  # the wire bytes: a signature covers them
                    response_serializer=shape.response.SerializeToString)
            else:
                handlers[shape.name] = grpc.unary_unary_rpc_method_handler(
                    functools.partial(self._unary, shape, method),
                    request_deserializer=None,
                    response_serializer=shape.response.SerializeToString)
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    # --- in the gRPC thread -----------------------------------------------------------

    def _unary(self, shape: RpcShape, method: Method, request: bytes,
               context: grpc.ServicerContext) -> ProtoMessage:
        with self._call(shape, method, request, context) as handle:
            for item in handle:
                if isinstance(item, A2AError):
                    _abort(context, item)
                if isinstance(item, _Refused):
                    context.abort(item.code, item.message)
                return proto_from_json(item, shape.response)
        _abort_cut_short(context)

    def _stream(self, shape: RpcShape, method: Method, request: bytes,
                context: grpc.ServicerContext) -> Iterator[ProtoMessage]:
        with self._call(shape, method, request, context) as handle:
            for item in handle:
                if item is END:
                    return
                if isinstance(item, A2AError):
                    _abort(context, item)
                if isinstance(item, _Refused):
                    context.abort(item.code, item.message)
                if isinstance(item, int):  # the first event's id, before any event
                    context.send_initial_metadata(((EVENT_ID_KEY, str(item)),))
                    continue
                yield proto_from_json(item, shape.response)
        _abort_cut_short(context)

    @contextlib.contextmanager
    def _call(self, shape: RpcShape, method: Method, raw: bytes,
              context: grpc.ServicerContext) -> Iterator[CallHandle]:
        """Check the call's metadata and params, start it in trio, and cancel it
        there whenever it ends here (the client cancelled, or stopped reading)."""
        try:
            meta = self._metadata(shape, context)
            try:
                request = shape.request.FromString(raw)
            except DecodeError:
                raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "the request is not a "
                               f"valid {shape.request.DESCRIPTOR.full_name}") from None
            params = params_from_proto(request)
            self._state.limits.check(params)
        except _Refused as refused:
            context.abort(refused.code, refused.message)
        except A2AError as err:
            _abort(context, err)
        handle = self._bridge.open_call(functools.partial(
            self._run, shape.name, method, params, meta, raw))
        if handle is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        if not context.add_callback(handle.cancel):
            handle.cancel()  # already over
        try:
            yield handle
        finally:
            handle.cancel()

    def _metadata(self, shape: RpcShape, context: grpc.ServicerContext) -> _Metadata:
        metadata = context.invocation_metadata() or ()
        values: dict[str, list[str]] = {}
        for key, value in metadata:
            if isinstance(value, bytes):
                continue  # binary (-bin) metadata: nothing of ours
            values.setdefault(key.lower(), []).append(value)
        try:
            authorization = one_authorization(values.get("authorization", []))
        except RepeatedAuthorization as exc:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        version = ",".join(values.get("a2a-version", [])).strip()
        if version and version not in _VERSIONS:
            raise VersionNotSupportedError(
                f"A2A version {version!r} is not supported over gRPC; this service is "
                "A2A 1.0 (send a2a-version: 1.0, or none)")
        last_event_id = None
        raw = values.get(LAST_EVENT_ID_KEY, [])
        if raw and shape.name == "SubscribeToTask":
            try:
                last_event_id = int(raw[-1].strip())
            except ValueError:
                raise InvalidParamsError(
                    f"metadata last-event-id {raw[-1]!r} is not an event id of this "
                    "server (an integer)") from None
        return _Metadata(authorization, last_event_id, values.get("traceparent", [None])[-1],
                         signature_metadata(values))

    # --- in trio ----------------------------------------------------------------------

    async def _run(self, name: str, method: Method, params: dict[str, Any], meta: _Metadata,
                   raw: bytes, send: trio.MemorySendChannel[Any]) -> None:
        if self._span is None:
            await self._answer(name, method, params, meta, raw, send)
            return
        # the call's span, continuing the caller's traceparent metadata, as an HTTP
        # request's does: the store's and the worker link's spans go under it
        with self._span(meta.traceparent, f"A2A gRPC {name}"):
            await self._answer(name, method, params, meta, raw, send)

    async def _answer(self, name: str, method: Method, params: dict[str, Any],
                      meta: _Metadata, raw: bytes, send: trio.MemorySendChannel[Any]) -> None:
        state = self._state
        last_event_id = meta.last_event_id
        # The last send of a call is its last checkpoint: once the gRPC thread has the
        # answer, nothing is left to cancel (the statistics count real cancellations).
        try:
            signed_by = await verify_call(state, name, meta.signature, raw)
            identity = await identify(state, meta.authorization)
            if identity is None:
                raise UnauthenticatedError(UNAUTHENTICATED)
            tenant = params.get("tenant")
            authorize(state, identity, permission_for_method(name), name,
                      tenant if isinstance(tenant, str) else None, signed_by)
            ctx = CallContext(principal=owner_key(identity), version="1.0",
                              last_event_id=last_event_id,
                              extended_card=state.card.document.data if state.extended_card
                              else None)
            result = await method(state.service, params, ctx)
            if isinstance(result, RpcStream):
                await _stream_events(result, last_event_id, send)
                await send.send(END)
            else:
                await send.send(result)
        except A2AError as err:
            await send.send(err)
        except NoncesUnavailable as exc:
            await send.send(_Refused(grpc.StatusCode.UNAVAILABLE, str(exc)))
        except Exception:
            log.exception("internal error in gRPC method", extra={"method": name})
            await send.send(InternalError("internal server error"))


async def _stream_events(result: RpcStream, last_event_id: int | None,
                         send: trio.MemorySendChannel[Any]) -> None:
    first_id = result.first.seq if result.first is not None else (last_event_id or 0) + 1
    await send.send(first_id)
    if result.first is not None:
        await send.send(result.render(result.first.event))
    async with contextlib.aclosing(result.events) as events:  # type: ignore[type-var]
        async for ev in events:
            if ev is not None:  # None: a keep-alive tick; HTTP/2 keeps the call alive
                await send.send(result.render(ev.event))


def _abort(context: grpc.ServicerContext, err: A2AError) -> NoReturn:
    context.set_trailing_metadata(status_trailer(err))
    context.abort(grpc_status(err), err.message)
    raise AssertionError("unreachable")  # abort raises


def _abort_cut_short(context: grpc.ServicerContext) -> NoReturn:
    context.abort(grpc.StatusCode.UNAVAILABLE,
                  "the call was cut short: the server is shutting down")
    raise AssertionError("unreachable")
