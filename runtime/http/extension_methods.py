"""JSON-RPC methods outside A2A (this runtime's extensions, e.g. the token service),
served beside the A2A methods of both generations under their own namespace.

A method names the permission it needs, or None for a public one, which answers
without a credential (logging in with an API key needs none). A payload made only of
public methods is served to an unauthenticated caller; anything else needs auth.
A method that takes from the rate limits itself (`own_limits`: login, refresh, whose
caller is known only from what they present) is not counted against the caller's
bucket by the bindings; it is given the client's address for that.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs

from protocol.identity import Identity
from protocol.jsonrpc import Request as RpcRequest

__all__ = ["ANONYMOUS_CALLER", "ExtensionMethod", "client_address", "only_public"]

ANONYMOUS_CALLER = Identity(principal="", via="unauthenticated")
"""Who calls a public extension method without a credential: no principal, no roles."""


@attrs.frozen
class ExtensionMethod:
    call: Callable[[dict[str, Any], Identity, str], Awaitable[Any]]
    """Params, caller and the client's address -> the JSON result."""
    permission: str | None = None
    """None: public."""
    own_limits: bool = False
    """The method takes from the rate limits itself; the bindings do not."""

    async def __call__(self, params: Any, identity: Identity, address: str = "") -> bytes:
        result = await self.call(params if isinstance(params, dict) else {}, identity,
                                 address)
        return json.dumps(result, separators=(",", ":")).encode()


def only_public(items: Sequence[RpcRequest | dict[str, Any]],
                methods: Mapping[str, ExtensionMethod]) -> bool:
    """Whether a parsed payload calls public extension methods and nothing else."""
    return bool(items) and all(
        isinstance(i, RpcRequest) and i.method in methods and methods[i.method].permission
        is None for i in items)


def client_address(scope: Mapping[str, Any]) -> str:
    """The client's IP address of an ASGI scope ("" when the server does not say)."""
    client = scope.get("client")
    return str(client[0]) if client else ""
