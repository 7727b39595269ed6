"""Signing gRPC calls with an HMAC key, as the server's gRPC binding checks them
(`runtime.grpc.signing`): client interceptors that add the signature metadata to every
unary and server-streaming call, for grpcio's channels and for grpc.aio's (the a2a-sdk
client's ``grpc_channel_factory`` can make one with them).

The body signed is the request message's serialized bytes (`SerializeToString()`, what
a generated stub sends), the path the gRPC method path, the method ``POST``. Needs the
`grpc` extra.
"""

from __future__ import annotations

import collections
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import grpc.aio

from protocol.request_signing import signature_headers
from runtime.client.signing import HmacKey

__all__ = ["SigningInterceptor", "aio_signing_interceptors", "grpc_signature_metadata"]


def grpc_signature_metadata(key: HmacKey, method_path: str, body: bytes,
                            now: float | None = None, nonce: str | None = None
                            ) -> list[tuple[str, str]]:
    """The metadata that signs one call of `method_path` (``/pkg.Service/Method``)
    whose request serializes to `body`, with a fresh nonce unless one is given."""
    headers = signature_headers(key.key_id, key.secret, "POST", method_path, body,
                                now=time.time() if now is None else now,
                                nonce=nonce or secrets.token_urlsafe(18))
    return list(headers.items())


def _path(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method


def _with(metadata: Sequence[tuple[str, Any]] | None, extra: list[tuple[str, str]]
          ) -> list[tuple[str, Any]]:
    return [*(metadata or ()), *extra]


class _Details(collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                     "compression")), grpc.ClientCallDetails):
    pass


class SigningInterceptor(grpc.UnaryUnaryClientInterceptor,
                         grpc.UnaryStreamClientInterceptor):
    """For grpcio's channels: ``grpc.intercept_channel(channel, SigningInterceptor(key))``."""

    def __init__(self, key: HmacKey, *, clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self._clock = clock

    def _signed(self, details: Any, request: Any) -> _Details:
        extra = grpc_signature_metadata(self.key, _path(details.method),
                                        request.SerializeToString(), self._clock())
        return _Details(details.method, details.timeout, _with(details.metadata, extra),
                        details.credentials, getattr(details, "wait_for_ready", None),
                        getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any,
                              request: Any) -> Any:
        return continuation(self._signed(client_call_details, request), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any,
                               request: Any) -> Any:
        return continuation(self._signed(client_call_details, request), request)


class _AioSigning:
    def __init__(self, key: HmacKey, *, clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self._clock = clock

    def _signed(self, details: grpc.aio.ClientCallDetails, request: Any
                ) -> grpc.aio.ClientCallDetails:
        extra = grpc_signature_metadata(self.key, _path(details.method),
                                        request.SerializeToString(), self._clock())
        metadata = grpc.aio.Metadata(*_with(tuple(details.metadata or ()), extra))
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata,
                                          details.credentials, details.wait_for_ready)


class _AioUnary(_AioSigning, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any,
                                    request: Any) -> Any:
        return await continuation(self._signed(client_call_details, request), request)


class _AioStream(_AioSigning, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any,
                                     request: Any) -> Any:
        return await continuation(self._signed(client_call_details, request), request)


def aio_signing_interceptors(key: HmacKey, *, clock: Callable[[], float] = time.time
                             ) -> list[grpc.aio.ClientInterceptor]:
    """For grpc.aio's channels: ``grpc.aio.insecure_channel(target,
    interceptors=aio_signing_interceptors(key))``. Two objects, since grpc.aio files
    an interceptor under one kind of call only (its first base)."""
    return [_AioUnary(key, clock=clock), _AioStream(key, clock=clock)]
