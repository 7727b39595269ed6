"""JSON-RPC methods outside A2A (this runtime's extensions, e.g. the token service),
served beside the A2A methods of both generations under their own namespace.

A method names the permission it needs, or None for a public one, which answers
without a credential (logging in with an API key needs none). A payload made only of
public methods is served to an unauthenticated caller; anything else needs auth.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs

from protocol.identity import Identity
from protocol.jsonrpc import Request as RpcRequest

__all__ = ["ANONYMOUS_CALLER", "ExtensionMethod", "only_public"]

ANONYMOUS_CALLER = Identity(principal="", via="unauthenticated")
"""Who calls a public extension method without a credential: no principal, no roles."""


@attrs.frozen
class ExtensionMethod:
    call: Callable[[dict[str, Any], Identity], Awaitable[Any]]
    """Params and caller -> the JSON result."""
    permission: str | None = None
    """None: public."""

    async def __call__(self, params: Any, identity: Identity) -> bytes:
        result = await self.call(params if isinstance(params, dict) else {}, identity)
        return json.dumps(result, separators=(",", ":")).encode()


def only_public(items: Sequence[RpcRequest | dict[str, Any]],
                methods: Mapping[str, ExtensionMethod]) -> bool:
    """Whether a parsed payload calls public extension methods and nothing else."""
    return bool(items) and all(
        isinstance(i, RpcRequest) and i.method in methods and methods[i.method].permission
        is None for i in items)
