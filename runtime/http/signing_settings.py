"""The settings of HMAC request signing (`runtime.http.request_signing`): the keys, the
window, and which keys belong to which principal and must be used by it. Apart from the
middleware so the app's shared state can hold them without an import cycle."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from protocol.security_errors import SignatureRequiredError

__all__ = ["SIGNED_BY", "SigningSettings"]

SIGNED_BY = "trio_a2a.signed_by"
"""The ASGI scope key naming the key that signed the request (absent: unsigned)."""


@attrs.frozen
class SigningSettings:
    keys: Mapping[str, bytes] = attrs.field(repr=False)
    """Key id -> secret (32 bytes or more)."""
    window: float = 300.0
    """Seconds a timestamp may be off the server's clock, either way."""
    required: bool = False
    """Refuse unsigned requests (the card and probes excepted)."""
    principals: Mapping[str, str] = attrs.field(factory=dict)
    """Key id -> the principal it belongs to: such a key signs only that principal's
    requests."""
    required_keys: frozenset[str] = frozenset()
    """Keys (bound to a principal) whose principal must sign every request with them."""

    def __attrs_post_init__(self) -> None:
        if not self.keys:
            raise ValueError("request signing needs at least one key")
        unbound = sorted(self.required_keys - set(self.principals))
        if unbound:
            raise ValueError(f"signing key(s) {', '.join(unbound)} are required but bound "
                             "to no principal")
        unknown = sorted((self.required_keys | set(self.principals)) - set(self.keys))
        if unknown:
            raise ValueError(f"signing key(s) {', '.join(unknown)} are not defined")
        short = sorted(k for k, s in self.keys.items() if len(s) < 32)
        if short:
            raise ValueError(f"signing key(s) {', '.join(short)}: secrets need 32 bytes or more")


    def check_caller(self, principal: str, signed_by: str | None) -> None:
        """`SignatureRequiredError` if `principal` must sign with a key of its own and the
        request is not signed so, or if it is signed with another principal's key."""
        if signed_by is not None and self.principals.get(signed_by, principal) != principal:
            raise SignatureRequiredError("the request is signed with a key of another "
                                         "principal")
        own = {k for k in self.required_keys if self.principals[k] == principal}
        if own and signed_by not in own:
            raise SignatureRequiredError("this caller's requests must be signed with its "
                                         "key (X-A2A-Key-Id, X-A2A-Signature)")
