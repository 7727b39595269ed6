"""Who may use the admin API: the holder of the server's admin token.

The admin API is off unless the server has an admin token (`--admin-token`,
`TRIO_A2A_ADMIN_TOKEN`): then every admin path answers 404 and every admin method
-32601, saying how to turn it on. With a token, a request without one is refused
with 401 and a request with another token (a client's, a worker's) with 403; the
messages never echo what was sent. Comparison is constant-time.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

import attrs

__all__ = ["AdminGate", "Refusal"]


@attrs.frozen
class Refusal:
    """Why an admin request is refused: HTTP status, JSON-RPC code, reason, message."""

    status: int
    rpc_code: int
    reason: str
    message: str

    def body(self) -> dict[str, object]:
        """The HTTP+JSON error body (google.rpc.Status, as the A2A binding answers)."""
        return {"error": {"code": self.status, "status": self.reason, "message": self.message}}

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="admin"'} if self.status == 401 else {}


OFF = Refusal(404, -32601, "NOT_FOUND",
              "the admin API is off: start the server with --admin-token "
              "(or TRIO_A2A_ADMIN_TOKEN) to turn it on")
MISSING = Refusal(401, -32040, "UNAUTHENTICATED",
                  "the admin API needs the admin token (Authorization: Bearer <admin token>)")
WRONG = Refusal(403, -32041, "PERMISSION_DENIED",
                "the token sent is not the admin token")


class AdminGate:
    """Checks the Authorization header of an admin request against the admin token."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def refuse(self, authorizations: Sequence[str]) -> Refusal | None:
        """None if the request may pass; else why not. `authorizations` are all of its
        Authorization headers (more than one is refused, as on the A2A paths)."""
        if self._token is None:
            return OFF
        if len(authorizations) > 1:
            return Refusal(400, -32600, "INVALID_ARGUMENT",
                           f"the request has {len(authorizations)} Authorization headers; "
                           "send exactly one")
        if not authorizations:
            return MISSING
        scheme, _, credential = authorizations[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            return MISSING
        if not hmac.compare_digest(credential.strip().encode(), self._token):
            return WRONG
        return None
